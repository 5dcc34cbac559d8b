"""GPU grouping: the kernels of kernels/grouping.cu driven through CuPy (NVRTC), memoised per device.

The driver `group_with_kernels` is written against an array module `xp` and a kernel launcher, so the
tests run the very same driver with numpy and the host-shim build of the kernels (hostbuild.py).
Steps: validity and a few scalars (one small host read), cell keys, sort by key, fine-cell bounds,
union of neighbours (lock-free union-find, roots = lowest index), flatten + sizes, root flags, prefix
sum, cluster ids. No neighbour lists, no BFS, no per-cluster loop.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Protocol

import numpy as np

from .kernel_source import read_source, signatures
from .layout import GridLayout, radius_squared

SOURCE = "grouping.cu"
BLOCK = 256


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
    launch("pg_group_bounds", n_valid, skeys, n_valid, gstart, gend)
    launch("pg_union", n_valid, skeys, sxyz, order, gstart, gend, n_valid, layout.bits,
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
