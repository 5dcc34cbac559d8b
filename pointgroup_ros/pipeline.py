"""The ROS-free inference pipeline: a cloud's arrays in, instances out (used by the node, the runner, demo).

Segmentation is the contract between the pipeline and the message / file writers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Segmentation:
    """Result for one cloud of N input points (M instances). Arrays are numpy, on the host.

    semantic: int32 (N,), predicted class index per input point; -1 for invalid (NaN / masked) points.
    instance: int32 (N,), instance index 0..M-1 per input point, -1 for none. Where instances overlap,
        a point belongs to the highest-scoring one.
    instance_class: int32 (M,), class index of each instance.
    instance_score: float32 (M,), ScoreNet score in [0, 1]; instances are sorted by descending score.
    instance_point_idx: int64 (K,), the input-cloud indices of every instance's points, concatenated.
    instance_offsets: int64 (M + 1,), instance m owns instance_point_idx[offsets[m]:offsets[m + 1]].
    box_min, box_max: float32 (M, 3), axis-aligned box of each instance's points (input frame, metres).
    class_names: names for the class indices.
    timings_ms: wall time of each stage in milliseconds, in pipeline order.
    """

    semantic: np.ndarray
    instance: np.ndarray
    instance_class: np.ndarray
    instance_score: np.ndarray
    instance_point_idx: np.ndarray
    instance_offsets: np.ndarray
    box_min: np.ndarray
    box_max: np.ndarray
    class_names: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def num_instances(self) -> int:
        return int(self.instance_class.shape[0])

    def instance_points(self, m: int) -> np.ndarray:
        """int64 (n_m,), input-cloud indices of instance m."""
        return self.instance_point_idx[self.instance_offsets[m]:self.instance_offsets[m + 1]]

    def instance_class_names(self) -> list[str]:
        return [self.class_names[c] for c in self.instance_class]
