"""GPU grouping: the kernels of kernels/grouping.cu driven through CuPy (NVRTC), memoised per device.

The driver `group_with_kernels` is written against an array module `xp` and a kernel launcher, so the
tests run the very same driver with numpy and the host-shim build of the kernels (hostbuild.py).
Steps: validity and a few scalars (one small host read), cell keys, sort by key, fine-cell bounds,
union of neighbours (lock-free union-find, roots = lowest index), flatten + sizes, root flags, prefix
sum, cluster ids. No neighbour lists, no BFS, no per-cluster loop.

One pool for torch and CuPy: when the grouping is first run on CUDA torch tensors, share_torch_allocator()
makes CuPy allocate from torch's caching allocator (cupy.cuda.set_allocator with a PythonFunctionAllocator
over torch.cuda.caching_allocator_alloc / caching_allocator_delete), so the memory of CuPy's temporaries goes
back to the pool torch reuses instead of staying in CuPy's own pool (tens of MB per large frame, which matters
on a Jetson's shared memory). POINTGROUP_CUPY_ALLOCATOR=cupy in the environment keeps CuPy's own pool.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from functools import lru_cache
from typing import Any, Callable, Protocol

import numpy as np

from .kernel_source import read_source, signatures
from .layout import GridLayout, radius_squared

SOURCE = "grouping.cu"
BLOCK = 256
ALLOCATOR_ENV = "POINTGROUP_CUPY_ALLOCATOR"  # 'torch' (default): CuPy allocates from torch; 'cupy': its own pool

log = logging.getLogger(__name__)


class Launcher(Protocol):
    def __call__(self, kernel: str, threads: int, *args: Any) -> None: ...


def scalar_types(coord_dtype: np.dtype) -> dict[str, type]:
    """C scalar type of a kernel parameter -> the numpy scalar type that passes it."""
    return {"int": np.int32, "long long": np.int64, "double": np.float64, "float": np.float32,
            "COORD_T": coord_dtype.type}


def group_with_kernels(xp: Any, launch: Launcher, xyz: Any, labels: Any, radius: float, min_points: int,
                       ignore_labels: tuple[int, ...], to_host: Callable[[Any], np.ndarray]) -> Any:
    """Cluster ids (int64 (N,), -1 = none) of contiguous xyz (N, 3) float32/float64 and labels (N,) int64."""
    n = int(xyz.shape[0])
    out = xp.full(n, -1, dtype=xp.int64)
    if n == 0:
        return out
    valid = xp.isfinite(xyz).all(axis=1)
    if ignore_labels:
        valid &= ~xp.isin(labels, xp.asarray(ignore_labels, dtype=xp.int64))
    # The only host read before the kernels: valid count, label range, per-axis minimum (one transfer).
    big = np.iinfo(np.int64)
    coord_min = xp.where(valid[:, None], xyz, xp.inf).min(axis=0).astype(xp.float64)
    stats = to_host(xp.concatenate([xp.stack([valid.sum(dtype=xp.int64), xp.where(valid, labels, big.max).min(),
                                              xp.where(valid, labels, big.min).max()]), coord_min.view(xp.int64)]))
    n_valid, label_min, label_max = (int(v) for v in stats[:3])
    if n_valid == 0:
        return out
    coord_min = stats[3:].view(np.float64)
    if GridLayout.needs_label_ranks(label_min, label_max):
        uniq = xp.unique(labels[valid])
        labels = xp.searchsorted(uniq, labels).astype(xp.int64)  # ranks; only valid points matter
        label_min, label_max = 0, int(uniq.shape[0]) - 1
    layout = GridLayout.create(radius, coord_min, label_min, label_max)

    keys = xp.empty(n, dtype=xp.int64)
    parent = xp.empty(n, dtype=xp.int32)
    launch("pg_cell_keys", n, xyz, labels, valid, n, layout.label_min, layout.inv_cell, *layout.origin,
           layout.bits, keys, parent)
    order = xp.argsort(keys)[:n_valid]  # invalid points (key INVALID_KEY) sort last
    skeys = xp.ascontiguousarray(keys[order])
    sxyz = xp.ascontiguousarray(xyz[order])
    order = order.astype(xp.int32)
    gstart = xp.empty(n_valid, dtype=xp.int32)
    gend = xp.empty(n_valid, dtype=xp.int32)
    box = xp.empty(6 * n_valid, dtype=xyz.dtype)  # bounding boxes of fine cells of >= PG_BOX_MIN points
    launch("pg_group_bounds", n_valid, skeys, sxyz, n_valid, gstart, gend, box)
    launch("pg_union", n_valid, skeys, sxyz, order, gstart, gend, box, n_valid, layout.bits,
           radius_squared(radius, np.dtype(xyz.dtype)), parent)
    size = xp.zeros(n, dtype=xp.int32)
    launch("pg_flatten_count", (n + 7) // 8, parent, valid, n, size)
    flag = xp.empty(n, dtype=xp.int32)
    launch("pg_root_flags", n, parent, size, valid, n, min_points, flag)
    rank = xp.cumsum(flag, dtype=xp.int32)
    launch("pg_assign", n, parent, size, valid, rank, n, min_points, out)
    return out


def _cupy() -> Any:
    try:
        import cupy
    except ImportError:
        raise ImportError("GPU grouping needs CuPy: pip install 'cupy-cuda12x>=13' (or the extra "
                          "pointgroup_ros[gpu]); numpy input runs on the CPU without it") from None
    return cupy


@lru_cache(maxsize=None)
def _kernels(device_id: int, coord_dtype: str) -> dict[str, Any]:
    """The grouping kernels for one device and coordinate type, compiled once (NVRTC; CuPy caches on disk)."""
    cupy = _cupy()
    ctype = {"float32": "float", "float64": "double"}[coord_dtype]
    with cupy.cuda.Device(device_id):
        module = cupy.RawModule(code=f"#define COORD_T {ctype}\n" + read_source(SOURCE))
        return {name: module.get_function(name) for name in signatures(SOURCE)}


class CupyLauncher:
    """Launches kernels of the grouping module with scalar arguments cast to their C types."""

    def __init__(self, device_id: int, coord_dtype: np.dtype):
        self.kernels = _kernels(device_id, coord_dtype.name)
        self.sigs = signatures(SOURCE)
        self.types = scalar_types(coord_dtype)

    def __call__(self, kernel: str, threads: int, *args: Any) -> None:
        params = self.sigs[kernel]
        if len(args) != len(params):
            raise TypeError(f"{kernel} takes {len(params)} arguments, got {len(args)}")
        for p, a in zip(params, args):
            if p.is_pointer and not a.flags.c_contiguous:
                raise ValueError(f"{kernel}: argument {p.name} must be a C-contiguous array")
        cast = tuple(a if p.is_pointer else self.types[p.ctype](a) for p, a in zip(params, args))
        if threads > 0:
            self.kernels[kernel](((threads + BLOCK - 1) // BLOCK,), (BLOCK,), cast)


def cluster_points_cupy(xyz: Any, labels: Any, radius: float, min_points: int,
                        ignore_labels: tuple[int, ...]) -> Any:
    """CuPy arrays in (xyz (N, 3) float32/float64, labels (N,) int64, both contiguous), CuPy int64 (N,) out.

    Runs on the device of xyz and on CuPy's current stream.
    """
    cupy = _cupy()
    with cupy.cuda.Device(xyz.device.id):
        launch = CupyLauncher(xyz.device.id, np.dtype(xyz.dtype))
        return group_with_kernels(cupy, launch, xyz, labels, radius, min_points, ignore_labels, cupy.asnumpy)


class _AllocatorState:
    """What share_torch_allocator decided, once per process (under `lock`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decided = False
        self.shared = False
        self.reason = "not decided yet (no grouping on CUDA torch tensors so far)"
        self.allocator: Any = None  # the installed cupy.cuda.memory.PythonFunctionAllocator


_ALLOCATOR = _AllocatorState()


def torch_allocator_functions(torch: Any, cupy: Any) -> tuple[Callable[[int, int], int], Callable[[int, int], None]]:
    """(malloc(size, device_id) -> pointer, free(pointer, device_id)) for cupy.cuda.memory.PythonFunctionAllocator:
    memory from torch's caching allocator on CuPy's current stream (inside the torch path that is torch's current
    stream, api._cluster_torch), so blocks return to that stream's pool and are reused in stream order."""

    def malloc(size: int, device_id: int) -> int:
        return int(torch.cuda.caching_allocator_alloc(size, device_id, cupy.cuda.get_current_stream().ptr))

    def free(ptr: int, device_id: int) -> None:
        if sys.is_finalizing():  # torch may be gone already; the process is ending and frees everything
            return
        torch.cuda.caching_allocator_delete(ptr)

    return malloc, free


def _decide(torch: Any, cupy: Any) -> tuple[bool, str, bool]:
    """(install now, why not / what, final): the checks of share_torch_allocator, before any change."""
    choice = os.environ.get(ALLOCATOR_ENV, "torch").strip().lower() or "torch"
    if choice not in ("torch", "cupy"):
        log.warning("%s=%r is not 'torch' or 'cupy': using torch's allocator", ALLOCATOR_ENV, choice)
        choice = "torch"
    if choice == "cupy":
        return False, f"CuPy keeps its own memory pool ({ALLOCATOR_ENV}=cupy)", True
    if torch is None or cupy is None:
        return False, "torch or CuPy is not installed", True
    try:
        torch_cuda = bool(torch.cuda.is_available())
        cupy_cuda = bool(cupy.cuda.is_available())
    except Exception as exc:  # CuPy without a driver may raise instead of answering False
        return False, f"no CUDA device ({type(exc).__name__}: {exc})", True
    if not (torch_cuda and cupy_cuda):
        return False, "no CUDA device visible to " + ("CuPy" if torch_cuda else "torch"), True
    if not hasattr(torch.cuda, "caching_allocator_alloc"):
        return False, f"torch {getattr(torch, '__version__', '?')} has no torch.cuda.caching_allocator_alloc", True
    current = cupy.cuda.get_allocator()
    if getattr(current, "__self__", None) is not cupy.get_default_memory_pool():
        # someone chose an allocator (cupy.cuda.set_allocator, or a using_allocator block on this thread): keep it
        return False, f"CuPy's allocator was already changed ({current!r}); it is kept", False
    return True, "", True


def share_torch_allocator(torch: Any = None, cupy: Any = None) -> bool:
    """Make CuPy allocate GPU memory from torch's caching allocator (one pool for both); True when it does.

    Called by cluster_points on CUDA torch tensors, before any CuPy array is made; cheap after the first call.
    Installs once per process (cupy.cuda.set_allocator is process-wide, for every thread and device: the
    allocator is called with the current device's id), thread-safe, and only when torch and CuPy both see a GPU,
    torch has caching_allocator_alloc, CuPy's allocator is still its default pool (a user's own choice, e.g.
    set_allocator or a using_allocator block, is kept and asked again on the next call) and
    POINTGROUP_CUPY_ALLOCATOR is not 'cupy'. The blocks CuPy's pool had cached are released to the driver.
    torch, cupy: the modules (tests pass fakes); None imports them.
    """
    state = _ALLOCATOR
    if state.decided:
        return state.shared
    with state.lock:
        if state.decided:
            return state.shared
        if torch is None or cupy is None:
            try:
                import cupy as cupy_module
                import torch as torch_module
            except ImportError:
                cupy_module = torch_module = None
            torch = torch if torch is not None else torch_module
            cupy = cupy if cupy is not None else cupy_module
        install, reason, final = _decide(torch, cupy)
        if install:
            pool = cupy.get_default_memory_pool()
            allocator = cupy.cuda.memory.PythonFunctionAllocator(*torch_allocator_functions(torch, cupy))
            try:
                cupy.cuda.set_allocator(allocator.malloc)
            except ValueError as exc:  # inside a using_allocator block on this thread: ask again next time
                install, reason, final = False, f"CuPy's allocator cannot be changed now ({exc})", False
            else:
                pool.free_all_blocks()  # what CuPy cached before now goes back to the driver
                state.allocator, reason = allocator, "CuPy allocates from torch's caching allocator"
                log.debug("CuPy now allocates GPU memory from torch's caching allocator")
        if not install:
            log.debug("CuPy keeps its allocator: %s", reason)
        state.shared, state.reason, state.decided = install, reason, final
        return install


def allocator_status() -> tuple[bool, str]:
    """(CuPy allocates from torch, in words) as share_torch_allocator last decided (for reports)."""
    return _ALLOCATOR.shared, _ALLOCATOR.reason


def _reset_allocator_state() -> None:
    """Forget the decision (tests only; an installed allocator stays installed in CuPy)."""
    with _ALLOCATOR.lock:
        _ALLOCATOR.decided, _ALLOCATOR.shared, _ALLOCATOR.allocator = False, False, None
        _ALLOCATOR.reason = "not decided yet (no grouping on CUDA torch tensors so far)"
