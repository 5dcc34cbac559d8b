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
