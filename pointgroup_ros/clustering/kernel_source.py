"""Kernel sources (kernels/*.cu): reading them from the installed location and parsing their signatures.

The signatures, parsed from the `extern "C" __global__` declarations, tell both launchers (CuPy on the GPU,
ctypes for the host-shim build in tests) how to pass each scalar argument, so the argument lists are
written once, in the .cu file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..resources import data_dir

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.MULTILINE)
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.DOTALL)


@dataclass(frozen=True)
class Param:
    ctype: str  # e.g. "const long long*", "int", "COORD_T"
    name: str

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")


def kernel_path(name: str) -> Path:
    path = data_dir("kernels") / name
    if not path.is_file():
        raise FileNotFoundError(f"kernel source {path} is missing from the installed pointgroup_ros")
    return path


@lru_cache(maxsize=None)
def read_source(name: str) -> str:
    """Text of kernels/<name> with local #include "..." lines expanded (so CuPy's cache key covers them)."""
    path = kernel_path(name)
    text = path.read_text()
    return _INCLUDE.sub(lambda m: read_source(str((path.parent / m.group(1)).relative_to(path.parent))), text)


@lru_cache(maxsize=None)
def signatures(name: str) -> dict[str, tuple[Param, ...]]:
    """kernel name -> its parameters, from the extern "C" __global__ declarations of kernels/<name>."""
    result: dict[str, tuple[Param, ...]] = {}
    for match in _KERNEL.finditer(read_source(name)):
        params = []
        for raw in match.group(2).split(","):
            words = " ".join(raw.replace("__restrict__", "").split())
            m = re.fullmatch(r"(.+?[\s*])(\w+)", words)
            if not m:
                raise ValueError(f"cannot parse parameter {raw!r} of kernel {match.group(1)} in {name}")
            params.append(Param(" ".join(m.group(1).split()).replace(" *", "*"), m.group(2)))
        result[match.group(1)] = tuple(params)
    return result
