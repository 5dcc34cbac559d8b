"""ScenePredictions: one scene's predicted instances in compressed (CSR) form, shared by both protocols."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike


class ScenePredictions:
    """The M predicted instances of one scene of N points (vertices).

    point_idx: int64 (K,), the member point indices of all instances, concatenated.
    offsets: int64 (M + 1,), instance m owns point_idx[offsets[m]:offsets[m + 1]]; offsets[0] = 0.
    label_ids: int64 (M,), each instance's class in the id space of the evaluated ground truth
        (ScanNet: NYU40 ids, compared with gt_ids // 1000; S3DIS: class index 0..12).
    confidences: float64 (M,), each instance's score.

    A point listed twice in one instance counts once (the instance is a set of points).
    The constructor takes any array-like (lists, numpy, torch CPU tensors) and converts to these dtypes;
    it raises ValueError for inconsistent shapes, non-integer indices or non-finite confidences.
    """

    def __init__(self, point_idx: ArrayLike, offsets: ArrayLike, label_ids: ArrayLike, confidences: ArrayLike) -> None:
        self.point_idx = _as_1d(point_idx, np.int64, "point_idx")
        self.offsets = _as_1d(offsets, np.int64, "offsets")
        self.label_ids = _as_1d(label_ids, np.int64, "label_ids")
        self.confidences = _as_1d(confidences, np.float64, "confidences")
        m = self.offsets.shape[0] - 1
        if m < 0 or self.offsets[0] != 0:
            raise ValueError("ScenePredictions.offsets must start with 0 and have M + 1 entries")
        if np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != self.point_idx.shape[0]:
            raise ValueError(f"ScenePredictions.offsets must be non-decreasing and end at len(point_idx) = "
                             f"{self.point_idx.shape[0]}, got last offset {int(self.offsets[-1])}")
        if self.label_ids.shape[0] != m or self.confidences.shape[0] != m:
            raise ValueError(f"ScenePredictions: {m} instances in offsets but {self.label_ids.shape[0]} label_ids "
                             f"and {self.confidences.shape[0]} confidences")
        if not np.all(np.isfinite(self.confidences)):
            raise ValueError("ScenePredictions.confidences must be finite")

    def __repr__(self) -> str:
        return f"ScenePredictions({self.num_instances} instances, {self.point_idx.shape[0]} member entries)"

    @property
    def num_instances(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @staticmethod
    def empty() -> "ScenePredictions":
        return ScenePredictions(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64),
                                np.zeros(0, np.float64))

    @staticmethod
    def from_masks(masks: ArrayLike, label_ids: ArrayLike, confidences: ArrayLike) -> "ScenePredictions":
        """From dense masks: masks (M, N) bool or int (non-zero = member), label_ids (M,), confidences (M,)."""
        masks = np.asarray(masks)
        if masks.ndim != 2:
            raise ValueError(f"masks must be (M, N), got shape {masks.shape}")
        inst, point = np.nonzero(masks)  # row-major: grouped by instance, points ascending
        offsets = np.zeros(masks.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(inst, minlength=masks.shape[0]), out=offsets[1:])
        return ScenePredictions(point, offsets, label_ids, confidences)

    @staticmethod
    def from_segmentation(seg: Any, label_of_class: Sequence[int] | np.ndarray | None = None) -> "ScenePredictions":
        """From a pipeline Segmentation (instance_point_idx / instance_offsets / instance_class / instance_score).

        label_of_class: int (C,), maps the pipeline's class index to the evaluation label id (for ScanNet the
        NYU40 id of each training class); None keeps the class index.
        """
        labels = np.asarray(seg.instance_class, dtype=np.int64)
        if label_of_class is not None:
            lut = np.asarray(label_of_class, dtype=np.int64)
            if labels.size and (labels.min() < 0 or labels.max() >= lut.shape[0]):
                raise ValueError(f"instance_class outside 0..{lut.shape[0] - 1} of label_of_class")
            labels = lut[labels]
        return ScenePredictions(seg.instance_point_idx, seg.instance_offsets, labels, seg.instance_score)

    def members(self, num_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Validated, duplicate-free membership: (instance int64 (K',), point int64 (K',)), grouped by instance.

        Raises ValueError when a point index is outside 0..num_points-1.
        """
        idx = self.point_idx
        if idx.size and (idx.min() < 0 or idx.max() >= num_points):
            bad = int(idx[(idx < 0) | (idx >= num_points)][0])
            raise ValueError(f"prediction point index {bad} is outside the scene's {num_points} points")
        sizes = np.diff(self.offsets)
        inst = np.repeat(np.arange(self.num_instances, dtype=np.int64), sizes)
        # Fast check: strictly increasing inside every instance means no duplicates (the pipeline's form).
        step_ok = np.diff(idx) > 0
        new_segment = np.diff(inst) != 0
        if np.all(step_ok | new_segment):
            return inst, idx
        key = np.unique(inst * np.int64(num_points) + idx)
        return key // num_points, key % num_points

    def sizes(self, num_points: int) -> np.ndarray:
        """int64 (M,), the number of distinct points of each instance."""
        inst, _ = self.members(num_points)
        return np.bincount(inst, minlength=self.num_instances).astype(np.int64)


def _as_1d(x: Any, dtype: type, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"ScenePredictions.{name} must be 1-D, got shape {a.shape}")
    if np.issubdtype(dtype, np.integer) and a.size and not np.issubdtype(a.dtype, np.integer):
        if a.dtype == bool or not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"ScenePredictions.{name} must hold integers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)
