"""Every kernel source compiles with nvcc for the GPU generations the package supports."""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pointgroup_ros.resources import data_dir

ARCHS = ("75", "80", "86", "87", "89", "90")
NVCC = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if Path(p).is_file()), None)


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed (CUDA toolkit)")
@pytest.mark.parametrize("source", sorted(p.name for p in data_dir("kernels").glob("*.cu")))
def test_kernel_compiles_for_all_archs(source, tmp_path):
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]

    def compile_for(ctype: str) -> subprocess.CompletedProcess:
        out = tmp_path / f"{ctype}.fatbin"
        cmd = [NVCC, "--fatbin", "-std=c++14", f"-DCOORD_T={ctype}", "-Werror", "all-warnings", *gencode,
               "-o", str(out), str(data_dir("kernels") / source)]
        return subprocess.run(cmd, capture_output=True, text=True)

    with ThreadPoolExecutor(2) as pool:  # the two coordinate types at once (one nvcc call each)
        results = list(pool.map(compile_for, ("float", "double")))
    for ctype, result in zip(("float", "double"), results):
        assert result.returncode == 0, f"nvcc failed for COORD_T={ctype}:\n{result.stderr}"
        assert (tmp_path / f"{ctype}.fatbin").stat().st_size > 0


def _nvrtc_library() -> tuple[Path, Path | None] | None:
    """libnvrtc (and the builtins library it loads) from the CUDA toolkit, nvidia-cuda-nvrtc or spconv's cumm."""
    import site
    import sysconfig

    roots = [Path("/usr/local/cuda/lib64"), *(Path(p) for p in site.getsitepackages()), Path(sysconfig.get_paths()["purelib"])]
    for root in roots:
        for pattern in ("libnvrtc.so*", "nvidia/cuda_nvrtc/lib/libnvrtc.so*", "cumm_cu*.libs/libnvrtc-*.so*"):
            for lib in sorted(root.glob(pattern)):
                if "builtins" not in lib.name:
                    builtins = sorted(lib.parent.glob("libnvrtc-builtins*.so*"))
                    return lib, (builtins[0] if builtins else None)
    return None


NVRTC_SCRIPT = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
source = sys.stdin.read()
for ctype in ("float", "double"):
    for arch in ("75", "90"):
        prog = ctypes.c_void_p()
        src = f"#define COORD_T {ctype}\n" + source  # exactly what gpu.py hands to cupy.RawModule
        assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"grouping.cu", 0, None, None) == 0
        opts = [b"--std=c++11", b"-ftz=true", f"--gpu-architecture=compute_{arch}".encode()]
        result = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        if result != 0:
            sys.exit(f"NVRTC error {result} for COORD_T={ctype} compute_{arch}:\n{log.value.decode()}")
"""


def test_cupy_source_compiles_with_nvrtc(tmp_path):
    """The runtime path: the source as gpu.py passes it to CuPy (no include paths), through NVRTC itself."""
    import os
    import sys

    from pointgroup_ros.clustering.gpu import SOURCE
    from pointgroup_ros.clustering.kernel_source import read_source

    found = _nvrtc_library()
    if found is None:
        pytest.skip("no libnvrtc found (CUDA toolkit, nvidia-cuda-nvrtc or spconv's cumm)")
    lib, builtins = found
    (tmp_path / "libnvrtc.so").symlink_to(lib)
    if builtins is not None:  # NVRTC opens its builtins library by its plain name
        version = ".".join(lib.name.split(".so.")[-1].split(".")[:2]) if ".so." in lib.name else ""
        (tmp_path / (f"libnvrtc-builtins.so.{version}" if version else builtins.name)).symlink_to(builtins)
    env = dict(os.environ, LD_LIBRARY_PATH=f"{tmp_path}:{lib.parent}")
    result = subprocess.run([sys.executable, "-c", NVRTC_SCRIPT, str(tmp_path / "libnvrtc.so")], env=env,
                            input=read_source(SOURCE), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
