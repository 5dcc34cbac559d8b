"""cluster_points: one entry point, numpy / torch / CuPy in, the same kind out, on the same device."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .capped import capped_cluster_numpy, check_max_neighbours, note_host_copy
from .cpu import cluster_points_numpy
from .layout import check_arguments, working_dtype


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "is_cuda")


def _is_cupy(x: Any) -> bool:
    return type(x).__module__.startswith("cupy")


def cluster_points(coords: Any, labels: Any, radius: float, min_points: int,
                   ignore_labels: Iterable[int] = (), max_neighbours: int = 0, scenes: Any = None) -> Any:
    """Group points into clusters (PointGroup Algorithm 1): one cluster id per point.

    Two points are neighbours when their labels are equal and their squared Euclidean distance is strictly
    less than radius**2 (see layout.py for the exact arithmetic). The clusters are the connected components
    of this graph over the points whose label is not in ignore_labels and whose coordinates are finite;
    components with at least min_points points are kept and numbered 0..M-1 in increasing order of their
    lowest point index (the order in which a BFS seeded in index order finds them).

    coords: (N, 3) float array (float32 is computed in float32, float64 in float64, others as float32);
        any strides.
    labels: (N,) integer array, e.g. predicted classes. To group several scenes of a batch at once, make
        their labels disjoint, e.g. batch_idx * num_classes + class (see scene_labels).
    Returns int64 (N,): the cluster id of each point, -1 for points in no kept cluster, as the same kind
    of array as coords on the same device:
    - numpy -> numpy, computed on the CPU (numpy / scipy);
    - torch CPU tensor -> torch CPU tensor (the CPU path);
    - CUDA torch tensor or CuPy array -> the same kind on that GPU, computed by the CUDA kernels through
      CuPy (zero-copy DLPack, no host copy of the data; torch tensors run on torch's current stream, and
      from the first such call CuPy allocates from torch's caching allocator: gpu.share_torch_allocator).

    max_neighbours: 0 (default) = exact, as above. K > 0 emulates the authors' capped ball query instead
    (capped.py): each point lists only its first K neighbours by index (any label, itself included) and a BFS
    seeded in index order follows these directed lists between same-label points; clusters can then lose
    points on dense blobs. Same output contract (ids in order of the clusters' lowest index, = seed order).
    It always runs on the CPU: GPU inputs are copied to the host and the ids back (logged once).
    scenes: with max_neighbours > 0 only, optional (N,) integer scene of each point, the same kind of array as
    coords: a point's list then counts only points of its own scene (the authors' query runs per scene of a
    batch). Labels must keep scenes apart all the same.
    """
    max_neighbours = check_max_neighbours(max_neighbours)
    if max_neighbours:
        return _cluster_capped(coords, labels, radius, min_points, ignore_labels, max_neighbours, scenes)
    if _is_torch(coords):
        return _cluster_torch(coords, labels, radius, min_points, ignore_labels)
    if _is_cupy(coords):
        if not _is_cupy(labels):
            raise TypeError(f"cluster_points: coords is a CuPy array, so labels must be one too, got {type(labels)}")
        from .gpu import cluster_points_cupy
        radius, min_points, ignore = check_arguments(coords.shape, coords.dtype.kind, labels.shape,
                                                     labels.dtype.kind, radius, min_points, ignore_labels)
        if labels.device.id != coords.device.id:
            raise ValueError(f"cluster_points: coords on GPU {coords.device.id}, labels on GPU {labels.device.id}")
        import cupy
        with cupy.cuda.Device(coords.device.id):
            xyz = cupy.ascontiguousarray(coords, dtype=working_dtype(coords.dtype))
            lab = cupy.ascontiguousarray(labels, dtype=cupy.int64)
            return cluster_points_cupy(xyz, lab, radius, min_points, ignore)
    if _is_torch(labels) or _is_cupy(labels):
        raise TypeError(f"cluster_points: labels is a {type(labels).__name__} but coords is a "
                        f"{type(coords).__name__}; pass both as the same kind of array")
    coords, labels = np.asarray(coords), np.asarray(labels)
    radius, min_points, ignore = check_arguments(coords.shape, coords.dtype.kind, labels.shape, labels.dtype.kind,
                                                 radius, min_points, ignore_labels)
    xyz = np.ascontiguousarray(coords, dtype=working_dtype(coords.dtype))
    return cluster_points_numpy(xyz, labels.astype(np.int64, copy=False), radius, min_points, ignore)


def _check_torch(coords: Any, labels: Any, radius: float, min_points: int,
                 ignore_labels: Iterable[int]) -> tuple[float, int, tuple[int, ...], Any]:
    """The arguments of a torch call checked: (radius, min_points, ignore labels, the working torch dtype)."""
    import torch

    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"cluster_points: coords is a torch tensor, so labels must be one too, got {type(labels)}")
    if labels.device != coords.device:
        raise ValueError(f"cluster_points: coords on {coords.device} but labels on {labels.device}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"cluster_points: labels must be an integer tensor, got {labels.dtype}")
    coords_kind = "f" if coords.dtype.is_floating_point else ("b" if coords.dtype == torch.bool else "i")
    radius, min_points, ignore = check_arguments(tuple(coords.shape), coords_kind, tuple(labels.shape), "i",
                                                 radius, min_points, ignore_labels)
    return radius, min_points, ignore, torch.float64 if coords.dtype == torch.float64 else torch.float32


def _cluster_torch(coords: Any, labels: Any, radius: float, min_points: int, ignore_labels: Iterable[int]) -> Any:
    import torch

    radius, min_points, ignore, dtype = _check_torch(coords, labels, radius, min_points, ignore_labels)
    if not coords.is_cuda:
        result = cluster_points_numpy(coords.detach().to(dtype).contiguous().numpy(),
                                      labels.detach().to(torch.int64).numpy(), radius, min_points, ignore)
        return torch.from_numpy(result)
    from .gpu import _cupy, cluster_points_cupy, share_torch_allocator
    cupy = _cupy()
    share_torch_allocator(torch, cupy)  # once: CuPy's temporaries come from torch's pool (gpu.py)
    xyz = cupy.from_dlpack(coords.detach().to(dtype).contiguous())
    lab = cupy.from_dlpack(labels.detach().to(torch.int64).contiguous())
    stream = torch.cuda.current_stream(coords.device)
    with cupy.cuda.Device(coords.device.index), cupy.cuda.ExternalStream(stream.cuda_stream, coords.device.index):
        out = cluster_points_cupy(xyz, lab, radius, min_points, ignore)
        return torch.from_dlpack(out)  # inside: CuPy's current stream is torch's, no cross-stream wait


def _cluster_capped(coords: Any, labels: Any, radius: float, min_points: int, ignore_labels: Iterable[int],
                    max_neighbours: int, scenes: Any) -> Any:
    """max_neighbours > 0: capped_cluster_numpy on the host; the result goes back as the kind and device of coords."""
    if _is_torch(coords):
        import torch

        if scenes is not None and not isinstance(scenes, torch.Tensor):
            raise TypeError("cluster_points: coords is a torch tensor, so scenes must be one too")
        if scenes is not None and scenes.device != coords.device:
            raise ValueError(f"cluster_points: coords on {coords.device} but scenes on {scenes.device}")
        dtype = _check_torch(coords, labels, radius, min_points, ignore_labels)[3]
        if coords.is_cuda:
            note_host_copy()
        result = _capped_host(coords.detach().to(dtype).cpu().numpy(), labels.detach().to(torch.int64).cpu().numpy(),
                              None if scenes is None else scenes.detach().cpu().numpy(), radius, min_points,
                              ignore_labels, max_neighbours)
        return torch.from_numpy(result).to(coords.device)
    if _is_cupy(coords):
        if not _is_cupy(labels) or (scenes is not None and not _is_cupy(scenes)):
            raise TypeError("cluster_points: coords is a CuPy array, so labels (and scenes) must be too")
        import cupy

        note_host_copy()
        with cupy.cuda.Device(coords.device.id):
            result = _capped_host(cupy.asnumpy(coords), cupy.asnumpy(labels),
                                  None if scenes is None else cupy.asnumpy(scenes), radius, min_points,
                                  ignore_labels, max_neighbours)
            return cupy.asarray(result)
    if any(_is_torch(x) or _is_cupy(x) for x in (labels, scenes)):
        raise TypeError(f"cluster_points: coords is a {type(coords).__name__}; pass labels and scenes as the "
                        "same kind of array")
    return _capped_host(np.asarray(coords), np.asarray(labels), None if scenes is None else np.asarray(scenes),
                        radius, min_points, ignore_labels, max_neighbours)


def _capped_host(coords: np.ndarray, labels: np.ndarray, scenes: np.ndarray | None, radius: float,
                 min_points: int, ignore_labels: Iterable[int], max_neighbours: int) -> np.ndarray:
    radius, min_points, ignore = check_arguments(coords.shape, coords.dtype.kind, labels.shape, labels.dtype.kind,
                                                 radius, min_points, ignore_labels)
    if scenes is not None and (scenes.shape != labels.shape or scenes.dtype.kind not in "iu"):
        raise ValueError(f"cluster_points: scenes must be an integer array of shape {labels.shape}, "
                         f"got {scenes.dtype} {scenes.shape}")
    xyz = np.ascontiguousarray(coords, dtype=working_dtype(coords.dtype))
    return capped_cluster_numpy(xyz, labels.astype(np.int64, copy=False), radius, min_points, ignore, max_neighbours,
                                scenes)
