"""The authors' evaluation protocol: their test.py's flip / rotation draw for draw, whole scenes, and
`pointgroup-ros eval --authors-protocol` end to end (on the real ScanNet scans when ../shared/realdata has them)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pointgroup_ros.cli import main
from pointgroup_ros.config import PreprocessConfig, load_config
from pointgroup_ros.data.scene import Scene, save_scene
from pointgroup_ros.evaluation.authors_protocol import authors_test_matrix, authors_test_transform
from pointgroup_ros.evaluation.model_eval import NO_POINT_CAP, evaluate_pipeline
from pointgroup_ros.pipeline import Pipeline, Segmentation, build_model


def _their_data_augment(xyz: np.ndarray) -> np.ndarray:
    """The authors' Dataset.dataAugment(xyz, jitter=False, flip=True, rot=True), as written in their
    data/scannetv2_inst.py, on numpy's global generator."""
    m = np.eye(3)
    m[0][0] *= np.random.randint(0, 2) * 2 - 1  # flip x randomly
    theta = np.random.rand() * 2 * math.pi
    m = np.matmul(m, [[math.cos(theta), math.sin(theta), 0], [-math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    return np.matmul(xyz, m)


@pytest.fixture
def global_numpy_state():
    """The test replays the authors' calls on numpy's global generator: restore it afterwards."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def test_matches_their_test_loader_with_16_forked_workers(global_numpy_state) -> None:
    """test.py: np.random.seed(567), then a DataLoader with 16 workers, each forked with that numpy state and
    handed scenes w, w + 16, ... in turn (round robin). Replayed literally for 40 scenes (three draws per worker)."""
    workers, num_scenes = 16, 40
    xyz = np.random.default_rng(0).uniform(-4, 4, (500, 3)).astype(np.float32)  # float32 like their files
    theirs = {}
    for worker in range(workers):
        np.random.seed(567)  # what each forked worker starts from
        for k in range(worker, num_scenes, workers):
            theirs[k] = _their_data_augment(xyz)
    for k in range(num_scenes):
        ours = authors_test_transform(xyz, k)
        assert ours.dtype == np.float32 and ours.shape == xyz.shape
        np.testing.assert_array_equal(ours, theirs[k].astype(np.float32))  # bit for bit


def test_pinned_draws_of_seed_567() -> None:
    """The legacy RandomState stream is frozen: these values must never change. Scenes 0-15 share the first
    draw (a flip and about 131 degrees), 16-31 the second (a flip), 32-47 the third (no flip)."""
    first = np.array([[0.6590793521509192, 0.7520734057047389, 0.0],
                      [0.7520734057047389, -0.6590793521509192, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(authors_test_matrix(0), first)
    np.testing.assert_array_equal(authors_test_matrix(15), first)
    second = authors_test_matrix(16)
    assert second[0, 0] == pytest.approx(-0.9755158538213966, abs=1e-15)
    assert authors_test_matrix(32)[0, 0] == pytest.approx(0.9704064674302564, abs=1e-15)
    assert authors_test_matrix(311)[0, 1] == pytest.approx(-0.9337411371898703, abs=1e-15)


def test_transform_is_an_x_flip_then_a_rotation_about_z() -> None:
    for k in (0, 16, 32, 100):
        m = authors_test_matrix(k)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-15)  # rigid, about the origin
        np.testing.assert_array_equal(m[2], [0, 0, 1])  # z unchanged
        np.testing.assert_array_equal(m[:, 2], [0, 0, 1])
        flip = round(np.linalg.det(m))
        c, s = m[1, 1], m[1, 0] * -1
        rotation = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
        np.testing.assert_allclose(np.diag([flip, 1, 1]) @ rotation, m, atol=1e-15)
    assert round(np.linalg.det(authors_test_matrix(0))) == -1 and round(np.linalg.det(authors_test_matrix(32))) == 1
    # one worker would be one stream over the scenes in order: scene 1 gets the second draw
    np.testing.assert_array_equal(authors_test_matrix(1, workers=1), authors_test_matrix(16))
    with pytest.raises(ValueError):
        authors_test_matrix(-1)


class ColourOraclePipeline:
    """Stands in for Pipeline: reads each point's instance from its colour (red = instance + 1) and returns
    those instances with score 1; records the coordinates it was given. Its figures are perfect only if the
    evaluation scores the predictions against the same points' ground truth."""

    max_points = 300_000

    def __init__(self, cfg) -> None:
        self.cfg, self.seen, self.caps = cfg, [], []

    def segment(self, xyz, rgb, grouping=None, postprocess=None, preprocess=None, gravity_transform=None):
        self.seen.append(np.array(xyz))
        self.caps.append(self.max_points)
        n = len(xyz)
        instance = rgb[:, 0].astype(np.int32) - 1
        ids = np.unique(instance[instance >= 0])
        members = [np.flatnonzero(instance == i) for i in ids]
        chair = self.cfg.data.class_names.index("chair")
        return Segmentation(np.full(n, chair, np.int32), instance, np.full(len(ids), chair, np.int32),
                            np.ones(len(ids), np.float32), np.concatenate(members).astype(np.int64),
                            np.cumsum([0] + [len(m) for m in members]).astype(np.int64),
                            np.zeros((len(ids), 3), np.float32), np.zeros((len(ids), 3), np.float32),
                            self.cfg.data.class_names)


def test_evaluate_pipeline_moves_the_points_and_scores_them_against_their_own_ground_truth() -> None:
    cfg = load_config("synthetic")
    chair = cfg.data.class_names.index("chair")
    rng = np.random.default_rng(1)
    scenes = []
    for k in range(3):
        instance = rng.permutation(np.repeat(np.arange(3), 150))  # shuffled: the order carries the labels
        rgb = np.zeros((instance.size, 3), np.uint8)
        rgb[:, 0] = instance + 1
        scenes.append(SimpleNamespace(xyz=rng.uniform(-3, 3, (instance.size, 3)).astype(np.float32), rgb=rgb,
                                      semantic=np.full(instance.size, chair), instance=instance, name=f"s{k}"))
    pipe = ColourOraclePipeline(cfg)
    result = evaluate_pipeline(pipe, scenes, progress=False, point_transform=authors_test_transform)
    for k, (scene, seen) in enumerate(zip(scenes, pipe.seen)):
        np.testing.assert_array_equal(seen, authors_test_transform(scene.xyz, k))
    assert not np.allclose(pipe.seen[0], scenes[0].xyz)
    assert result["scenes"] == 3 and result["AP50"] == pytest.approx(1.0) and result["AP"] == pytest.approx(1.0)
    assert pipe.caps == [NO_POINT_CAP] * 3 and pipe.max_points == 300_000  # lifted while evaluating, restored


def test_a_scene_over_the_default_cap_is_evaluated_whole() -> None:
    """A real Pipeline with its default max_points (300,000) and a tiny network: a scene of 300,500 points, every
    one of them its own network point (no downsampling), reaches the network whole."""
    cfg = load_config("synthetic").replace(model={"widths": [4, 8], "score_widths": [4, 8], "block_reps": 1})
    pipe = Pipeline.from_model(cfg, build_model(cfg, None), device="cpu")
    default_cap = pipe.max_points
    n = default_cap + 500
    rng = np.random.default_rng(0)
    scene = SimpleNamespace(xyz=rng.uniform(0, 1, (n, 3)).astype(np.float32) * np.float32([30, 30, 3]),
                            rgb=np.zeros((n, 3), np.uint8), semantic=np.zeros(n, np.int64),
                            instance=np.full(n, -100, np.int64))
    network_points = []
    segment = pipe.segment

    def recording_segment(*args, **kwargs):
        seg = segment(*args, **kwargs)
        network_points.append(seg.network_points)
        return seg

    pipe.segment = recording_segment  # type: ignore[method-assign]
    evaluate_pipeline(pipe, [scene], progress=False, preprocess=PreprocessConfig(voxel_size=0.0))
    assert network_points == [n]
    assert pipe.max_points == default_cap  # the caller's pipeline is left as it was


def _write_scenes(folder: Path, count: int) -> None:
    rng = np.random.default_rng(2)
    for k in range(count):
        n = 400
        save_scene(Scene(rng.uniform(-1, 1, (n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8),
                         rng.integers(0, 7, n).astype(np.int64), np.repeat(np.arange(4), n // 4).astype(np.int64),
                         f"scene{k:04d}_00"), folder / f"scene{k:04d}_00.npz")


def test_eval_cli_authors_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """eval --authors-protocol: the pipeline is uncapped, sees every point (voxel_size 0) moved by the authors'
    transform of scene k in name order; the JSON says which protocol ran."""
    import pointgroup_ros.pipeline as pipeline_module

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text("data: {dataset: synthetic, class_names: [floor, wall, chair, table, cabinet, sofa, bin], "
                        "stuff_classes: [0, 1]}\nmodel: {widths: [4, 8], score_widths: [4, 8], block_reps: 1}\n")
    _write_scenes(tmp_path / "val", 2)
    calls: list[tuple] = []

    class RecordingPipeline(Pipeline):
        def segment(self, xyz, rgb=None, valid=None, grouping=None, postprocess=None, preprocess=None,
                    gravity_transform=None):
            calls.append((np.array(xyz), self.max_points, preprocess))
            return super().segment(xyz, rgb, valid, grouping, postprocess, preprocess, gravity_transform)

    monkeypatch.setattr(pipeline_module, "Pipeline", RecordingPipeline)
    out = tmp_path / "eval.json"
    assert main(["eval", "--config", str(cfg_path), "--data", str(tmp_path), "--device", "cpu",
                 "--authors-protocol", "--json", str(out)]) == 0
    evaluated = calls[-2:]  # after the warm-up frame
    for k, (xyz, cap, pre) in enumerate(evaluated):
        stored = np.load(tmp_path / "val" / f"scene{k:04d}_00.npz")["xyz"]
        np.testing.assert_array_equal(xyz, authors_test_transform(stored, k))
        assert cap == NO_POINT_CAP and pre.voxel_size == 0.0
    result = json.loads(out.read_text())
    assert result["scenes"] == 2 and "seed 567" in result["protocol"]

    # an explicit voxel size stays; the transform does not apply to sensor views
    calls.clear()
    assert main(["eval", "--config", str(cfg_path), "--data", str(tmp_path), "--device", "cpu",
                 "--authors-protocol", "--set", "preprocess.voxel_size=0.05"]) == 0
    assert calls[-1][2].voxel_size == 0.05
    assert main(["eval", "--config", str(cfg_path), "--data", str(tmp_path), "--device", "cpu",
                 "--authors-protocol", "--view", "far"]) == 2


def test_eval_authors_protocol_on_a_real_scannet_scan(realdata: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ScanNet scan (81,369 points), prepared and evaluated with the scannet preset (random weights: the
    figures mean nothing) under the authors' protocol: it runs end to end and the network sees every point."""
    import pointgroup_ros.pipeline as pipeline_module

    prepared = tmp_path / "prep"
    assert main(["prepare", "scannet", "--src", str(realdata / "scannet"), "--out", str(prepared),
                 "--scenes", "scene0000_00"]) == 0
    seen: list[int] = []

    class RecordingPipeline(Pipeline):
        def segment(self, *args, **kwargs):
            seg = super().segment(*args, **kwargs)
            seen.append(seg.network_points)
            return seg

    monkeypatch.setattr(pipeline_module, "Pipeline", RecordingPipeline)
    out = tmp_path / "eval.json"
    assert main(["eval", "--config", "scannet", "--data", str(prepared), "--device", "cpu", "--authors-protocol",
                 "--json", str(out)]) == 0
    n = len(np.load(realdata / "scannet" / "scene0000_00_vert_all.npy", allow_pickle=False))
    assert seen[-1] == n
    result = json.loads(out.read_text())
    assert result["scenes"] == 1 and set(result) >= {"AP", "AP50", "AP25", "classes", "protocol"}
