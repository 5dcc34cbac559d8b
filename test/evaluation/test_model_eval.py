"""compare_cluster_sets: the Table 2 ablation varies the grouping sets only, never the radii or thresholds."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

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


class ScriptedPipeline:
    """Stands in for Pipeline on camera frames: returns the instances scripted for each frame (by call order)
    and records the gravity transform it was given."""

    def __init__(self, cfg, script: list[list[tuple[int, float, np.ndarray]]]) -> None:
        self.cfg, self.script, self.gravity = cfg, script, []

    def segment(self, xyz, rgb, grouping=None, postprocess=None, preprocess=None, gravity_transform=None):
        self.gravity.append(gravity_transform)
        instances = self.script[len(self.gravity) - 1]
        n = len(xyz)
        instance = np.full(n, -1, np.int32)
        for m, (_, _, idx) in enumerate(instances):
            instance[idx] = m
        offsets = np.cumsum([0] + [len(idx) for _, _, idx in instances]).astype(np.int64)
        return Segmentation(np.zeros(n, np.int32), instance, np.array([c for c, _, _ in instances], np.int32),
                            np.array([s for _, s, _ in instances], np.float32),
                            np.concatenate([idx for _, _, idx in instances]).astype(np.int64), offsets,
                            np.zeros((len(instances), 3), np.float32), np.zeros((len(instances), 3), np.float32),
                            self.cfg.data.class_names, frame="gravity")


def test_camera_frames_are_scored_one_by_one_with_their_gravity_transform() -> None:
    """Per-frame AP over a sequence, computed by hand. Object ids stay the same over a sequence (chair 3 is in
    both frames), yet each frame is its own scene: a chair found in frame 0 and missed in frame 1 counts once
    found and once missed. Frame 0: chairs 3 and 4, table 7; frame 1: chair 3, table 7 (200 points each).
    Predictions: frame 0 chair 3 exactly (score 0.9), a chair of 120 of chair 4's points and 180 of the table's
    (IoU 120 / 380 = 0.32 with chair 4, score 0.8), table 7 exactly (0.7); frame 1 table 7 exactly (0.6),
    nothing for chair 3. (Predictions under 100 points would not count at all: the ScanNet rules.)
    chair: 3 ground-truth objects. IoU 0.5: one true positive, then a false one -> precision 1 up to recall 1/3,
    AP50 = 1/3. IoU 0.25: two true positives -> AP25 = 2/3. table: 2 of 2 -> 1. Classes with ground truth are
    averaged: AP50 = (1/3 + 1) / 2, AP25 = (2/3 + 1) / 2."""
    from pointgroup_ros.evaluation.model_eval import evaluate_pipeline
    from pointgroup_ros.evaluation.sequences import SensorFrame

    cfg = load_config("synthetic")
    chair, table = cfg.data.class_names.index("chair"), cfg.data.class_names.index("table")

    def frame(name: str, objects: list[tuple[int, int]], shift: float) -> SensorFrame:
        semantic = np.repeat([c for c, _ in objects], 200)
        instance = np.repeat([i for _, i in objects], 200)
        n = len(semantic)
        gravity = np.eye(4)
        gravity[2, 3] = shift
        return SensorFrame(name, np.random.default_rng(n).uniform(0, 3, (n, 3)).astype(np.float32),
                           np.zeros((n, 3), np.uint8), semantic.astype(np.int64), instance.astype(np.int64), gravity)

    frames = [frame("seq_0000", [(chair, 3), (chair, 4), (table, 7)], 1.0),
              frame("seq_0001", [(chair, 3), (table, 7)], 2.0)]
    pipe = ScriptedPipeline(cfg, [
        [(chair, 0.9, np.arange(0, 200)), (chair, 0.8, np.r_[200:320, 400:580]), (table, 0.7, np.arange(400, 600))],
        [(table, 0.6, np.arange(200, 400))]])
    result = evaluate_pipeline(pipe, frames, progress=False)
    assert [g[2, 3] for g in pipe.gravity] == [1.0, 2.0]  # each frame with its own transform
    assert result["scenes"] == 2
    assert result["classes"]["chair"]["AP50"] == pytest.approx(1 / 3)
    assert result["classes"]["chair"]["AP25"] == pytest.approx(2 / 3)
    assert result["classes"]["table"]["AP50"] == pytest.approx(1.0)
    assert result["AP50"] == pytest.approx((1 / 3 + 1) / 2)
    assert result["AP25"] == pytest.approx((2 / 3 + 1) / 2)
