"""Voxel keys and the voxel IoU of many point sets against many others, vectorised (no per-point loops).

A voxel is the integer cell floor(p / voxel_size) of a point; its key packs the three cell indices into one
non-negative int64 (21 bits per axis, offset by 2^20), so set operations on voxels are operations on sorted
int64 arrays. Groups of keys (one per instance or per track) are stored CSR-style: keys concatenated, each
group's keys unique and sorted, and offsets (G + 1,) delimiting the groups.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["KEY_BITS", "encode_cells", "decode_keys", "voxel_keys", "column_keys", "key_centers", "shift_keys",
           "group_unique", "voxel_iou"]

KEY_BITS = 21
_BIAS = 1 << (KEY_BITS - 1)  # cell indices in [-2^20, 2^20): +-52 km at 5 cm voxels
_MASK = (1 << KEY_BITS) - 1


def encode_cells(cells: np.ndarray) -> np.ndarray:
    """int64 (N,) keys of int64 (N, 3) cell indices (each in [-2^20, 2^20))."""
    c = np.asarray(cells, dtype=np.int64) + _BIAS
    return (c[:, 0] << (2 * KEY_BITS)) | (c[:, 1] << KEY_BITS) | c[:, 2]


def decode_keys(keys: np.ndarray) -> np.ndarray:
    """int64 (N, 3) cell indices of int64 (N,) keys (inverse of encode_cells)."""
    k = np.asarray(keys, dtype=np.int64)
    return np.stack([(k >> (2 * KEY_BITS)) & _MASK, (k >> KEY_BITS) & _MASK, k & _MASK], axis=1) - _BIAS


def voxel_keys(xyz: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """int64 (N,) voxel key of every (N, 3) point and a bool (N,) mask of the points that have one: finite and
    inside the key range (the key of the others is 0)."""
    return column_keys(np.asarray(xyz, dtype=np.float64).T, voxel_size)


def column_keys(coords: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """voxel_keys of points given as (3, N) coordinate rows (the fast layout: every pass runs over contiguous
    memory, where reductions along a length-3 axis of (N, 3) are slow)."""
    n = coords.shape[1]
    keys = np.zeros(n, np.int64)
    valid = np.ones(n, bool)
    for axis in range(3):
        cell = np.floor(np.asarray(coords[axis], np.float64) / voxel_size)
        with np.errstate(invalid="ignore"):  # NaN compares False: invalid
            inside = (cell >= -_BIAS) & (cell < _BIAS)
        valid &= inside
        cell[~inside] = 0.0
        keys |= (cell.astype(np.int64) + _BIAS) << ((2 - axis) * KEY_BITS)
    keys[~valid] = 0
    return keys, valid


def key_centers(keys: np.ndarray, voxel_size: float) -> np.ndarray:
    """float64 (N, 3) centres of the voxels of int64 (N,) keys, in metres."""
    return (decode_keys(keys) + 0.5) * voxel_size


def shift_keys(keys: np.ndarray, cells: np.ndarray | Sequence[int]) -> np.ndarray:
    """Keys moved by an integer number of cells per axis (3,); cells that leave the key range are dropped.
    A translation keeps the keys unique; the result is sorted."""
    moved = decode_keys(keys) + np.asarray(cells, dtype=np.int64)
    inside = np.all((moved >= -_BIAS) & (moved < _BIAS), axis=1)
    return np.sort(encode_cells(moved[inside]))


def group_unique(keys: np.ndarray, groups: np.ndarray, num_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys per group, CSR: (keys int64 (K,), sorted within each group; offsets int64 (num_groups + 1,)).

    keys, groups: (N,) one key and its group index in [0, num_groups) per point, in any order (already grouped,
    as CSR members are, saves a sort).
    """
    keys = np.asarray(keys, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    if np.any(groups[1:] < groups[:-1]):
        order = np.argsort(groups, kind="stable")
        keys, groups = keys[order], groups[order]
    bounds = np.searchsorted(groups, np.arange(num_groups + 1))
    # one sort per group (tens of instances or tracks) is cheaper than a two-key lexsort of everything
    parts = [np.unique(keys[bounds[g]:bounds[g + 1]]) for g in range(num_groups)]
    offsets = np.zeros(num_groups + 1, np.int64)
    np.cumsum([part.shape[0] for part in parts], out=offsets[1:])
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64)), offsets


def _intersections(keys_a: np.ndarray, offsets_a: np.ndarray, keys_b: np.ndarray,
                   offsets_b: np.ndarray) -> np.ndarray:
    """int64 (A, B): shared keys of every (a, b) pair. Sorts B's keys once and looks every A key up in them."""
    na, nb = offsets_a.shape[0] - 1, offsets_b.shape[0] - 1
    label_a = np.repeat(np.arange(na, dtype=np.int64), np.diff(offsets_a))
    label_b = np.repeat(np.arange(nb, dtype=np.int64), np.diff(offsets_b))
    order = np.argsort(keys_b, kind="stable")
    sorted_b, sorted_label_b = keys_b[order], label_b[order]
    lo = np.searchsorted(sorted_b, keys_a, side="left")
    hits = np.searchsorted(sorted_b, keys_a, side="right") - lo  # how many B groups hold this A key
    total = int(hits.sum())
    if total == 0:
        return np.zeros((na, nb), np.int64)
    # every (A key, matching B entry) pair, expanded without a loop: run i covers sorted_b[lo[i]:lo[i] + hits[i]]
    run_start = np.cumsum(hits) - hits
    pos = np.repeat(lo - run_start, hits) + np.arange(total, dtype=np.int64)
    pair = np.repeat(label_a, hits) * nb + sorted_label_b[pos]
    return np.bincount(pair, minlength=na * nb).reshape(na, nb)


def voxel_iou(keys_a: np.ndarray, offsets_a: np.ndarray, keys_b: np.ndarray, offsets_b: np.ndarray) -> np.ndarray:
    """float64 (A, B) IoU |a & b| / |a | b| of every pair of key groups (0 where both are empty).

    Both sides are CSR groups whose keys are unique within each group (group_unique's output); keys may repeat
    across groups (overlapping instances or tracks).
    """
    keys_a, keys_b = np.asarray(keys_a, np.int64), np.asarray(keys_b, np.int64)
    offsets_a, offsets_b = np.asarray(offsets_a, np.int64), np.asarray(offsets_b, np.int64)
    for name, keys, offsets in (("a", keys_a, offsets_a), ("b", keys_b, offsets_b)):
        if offsets.ndim != 1 or offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != keys.shape[0] \
                or np.any(np.diff(offsets) < 0):
            raise ValueError(f"offsets_{name} must run from 0 to len(keys_{name}) = {keys.shape[0]}, "
                             f"non-decreasing; got {offsets.tolist()[:8]}...")
    # sort the smaller side: the cost is one sort plus a binary search per key of the other side
    if keys_b.shape[0] <= keys_a.shape[0]:
        inter = _intersections(keys_a, offsets_a, keys_b, offsets_b)
    else:
        inter = _intersections(keys_b, offsets_b, keys_a, offsets_a).T
    union = np.diff(offsets_a)[:, None] + np.diff(offsets_b)[None, :] - inter
    iou: np.ndarray = np.divide(inter, union, out=np.zeros(inter.shape, np.float64), where=union > 0)
    return iou
