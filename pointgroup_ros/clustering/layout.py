"""Input checks, the arithmetic contract and the grid layout shared by every grouping path.

Arithmetic contract (the CPU path, the GPU kernels, their host-shim build and the reference all follow
it, so they agree exactly, not just up to rounding):
- working dtype: float64 input computes in float64, every other input (float32, float16, integers) in
  float32;
- neighbours: same label and d2 < r2, with d2 = (dx*dx + dy*dy) + dz*dz, each operation rounded to the
  working dtype, dx = a_x - b_x, and r2 = radius * radius (a Python double) rounded to the working dtype.

Grid: fine cells of side s = radius / sqrt(3) * (1 - 2^-12) (any two points of one cell are neighbours:
a cell is a clique), 2x2x2 fine cells per coarse cell. Fine coordinate f = floor(x * inv_cell) - origin + 2,
computed in float64 and clamped to [0, 2^(b+1) - 1] (so coarse coordinates start at 1, never 0); the top value marks clamped cells (scenes too large
for the key), which are then not treated as cliques. The int64 sort key packs
label - label_min | coarse z | coarse y | coarse x (b bits each) | sub-cell bits z, y, x into 62 bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

INVALID_KEY = np.iinfo(np.int64).max  # sort key of points that join no cluster (sorts last)
_KEY_BITS = 62
_MAX_COARSE_BITS = 20
_MAX_LABEL_BITS = 15  # wider label ranges are first compressed to dense ranks


def working_dtype(dtype: Any) -> np.dtype:
    """float64 stays float64; every other coordinate dtype is computed in float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def check_arguments(shape: tuple[int, ...], coords_kind: str, labels_shape: tuple[int, ...], labels_kind: str,
                    radius: float, min_points: int,
                    ignore_labels: Iterable[int]) -> tuple[float, int, tuple[int, ...]]:
    """Validate what cluster_points gets (shapes, dtype kinds, radius, min_points, ignore_labels)."""
    if len(shape) != 2 or shape[1] != 3:
        raise ValueError(f"cluster_points: coords must have shape (N, 3), got {tuple(shape)}")
    if shape[0] >= 2**31 - 1:
        raise ValueError(f"cluster_points: at most 2^31 - 2 points (int32 indices), got {shape[0]}")
    if coords_kind not in "fiu":
        raise TypeError(f"cluster_points: coords must be a real number array, got dtype kind {coords_kind!r}")
    if tuple(labels_shape) != (shape[0],):
        raise ValueError(f"cluster_points: labels must have shape ({shape[0]},) to match coords, "
                         f"got {tuple(labels_shape)}")
    if labels_kind not in "iu":
        raise TypeError(f"cluster_points: labels must be an integer array, got dtype kind {labels_kind!r}")
    radius = float(radius)
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"cluster_points: radius must be a finite number > 0, got {radius}")
    if not math.isfinite(1.0 / cell_side(radius)):
        raise ValueError(f"cluster_points: radius {radius} is too small")
    if isinstance(min_points, bool) or int(min_points) != min_points or min_points < 0:
        raise ValueError(f"cluster_points: min_points must be an integer >= 0, got {min_points!r}")
    try:
        ignore = tuple(int(v) for v in ignore_labels)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cluster_points: ignore_labels must be an iterable of integers ({exc})") from None
    return radius, int(min_points), ignore


def cell_side(radius: float) -> float:
    return radius / math.sqrt(3.0) * (1.0 - 2.0 ** -12)


def radius_squared(radius: float, dtype: np.dtype) -> np.floating:
    """r2 in the working dtype (radius * radius in double, then rounded once)."""
    return dtype.type(radius * radius)


@dataclass(frozen=True)
class GridLayout:
    """Everything the key computation needs; built on the host from a few scalars of the valid points."""

    inv_cell: float
    origin: tuple[float, float, float]  # floor(min_coordinate * inv_cell) per axis, as doubles
    bits: int  # coarse bits per axis
    label_min: int

    @staticmethod
    def create(radius: float, coord_min: Iterable[float], label_min: int, label_max: int) -> "GridLayout":
        """label_max - label_min must fit in _MAX_LABEL_BITS bits (see needs_label_ranks)."""
        inv = 1.0 / cell_side(radius)
        origin = tuple(float(math.floor(float(c) * inv)) for c in coord_min)
        label_bits = int(label_max - label_min).bit_length()
        bits = min(_MAX_COARSE_BITS, (_KEY_BITS - 3 - label_bits) // 3)
        return GridLayout(inv, origin, bits, int(label_min))  # type: ignore[arg-type]

    @staticmethod
    def needs_label_ranks(label_min: int, label_max: int) -> bool:
        return int(label_max - label_min).bit_length() > _MAX_LABEL_BITS

    @property
    def top(self) -> int:
        """The fine coordinate of clamped cells."""
        return (2 << self.bits) - 1


def cell_keys_numpy(xyz: Any, labels: np.ndarray, layout: GridLayout) -> np.ndarray:
    """int64 (K,) sort keys of valid points; xyz (K, 3) working dtype, or its three columns (x, y, z);
    labels (K,) int64.

    The same arithmetic as the pg_cell_keys kernel, so both paths build identical grids.
    """
    columns = [xyz[:, axis] for axis in range(3)] if isinstance(xyz, np.ndarray) else list(xyz)
    b = layout.bits
    key = (labels - layout.label_min) << (3 * b + 3)
    for axis in range(3):
        f = np.floor(columns[axis].astype(np.float64) * layout.inv_cell)
        f -= layout.origin[axis]
        f += 2.0
        np.clip(f, 0.0, float(layout.top), out=f)
        fine = f.astype(np.int64)
        key |= ((fine >> 1) << (3 + axis * b)) | ((fine & 1) << axis)
    return key


def fine_coords(keys: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fine cell coordinates (x, y, z) of int64 keys."""
    mask = (1 << bits) - 1
    return tuple(((keys >> (3 + axis * bits)) & mask) << 1 | ((keys >> axis) & 1)  # type: ignore[return-value]
                 for axis in range(3))


def budget_chunks(ends: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges over consecutive items, each costing about `budget` (at least one item per range):
    ends[i] is the running total of the items' costs up to and including item i. Bounds the memory of the
    candidate pairs the CPU groupings test at a time."""
    n = ends.shape[0]
    start = 0
    while start < n:
        goal = (ends[start - 1] if start else 0) + budget
        stop = min(n, max(start + 1, int(np.searchsorted(ends, goal, "right"))))
        yield start, stop
        start = stop


def clustered_indices(xyz: np.ndarray, labels: np.ndarray, ignore_labels: Iterable[int]) -> np.ndarray:
    """Indices (ascending) of the points a CPU grouping clusters: finite, and of a class not ignored (stuff)."""
    finite = np.isfinite(xyz)
    valid = finite[:, 0] & finite[:, 1] & finite[:, 2]
    for label in ignore_labels:
        valid &= labels != label
    return np.flatnonzero(valid)
