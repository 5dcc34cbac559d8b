"""The whole pipeline on a CUDA GPU against the CPU (skipped without CUDA + CuPy)."""
from __future__ import annotations

import numpy as np
import pytest

from pointgroup_ros.data.synthetic import generate_scene
from pointgroup_ros.pipeline import Pipeline
from pointgroup_ros.training.sources import HELD_OUT_SEED_BASE

pytestmark = pytest.mark.gpu


def test_gpu_and_cpu_pipelines_agree_on_a_held_out_room() -> None:
    import torch

    scene = generate_scene(HELD_OUT_SEED_BASE + 3)
    rgb = np.clip(scene.rgb, 0, 255).astype(np.uint8)
    cpu = Pipeline(device="cpu").segment(scene.xyz, rgb)
    gpu_pipe = Pipeline(device="cuda")
    gpu = gpu_pipe.segment(scene.xyz, rgb)
    # different convolution algorithms round differently: nearly every point keeps its class
    assert (cpu.semantic == gpu.semantic).mean() > 0.995
    assert abs(cpu.num_instances - gpu.num_instances) <= 1
    assert set(gpu.timings_ms) >= {"voxelize", "backbone", "grouping", "scorenet", "nms"}
    # the model moved between devices keeps working (conv algorithm follows the input's device)
    gpu_pipe.model.cpu()
    with torch.no_grad():
        from pointgroup_ros.types import PointBatch
        xyz = torch.from_numpy(scene.xyz)
        out = gpu_pipe.model(PointBatch(xyz, torch.zeros_like(xyz), torch.zeros(len(xyz), dtype=torch.int64), 1))
    assert out.semantic_logits.shape == (len(xyz), len(gpu_pipe.class_names))


def test_gpu_pipeline_on_robot_input_agrees_with_the_cpu() -> None:
    """Gravity transform, centring, voxel downsampling and the per-voxel spread-back on CUDA; empty input."""
    from pointgroup_ros.evaluation.views import view_points

    scene = generate_scene(HELD_OUT_SEED_BASE + 4)
    rgb = np.clip(scene.rgb, 0, 255).astype(np.uint8)
    xyz, gravity = view_points(scene.xyz, "optical", seed=4)
    dense = np.repeat(xyz, 3, axis=0) + np.random.default_rng(0).normal(0, 0.002, (3 * len(xyz), 3)).astype(np.float32)
    cpu = Pipeline(device="cpu").segment(dense, np.repeat(rgb, 3, axis=0), gravity_transform=gravity)
    gpu_pipe = Pipeline(device="cuda")
    gpu = gpu_pipe.segment(dense, np.repeat(rgb, 3, axis=0), gravity_transform=gravity)
    assert gpu.frame == "gravity" and gpu.network_points == cpu.network_points < len(dense) / 2
    assert (cpu.semantic == gpu.semantic).mean() > 0.995
    assert abs(cpu.num_instances - gpu.num_instances) <= 1
    empty = gpu_pipe.segment(np.zeros((0, 3), np.float32), gravity_transform=gravity)
    assert empty.num_instances == 0 and empty.frame == "gravity"
    nan = gpu_pipe.segment(np.full((100, 3), np.nan, np.float32))
    assert np.all(nan.semantic == -1)


def test_gpu_report_measurements_on_a_small_frame(tmp_path) -> None:
    """The measuring half of `pointgroup-ros gpu-report` (tools/gpu_report.py) on a small frame, both precisions."""
    import json
    import os

    from pointgroup_ros.clustering.gpu import ALLOCATOR_ENV, allocator_status
    from pointgroup_ros.tools import gpu_report as gr

    grouping = gr.grouping_figures([20_000], repeat=2)
    assert grouping[0]["points"] == 20_000 and grouping[0]["P + Q"] > 0 and grouping[0]["device"] == "cuda"
    rows, model = gr.pipeline_figures("scannet", None, "cuda", [20_000], ["fp32", "fp16"], repeat=2)
    assert "random initialisation" in model and [r["precision"] for r in rows] == ["fp32", "fp16"]
    for row in rows:
        assert row["points"] == 20_000 and 0 < row["network_points"] <= 20_000
        assert row["total_ms"] >= row["stages_ms"]["pipeline"] > 0
        assert {"decode", "backbone", "grouping", "build/labeled_points", "build/instances"} <= set(row["stages_ms"])
        assert row["peak_gpu_bytes"] >= row["peak_torch_bytes"] > 0
    if os.environ.get(ALLOCATOR_ENV, "torch") != "cupy":
        assert allocator_status()[0] and all(r["cupy_pool_bytes"] == 0 for r in rows)
    info = gr.machine_info(__import__("torch").device("cuda", 0))
    assert info["gpu"] and info["torch CUDA"] and info["CuPy"]
    report = {"machine": info, "grouping": grouping, "pipeline": rows, "repeat": 2,
              "goals": gr.evaluate_goals(grouping, rows), "notes": gr.report_notes(info, None, allocator_status()[1])}
    md, js = gr.write_report(report, tmp_path)
    assert json.loads(js.read_text())["machine"]["gpu"] == info["gpu"] and md.read_text().startswith("# GPU report")


def test_gpu_frame_synchronises_the_host_a_few_times() -> None:
    """Host synchronisations torch sees in one frame (torch.cuda.set_sync_debug_mode): stage timing by CUDA
    events and one copy to the host at the end keep them few (spconv's and CuPy's own copies are not counted).
    The count and where they happen are printed for the GPU report."""
    import warnings

    import torch

    scene = generate_scene(HELD_OUT_SEED_BASE + 3)
    rgb = np.clip(scene.rgb, 0, 255).astype(np.uint8)
    pipe = Pipeline(device="cuda")
    pipe.segment(scene.xyz, rgb)  # warm
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seg = pipe.segment(scene.xyz, rgb)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    print(f"{len(syncs)} synchronising torch operations in one frame:")
    for w in syncs:
        print(f"  {w.filename}:{w.lineno}: {w.message}")
    assert seg.num_instances > 0
    assert len(syncs) <= 12, [f"{w.filename}:{w.lineno}" for w in syncs]
