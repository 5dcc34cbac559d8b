"""compare_cluster_sets: the Table 2 ablation varies the grouping sets only, never the radii or thresholds."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np

from pointgroup_ros.config import load_config
from pointgroup_ros.evaluation.model_eval import compare_cluster_sets
from pointgroup_ros.pipeline import Segmentation


class RecordingPipeline:
    """Stands in for Pipeline: remembers the settings of every call, finds no instance."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.calls: list[tuple] = []
        self.inputs: list[tuple] = []

    def segment(self, xyz, rgb, grouping=None, postprocess=None, preprocess=None,
                gravity_transform=None) -> Segmentation:
        self.calls.append((grouping, postprocess))
        self.inputs.append((preprocess, gravity_transform))
        n = len(xyz)
        return Segmentation(np.zeros(n, np.int32), np.full(n, -1, np.int32), np.zeros(0, np.int32),
                            np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(1, np.int64),
                            np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), self.cfg.data.class_names)


def test_ablation_keeps_the_configured_radii_and_thresholds() -> None:
    cfg = load_config("synthetic")
    assert cfg.grouping.shifted_radius > 0
    scene = SimpleNamespace(xyz=np.zeros((4, 3), np.float32), rgb=np.zeros((4, 3), np.uint8),
                            semantic=np.array([0, 2, 2, 3]), instance=np.array([-100, 0, 0, 1]))
    pipe = RecordingPipeline(cfg)
    result = compare_cluster_sets(pipe, [scene])
    assert set(result) == {"p", "q", "both"}
    assert [g for g, _ in pipe.calls] == [dataclasses.replace(cfg.grouping, sets=s) for s in ("p", "q", "both")]

    pipe.calls.clear()
    tuned = dataclasses.replace(cfg.grouping, radius=0.05, shifted_radius=0.02, min_points=7)
    post = dataclasses.replace(cfg.postprocess, score_threshold=0.5)
    compare_cluster_sets(pipe, [scene], grouping=tuned, postprocess=post)
    assert [g for g, _ in pipe.calls] == [dataclasses.replace(tuned, sets=s) for s in ("p", "q", "both")]
    assert all(p == post for _, p in pipe.calls)


def test_views_hand_the_pipeline_the_sensor_frame_and_its_gravity_transform() -> None:
    cfg = load_config("synthetic")
    rng = np.random.default_rng(0)
    scene = SimpleNamespace(xyz=rng.uniform(-2, 2, (50, 3)).astype(np.float32), rgb=np.zeros((50, 3), np.uint8),
                            semantic=np.full(50, 2), instance=np.zeros(50, np.int64))
    pipe = RecordingPipeline(cfg)
    fine = dataclasses.replace(cfg.preprocess, voxel_size=0.0)
    compare_cluster_sets(pipe, [scene], view="optical", preprocess=fine)
    assert all(pre == fine for pre, _ in pipe.inputs)
    gravity = pipe.inputs[0][1]
    assert gravity is not None and gravity.shape == (4, 4)
    assert not np.allclose(gravity, np.eye(4))  # a tilted camera, not the identity
