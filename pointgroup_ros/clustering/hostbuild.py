"""Run the CUDA kernel sources on the CPU: build kernels/*.cu with g++ and kernels/host/cuda_host_shim.h.

For CI without a GPU (tests only). A generated translation unit includes the shim and the .cu file and
exports one C wrapper per kernel (from the parsed signatures) that launches it thread by thread: in index
order, in a shuffled order, or over several OS threads at once. `HostLauncher` then plays the role of the
CuPy launcher for gpu.group_with_kernels, with numpy arrays.
"""
from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from .gpu import BLOCK, SOURCE, scalar_types
from .kernel_source import kernel_path, read_source, signatures

_CTYPES = {"int": ctypes.c_int, "long long": ctypes.c_longlong, "double": ctypes.c_double,
           "float": ctypes.c_float}
MODES = {"ordered": 0, "shuffled": 1, "threads": 2}


def _wrappers(source: str) -> str:
    lines = ['extern "C" void host_counters(long long* out, int reset) {\n'
             "    for (int k = 0; k < pg_host::kCounters; ++k)\n"
             "        out[k] = reset ? pg_host::counters[k].exchange(0) : pg_host::counters[k].load();\n}"]
    for name, params in signatures(source).items():
        decl = ", ".join(f"{p.ctype} {p.name}" for p in params)
        call = ", ".join(p.name for p in params)
        lines.append(f'extern "C" void host_{name}(int grid, int block, int mode, unsigned seed, int workers, '
                     f"{decl}) {{\n    pg_host::launch(grid, block, mode, seed, workers, [&]() {{ {name}({call}); }});\n}}")
    return "\n".join(lines)


def build(coord_dtype: Any, out_dir: Path, source: str = SOURCE, defines: dict[str, Any] | None = None) -> Path:
    """Compile kernels/<source> for the host with COORD_T = float or double; returns the shared library.

    defines: extra macros set before the source (e.g. {"PG_BOX_MIN": 1 << 30} turns the box pruning off).
    """
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        raise RuntimeError("building the kernels for the host needs g++ on PATH")
    ctype = {"float32": "float", "float64": "double"}[np.dtype(coord_dtype).name]
    shim = kernel_path("host/cuda_host_shim.h")
    macros = "".join(f"#define {name} {value}\n" for name, value in (defines or {}).items())
    unit = (f'#include "{shim}"\n#define COORD_T {ctype}\n{macros}#include "{kernel_path(source)}"\n'
            + _wrappers(source) + "\n")
    digest = hashlib.sha1((unit + read_source(source) + shim.read_text()).encode()).hexdigest()[:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"{Path(source).stem}_{ctype}_{digest}.so"
    if not lib.exists():
        cpp = lib.with_suffix(".cpp")
        cpp.write_text(unit)
        cmd = [gxx, "-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-pthread",
               "-Wall", "-Wno-unused-function", "-o", str(lib), str(cpp)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"host build of {source} failed:\n{' '.join(cmd)}\n{result.stderr}")
    return lib


class HostLauncher:
    """Launch the host-built kernels on numpy arrays, like gpu.CupyLauncher does on CuPy arrays."""

    def __init__(self, lib_path: Path, coord_dtype: Any, mode: str = "ordered", seed: int = 0, workers: int = 4,
                 source: str = SOURCE):
        self.lib = ctypes.CDLL(str(lib_path))
        self.sigs = signatures(source)
        self.types = scalar_types(np.dtype(coord_dtype))
        self.ctypes = dict(_CTYPES, COORD_T=ctypes.c_double if np.dtype(coord_dtype) == np.float64 else ctypes.c_float)
        self.mode, self.seed, self.workers = MODES[mode], seed, workers
        self.launches = 0

    def counters(self, reset: bool = True) -> np.ndarray:
        """The kernels' PG_COUNT event counters (int64 (8,); grouping.cu: 0 = point-to-point distance tests in
        pg_scan_range, 1 = cells skipped by their bounding box), summed over the launches since the last reset
        of this library (shared by every launcher of it)."""
        out = np.zeros(8, dtype=np.int64)
        fn = self.lib.host_counters
        fn.restype = None
        fn(ctypes.c_void_p(out.ctypes.data), ctypes.c_int(int(reset)))
        return out

    def __call__(self, kernel: str, threads: int, *args: Any) -> None:
        params = self.sigs[kernel]
        if len(args) != len(params):
            raise TypeError(f"{kernel} takes {len(params)} arguments, got {len(args)}")
        c_args: list[Any] = []
        for p, a in zip(params, args):
            if p.is_pointer:
                if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
                    raise TypeError(f"{kernel}: argument {p.name} must be a C-contiguous numpy array")
                c_args.append(ctypes.c_void_p(a.ctypes.data))
            else:
                c_args.append(self.ctypes[p.ctype](self.types[p.ctype](a)))
        if threads <= 0:
            return
        grid = (threads + BLOCK - 1) // BLOCK
        fn = getattr(self.lib, f"host_{kernel}")
        fn.restype = None
        fn(ctypes.c_int(grid), ctypes.c_int(BLOCK), ctypes.c_int(self.mode),
           ctypes.c_uint(self.seed + self.launches), ctypes.c_int(self.workers), *c_args)
        self.launches += 1
