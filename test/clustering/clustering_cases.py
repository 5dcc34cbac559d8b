"""Test data for the clustering tests: random clouds and the real ScanNet scans (helpers, not tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import connected_components

# ScanNet-20 training ids from NYU40 ids (wall=1 -> 0, floor=2 -> 1, ...); everything else -> -100.
NYU40_TO_SCANNET20 = np.full(41, -100, dtype=np.int64)
NYU40_TO_SCANNET20[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]] = np.arange(20)
SCANNET_SCENES = ("scene0000_00", "scene0000_01", "scene0000_02")


def random_cloud(seed: int, n_max: int = 800, dtype=np.float32):
    """(xyz, labels, radius, min_points): a random cloud with duplicates, a few labels, clustered spots."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, n_max))
    extent = rng.uniform(0.05, 1.0)
    xyz = rng.random((n, 3)) * extent
    spots = rng.random((3, 3)) * extent
    near_spot = rng.random(n) < 0.3
    xyz[near_spot] = spots[rng.integers(0, 3, near_spot.sum())] + rng.normal(0, 0.01, (near_spot.sum(), 3))
    xyz = xyz.astype(dtype)
    if seed % 3 == 0:  # exact duplicates
        xyz[rng.integers(0, n, n // 3)] = xyz[rng.integers(0, n, n // 3)]
    labels = rng.integers(0, int(rng.integers(1, 5)), n)
    return xyz, labels, float(rng.uniform(0.01, 0.12)), int(rng.integers(1, 12))


def brute_force(xyz: np.ndarray, labels: np.ndarray, radius: float, min_points: int, ignore=()) -> np.ndarray:
    """O(N^2) connected components under the arithmetic contract (small N only)."""
    dtype = np.float64 if xyz.dtype == np.float64 else np.float32
    xyz = xyz.astype(dtype)
    n = len(xyz)
    valid = np.isfinite(xyz).all(axis=1) & ~np.isin(labels, list(ignore))
    with np.errstate(invalid="ignore"):
        d = xyz[:, None, :] - xyz[None, :, :]
        d2 = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]
        d2 = d2 + d[..., 2] * d[..., 2]
        adj = (d2 < dtype(radius * radius)) & (labels[:, None] == labels[None, :])
    adj &= valid[:, None] & valid[None, :]
    _, comp = connected_components(adj, directed=False)
    out = np.full(n, -1, dtype=np.int64)
    sizes = np.bincount(comp[valid], minlength=comp.max() + 1)
    next_id, seen = 0, {}
    for i in np.flatnonzero(valid):
        c = comp[i]
        if c not in seen:
            seen[c] = next_id if sizes[c] >= min_points else -1
            next_id += seen[c] >= 0
        out[i] = seen[c]
    return out


def load_scan(folder: Path, scene: str):
    """(xyz float32 (N, 3), semantic int64 (N,) ScanNet-20 or -100, gt_offsets float32 (N, 3))."""
    base = folder / "scannet"
    vert = np.load(base / f"{scene}_vert_all.npy", allow_pickle=False)
    sem = NYU40_TO_SCANNET20[np.clip(np.load(base / f"{scene}_sem_label_all.npy", allow_pickle=False), 0, 40)]
    ins = np.load(base / f"{scene}_ins_label_all.npy", allow_pickle=False).astype(np.int64)
    xyz = np.ascontiguousarray(vert[:, :3], dtype=np.float32)
    offsets = np.zeros_like(xyz)
    has = ins > 0
    counts = np.bincount(ins[has])
    centroid = np.zeros((len(counts), 3))
    for axis in range(3):
        centroid[:, axis] = np.bincount(ins[has], weights=xyz[has, axis], minlength=len(counts))
    centroid[counts > 0] /= counts[counts > 0, None]
    offsets[has] = (centroid[ins[has]] - xyz[has]).astype(np.float32)  # instance centroid - xyz
    return xyz, sem, offsets
