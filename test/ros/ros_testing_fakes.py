"""A small stand-in for pointgroup_ros.pipeline.Pipeline with the same interface, for tests of the ROS layer.

The conversion, message, runner and node mechanics do not need the network: FakePipeline groups the valid
points into 0.25 m grid cells (one instance per cell with enough points, class from the cell's height),
honouring grouping.min_points and postprocess.min_instance_points / score_threshold like the real one, the
preprocess ranges (min_range / max_range from the input frame's origin; voxel_size is recorded, not applied)
and a gravity_transform (cells and boxes in the transformed frame, Segmentation.frame "gravity").
Deterministic and vectorised. FakeClock: a monotonic clock that a test moves by hand.
"""
from __future__ import annotations

import numpy as np

from pointgroup_ros.config import Config, GroupingConfig, PostprocessConfig, PreprocessConfig
from pointgroup_ros.pipeline import Segmentation

CELL = 0.25  # metres


class FakeClock:
    """A monotonic clock (seconds) that moves only when told to: the node's rates and silence in tests."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakePipeline:
    def __init__(self, cfg: Config | None = None, cell: float = CELL) -> None:
        self.cfg = cfg or Config()
        self.cell = cell
        self.max_points = 300_000
        self.device = "cpu"
        self.calls: list[dict] = []

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.data.class_names

    def segment(self, xyz: np.ndarray, rgb: np.ndarray | None = None, valid: np.ndarray | None = None,
                grouping: GroupingConfig | None = None, postprocess: PostprocessConfig | None = None,
                preprocess: PreprocessConfig | None = None,
                gravity_transform: np.ndarray | None = None) -> Segmentation:
        grouping = grouping or self.cfg.grouping
        postprocess = postprocess or self.cfg.postprocess
        preprocess = preprocess or self.cfg.preprocess
        n = xyz.shape[0]
        valid = np.isfinite(xyz).all(axis=1) if valid is None else valid & np.isfinite(xyz).all(axis=1)
        self.calls.append({"n": n, "rgb": rgb is not None, "grouping": grouping, "postprocess": postprocess,
                           "preprocess": preprocess, "gravity_transform": gravity_transform})
        dist = np.linalg.norm(np.where(valid[:, None], xyz, 0).astype(np.float64), axis=1)
        if preprocess.min_range > 0:
            valid = valid & (dist >= preprocess.min_range)
        if preprocess.max_range > 0:
            valid = valid & (dist <= preprocess.max_range)
        frame = "input" if gravity_transform is None else "gravity"
        idx = np.flatnonzero(valid)
        if idx.size == 0:
            return Segmentation.empty(n, tuple(self.class_names), frame)
        pts = xyz[idx].astype(np.float64)
        if gravity_transform is not None:
            g = np.asarray(gravity_transform, np.float64)
            pts = pts @ g[:3, :3].T + g[:3, 3]
        num_classes = len(self.class_names)
        semantic = np.full(n, -1, np.int32)
        cells = np.floor(pts / self.cell).astype(np.int64)
        semantic[idx] = np.abs(cells[:, 2]) % num_classes
        _, cell_id, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
        cell_id = cell_id.reshape(-1)
        keep = counts >= max(grouping.min_points, postprocess.min_instance_points)
        score_of_cell = (np.arange(counts.shape[0]) * 0.6180339887) % 1.0
        keep &= score_of_cell >= postprocess.score_threshold
        kept = np.flatnonzero(keep)
        order = kept[np.argsort(-score_of_cell[kept], kind="stable")]  # descending score
        rank = np.full(counts.shape[0], -1, np.int64)
        rank[order] = np.arange(order.shape[0])
        instance = np.full(n, -1, np.int32)
        instance[idx] = rank[cell_id]
        member = instance[idx] >= 0
        point_idx = idx[member][np.argsort(instance[idx][member], kind="stable")].astype(np.int64)
        m = order.shape[0]
        sizes = np.bincount(instance[idx][member], minlength=m)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        box_min = np.full((m, 3), np.inf, np.float32)
        box_max = np.full((m, 3), -np.inf, np.float32)
        where = np.empty((n, 3), np.float32)  # the points in the frame the boxes are reported in
        where[idx] = pts
        np.minimum.at(box_min, instance[point_idx], where[point_idx])
        np.maximum.at(box_max, instance[point_idx], where[point_idx])
        inst_class = semantic[point_idx[offsets[:-1]]] if m else np.zeros(0, np.int32)
        return Segmentation(semantic=semantic, instance=instance, instance_class=inst_class.astype(np.int32),
                            instance_score=score_of_cell[order].astype(np.float32), instance_point_idx=point_idx,
                            instance_offsets=offsets, box_min=box_min, box_max=box_max,
                            class_names=tuple(self.class_names), frame=frame, network_points=int(idx.size),
                            timings_ms={"fake": 0.1})


def make_segmentation(n: int, class_names: tuple[str, ...] = ("chair", "table", "lamp")) -> Segmentation:
    """A hand-made segmentation of n points: two instances (points 0..9 and 20..24), points 30.. invalid."""
    semantic = np.zeros(n, np.int32)
    semantic[30:] = -1
    instance = np.full(n, -1, np.int32)
    instance[0:10], instance[20:25] = 0, 1
    point_idx = np.r_[np.arange(10), np.arange(20, 25)].astype(np.int64)
    return Segmentation(semantic=semantic, instance=instance, instance_class=np.array([0, 1], np.int32),
                        instance_score=np.array([0.9, 0.4], np.float32), instance_point_idx=point_idx,
                        instance_offsets=np.array([0, 10, 15], np.int64),
                        box_min=np.array([[0, 0, 0], [1, 1, 1]], np.float32),
                        box_max=np.array([[1, 2, 3], [1.5, 1.5, 1.5]], np.float32), class_names=class_names)


class ShuffledObjectsPipeline(FakePipeline):
    """A pipeline whose instances are given by the points' order, not their place: the cloud's first `split`
    points are object A (class 0), the rest object B (class 1), whatever the input frame. The ranks (score order)
    of the two are shuffled per call (rng), as a real network's scores wobble between frames, so a consumer that
    took the rank as the object's id would see A and B swap. Boxes in the gravity frame when one is given."""

    def __init__(self, cfg: Config | None = None, split: int = 0, seed: int = 0) -> None:
        super().__init__(cfg)
        self.split = split  # 0: half of the points
        self._rng = np.random.default_rng(seed)

    def segment(self, xyz: np.ndarray, rgb: np.ndarray | None = None, valid: np.ndarray | None = None,
                grouping: GroupingConfig | None = None, postprocess: PostprocessConfig | None = None,
                preprocess: PreprocessConfig | None = None,
                gravity_transform: np.ndarray | None = None) -> Segmentation:
        n = xyz.shape[0]
        swapped = bool(self._rng.integers(0, 2))
        self.calls.append({"n": n, "swapped": swapped, "gravity_transform": gravity_transform})
        split = self.split or n // 2
        pts = xyz.astype(np.float64)
        if gravity_transform is not None:
            g = np.asarray(gravity_transform, np.float64)
            pts = pts @ g[:3, :3].T + g[:3, 3]
        objects = [np.arange(split), np.arange(split, n)]  # A, B
        order = [1, 0] if swapped else [0, 1]  # rank -> object
        semantic = np.full(n, -1, np.int32)
        semantic[:split], semantic[split:] = 0, 1
        instance = np.full(n, -1, np.int32)
        for rank, obj in enumerate(order):
            instance[objects[obj]] = rank
        point_idx = np.concatenate([objects[obj] for obj in order]).astype(np.int64)
        sizes = [objects[obj].shape[0] for obj in order]
        box_min = np.stack([pts[objects[obj]].min(0) for obj in order]).astype(np.float32)
        box_max = np.stack([pts[objects[obj]].max(0) for obj in order]).astype(np.float32)
        return Segmentation(semantic=semantic, instance=instance, instance_class=np.array(order, np.int32),
                            instance_score=np.array([0.9, 0.8], np.float32), instance_point_idx=point_idx,
                            instance_offsets=np.array([0, sizes[0], sizes[0] + sizes[1]], np.int64),
                            box_min=box_min, box_max=box_max, class_names=tuple(self.class_names),
                            frame="input" if gravity_transform is None else "gravity", network_points=n,
                            timings_ms={"fake": 0.1})
