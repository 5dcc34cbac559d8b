"""Shared fixtures and the skip rules for tests that need a GPU, ROS 2 or the real data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("POINTGROUP_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))


def _cuda_reason() -> str | None:
    try:
        import cupy
        import torch
    except ImportError as exc:
        return f"needs CuPy and torch with CUDA ({exc.name} is not installed)"
    if not torch.cuda.is_available():
        return "needs a CUDA GPU (torch.cuda.is_available() is False)"
    try:
        if not cupy.cuda.is_available():
            return "needs a CUDA GPU visible to CuPy"
    except Exception as exc:  # CuPy without a driver raises instead of returning False on some versions
        return f"CuPy cannot reach a GPU: {exc}"
    return None


def _ros_reason() -> str | None:
    try:
        import rclpy  # noqa: F401
    except ImportError:
        unavailable = REPO_ROOT / ".venv" / "ros" / "UNAVAILABLE"  # why test/ros/pypi_ros.py could not set up
        lines = unavailable.read_text().splitlines() if unavailable.is_file() else []
        why = f" ({lines[0]})" if lines else ""
        return ("needs ROS 2 (rclpy is not importable): `make test` runs these in .venv/ros, ROS 2 Jazzy from "
                f"PyPI{why}; or source a ROS 2 setup and run under colcon test")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # get_closest_marker, not `in item.keywords`: keywords also hold folder names (test/ros/...)
    def marked(item: pytest.Item, marker: str) -> bool:
        return item.get_closest_marker(marker) is not None

    reasons = {"gpu": _cuda_reason() if any(marked(i, "gpu") for i in items) else None,
               "ros": _ros_reason() if any(marked(i, "ros") for i in items) else None}
    for item in items:
        for marker, reason in reasons.items():
            if reason and marked(item, marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """../shared/realdata, or skip when this machine does not have it (users' machines do not)."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent")
    return REALDATA
