"""convert-weights --half: half the size, the same network within float16 rounding, config carried along."""
from __future__ import annotations

from pathlib import Path

import torch

from pointgroup_ros.cli import main
from pointgroup_ros.config import load_config
from pointgroup_ros.model.checkpoint import load_checkpoint, load_weights, save_checkpoint
from pointgroup_ros.model.network import PointGroup
from pointgroup_ros.types import PointBatch


def test_half_export_keeps_config_description_and_outputs(tmp_path: Path) -> None:
    cfg = load_config("synthetic").replace(model={"widths": [16, 32]})
    torch.manual_seed(0)
    model = PointGroup(cfg.model, cfg.data.num_classes).eval()
    src = tmp_path / "full.pth"
    save_checkpoint(src, model, cfg, {"epoch": 3, "optimizer": {"state": {}, "param_groups": []}})
    dst = tmp_path / "half.pth"
    assert main(["convert-weights", str(src), str(dst), "--half", "--description", "demo note"]) == 0
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    ckpt = load_checkpoint(dst)
    assert ckpt.make_config() == cfg and ckpt.extra["description"] == "demo note"
    assert "optimizer" not in ckpt.extra
    assert all(v.dtype in (torch.float16, torch.int64) for v in ckpt.state_dict.values())

    again = PointGroup(cfg.model, cfg.data.num_classes).eval()
    load_weights(again, dst)
    assert all(p.dtype == torch.float32 for p in again.parameters())
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(500, 3, generator=g)
    batch = PointBatch(xyz, torch.rand(500, 3, generator=g) * 2 - 1, torch.zeros(500, dtype=torch.int64), 1)
    with torch.no_grad():
        a, b = model(batch), again(batch)
    assert torch.allclose(a.semantic_logits, b.semantic_logits, atol=2e-2, rtol=1e-2)
    assert torch.allclose(a.offsets, b.offsets, atol=2e-2, rtol=1e-2)
