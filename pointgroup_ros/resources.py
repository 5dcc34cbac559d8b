"""Where the shipped folders (kernels/, config/, msg/) are, whichever way the package was installed.

They sit at the top level of the repository (ROS layout). A wheel or colcon install copies them into
pointgroup_ros/_data/<name>; a source checkout or an editable install finds them beside the package.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Path of the shipped folder `name` ('kernels', 'config' or 'msg')."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pointgroup_ros is installed without its {name}/ folder "
                            f"(looked in {_PACKAGE_DIR / '_data' / name} and {_PACKAGE_DIR.parent / name})")
