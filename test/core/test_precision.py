"""preprocess.precision (fp32 | fp16): validation, the CPU's fp32 fallback, fp32 grouping inputs; fp16 against fp32
on a CUDA GPU (the `gpu` test, skipped without one)."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

import pointgroup_ros.pipeline as pipeline_module
from pointgroup_ros.config import (ConfigError, PostprocessConfig, PreprocessConfig, config_from_dict, load_config,
                                   preset_names)
from pointgroup_ros.pipeline import Pipeline

CFG = load_config("synthetic").replace(model={"widths": [16, 32]})
NOTE = "precision fp16 needs a CUDA device: running fp32 on cpu"
THING = 2  # 'chair' in the synthetic classes
LOOSE = PostprocessConfig(score_threshold=0.0, nms_iou_threshold=0.3, min_instance_points=20)


def _pipeline(**kwargs) -> Pipeline:
    """The small random network, its semantic head biased to 'chair' (a thing class, so grouping and ScoreNet
    run); the offsets stay the random network's."""
    torch.manual_seed(0)
    pipe = Pipeline(CFG, None, device="cpu", **{"warmup": False, **kwargs})
    with torch.no_grad():
        pipe.model.linear.bias.add_(torch.nn.functional.one_hot(torch.tensor(THING), CFG.data.num_classes) * 10.0)
    return pipe


def _cloud(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four dense balls 1 m apart with colours: small, and grouped into a few proposals by a random network."""
    rng = np.random.default_rng(seed)
    centres = np.arange(4)[:, None] * np.array([1.0, 0.0, 0.0])
    xyz = (centres[:, None, :] + rng.normal(0, 0.08, (4, 500, 3))).reshape(-1, 3).astype(np.float32)
    return xyz, rng.integers(0, 256, xyz.shape).astype(np.uint8)


def _notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "precision fp16" in r.getMessage()]


def _same(a, b) -> None:
    for name in ("semantic", "instance", "instance_class", "instance_score", "instance_point_idx",
                 "instance_offsets", "box_min", "box_max"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ---------------------------------------------------------------------------------------------- config

def test_precision_defaults_to_fp32_everywhere() -> None:
    assert PreprocessConfig().precision == "fp32"
    assert all(load_config(name).preprocess.precision == "fp32" for name in preset_names())
    cfg = config_from_dict({"preprocess": {"precision": "fp16"}})
    assert cfg.preprocess.precision == "fp16" and cfg.to_dict()["preprocess"]["precision"] == "fp16"
    assert CFG.replace(preprocess={"precision": "fp16"}).replace(preprocess={"precision": "fp32"}) == CFG


@pytest.mark.parametrize("value,reason", [
    ("fp64", r"preprocess\.precision: must be one of fp32, fp16, got 'fp64'"),
    ("FP16", r"preprocess\.precision: must be one of fp32, fp16"),
    ("half", r"preprocess\.precision: must be one of"),
    (16, r"preprocess\.precision: must be a string, got 16"),
])
def test_bad_precision_is_refused_naming_the_key(value, reason) -> None:
    with pytest.raises(ConfigError, match=reason):
        config_from_dict({"preprocess": {"precision": value}})
    with pytest.raises(ConfigError, match=reason.split(":")[0]):
        PreprocessConfig(precision=str(value)).validate()


def test_eval_style_set_override_reaches_the_preprocess_section() -> None:
    """`eval --set preprocess.precision=fp16` goes through train.apply_overrides (values read as YAML)."""
    from pointgroup_ros.tools.train import apply_overrides

    assert apply_overrides(CFG, ["preprocess.precision=fp16"]).preprocess.precision == "fp16"
    with pytest.raises(ConfigError, match="preprocess.precision"):
        apply_overrides(CFG, ["preprocess.precision=bf16"])


# ---------------------------------------------------------------------------------------------- the CPU

def test_fp16_on_the_cpu_runs_fp32_with_one_note(caplog: pytest.LogCaptureFixture) -> None:
    pipe = _pipeline()
    xyz, rgb = _cloud()
    fp32 = PreprocessConfig(precision="fp32")
    fp16 = PreprocessConfig(precision="fp16")
    with caplog.at_level(logging.INFO, logger="pointgroup_ros.pipeline"):
        ref = pipe.segment(xyz, rgb, preprocess=fp32, postprocess=LOOSE)
        assert _notes(caplog) == []  # fp32 says nothing
        first = pipe.segment(xyz, rgb, preprocess=fp16, postprocess=LOOSE)
        second = pipe.segment(xyz, rgb, preprocess=fp16, postprocess=LOOSE)
    assert _notes(caplog) == [NOTE]  # once per pipeline, not per frame
    assert ref.network_points > 0 and ref.num_instances >= 1  # a run that exercised grouping and ScoreNet
    _same(ref, first)
    _same(ref, second)
    assert set(first.timings_ms) == set(ref.timings_ms)  # the same stages timed


def test_fp16_in_the_configuration_on_the_cpu_notes_it_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pointgroup_ros.pipeline"):
        pipe = Pipeline(CFG.replace(preprocess={"precision": "fp16"}), None, device="cpu", warmup=True)
        assert _notes(caplog) == [NOTE]  # the warm-up frame runs with the configuration's precision
        pipe.segment(*_cloud())
    assert _notes(caplog) == [NOTE]


def test_no_autocast_on_the_cpu_and_grouping_gets_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever dtype the network hands back (fp16 under CUDA autocast), grouping and ScoreNet's inputs are fp32:
    emulated on the CPU by heads that answer in half precision."""
    pipe = _pipeline()
    xyz, rgb = _cloud(1)
    ref = pipe.segment(xyz, rgb, postprocess=LOOSE)
    halves: list[bool] = []
    real_autocast = pipeline_module._autocast
    monkeypatch.setattr(pipeline_module, "_autocast", lambda half: halves.append(half) or real_autocast(half))
    seen: dict[str, torch.dtype] = {}
    real_group = pipeline_module.dual_set_proposals

    def group(xyz_, offsets, semantic, *args, **kwargs):
        seen.update(xyz=xyz_.dtype, offsets=offsets.dtype)
        return real_group(xyz_, offsets, semantic, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "dual_set_proposals", group)
    model = pipe.model
    real_backbone, real_sem, real_off, real_score = (model.backbone, model.semantic_head, model.offset_head,
                                                     model.score_proposals)

    def score(features, xyz_, proposals, *args, **kwargs):
        seen.update(score_features=features.dtype, score_xyz=xyz_.dtype)
        return real_score(features, xyz_, proposals, *args, **kwargs).half()

    monkeypatch.setattr(model, "backbone", lambda voxels: real_backbone(voxels).half())
    monkeypatch.setattr(model, "semantic_head", lambda f: real_sem(f.float()).half())
    monkeypatch.setattr(model, "offset_head", lambda f: real_off(f.float()).half())
    monkeypatch.setattr(model, "score_proposals", score)
    seg = pipe.segment(xyz, rgb, preprocess=PreprocessConfig(precision="fp16"), postprocess=LOOSE)
    assert halves == [False, False]  # CPU: the network and ScoreNet both ran without autocast
    assert seen == {"xyz": torch.float32, "offsets": torch.float32, "score_features": torch.float32,
                    "score_xyz": torch.float32}
    assert seg.instance_score.dtype == np.float32 and ref.num_instances >= 1
    # half-precision heads change little on this scene
    assert (seg.semantic == ref.semantic).mean() > 0.99


@pytest.mark.filterwarnings("ignore:.*CUDA is not available.*:UserWarning")  # built on a CPU-only torch
def test_autocast_context() -> None:
    assert isinstance(pipeline_module._autocast(True), torch.autocast)
    with pipeline_module._autocast(False):
        assert not torch.is_autocast_enabled()


# ---------------------------------------------------------------------------------------------- CUDA

def _matched(a, b, min_points: int = 100, iou: float = 0.8) -> float:
    """Fraction of a's instances (of at least min_points points) that b has too (a point IoU above `iou`)."""
    sets_b = [set(b.instance_points(k).tolist()) for k in range(b.num_instances)]
    big = [set(a.instance_points(k).tolist()) for k in range(a.num_instances)
           if len(a.instance_points(k)) >= min_points]
    if not big:
        return 1.0
    hits = sum(any(len(s & t) / len(s | t) > iou for t in sets_b) for s in big)
    return hits / len(big)


@pytest.mark.gpu
def test_fp16_agrees_with_fp32_on_cuda(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from pointgroup_ros.data.synthetic import generate_scene
    from pointgroup_ros.training.sources import HELD_OUT_SEED_BASE

    scene = generate_scene(HELD_OUT_SEED_BASE + 3)
    rgb = np.clip(scene.rgb, 0, 255).astype(np.uint8)
    pipe = Pipeline(device="cuda")  # the demo model, on its held-out room
    fp32 = pipe.cfg.preprocess
    fp16 = dataclasses.replace(fp32, precision="fp16")
    dtypes: list[torch.dtype] = []
    hook = pipe.model.offset_linear.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    seen: list[torch.dtype] = []
    real_group = pipeline_module.dual_set_proposals

    def group(xyz_, offsets, *args, **kwargs):
        seen.extend([xyz_.dtype, offsets.dtype])
        return real_group(xyz_, offsets, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "dual_set_proposals", group)
    with caplog.at_level(logging.INFO, logger="pointgroup_ros.pipeline"):
        ref = pipe.segment(scene.xyz, rgb, preprocess=fp32)
        half = pipe.segment(scene.xyz, rgb, preprocess=fp16)
        again = pipe.segment(scene.xyz, rgb, preprocess=fp32)  # switched back live: fp32 again
    hook.remove()
    assert _notes(caplog) == []  # no fallback on CUDA
    assert dtypes == [torch.float32, torch.float16, torch.float32]  # fp16 did run the heads in half precision
    assert set(seen) == {torch.float32}  # grouping saw fp32 coordinates and offsets every time
    assert ref.num_instances >= 1
    assert (ref.semantic == half.semantic).mean() > 0.99
    assert abs(ref.num_instances - half.num_instances) <= 1
    assert _matched(ref, half) >= 0.9 and _matched(half, ref) >= 0.9
    assert half.instance_score.dtype == np.float32 and np.all((half.instance_score >= 0) & (half.instance_score <= 1))
    assert set(half.timings_ms) == set(ref.timings_ms)
    assert (again.semantic == ref.semantic).mean() > 0.999 and abs(again.num_instances - ref.num_instances) <= 1
