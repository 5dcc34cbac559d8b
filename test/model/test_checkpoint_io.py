"""Checkpoint files: roundtrip, the authors' spconv 1.x file, clear errors for broken or foreign files, CLI."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from pointgroup_ros.cli import main as cli_main
from pointgroup_ros.config import Config, ModelConfig
from pointgroup_ros.model import (CheckpointError, PointGroup, is_spconv1_layout, load_checkpoint, load_weights,
                                  save_checkpoint)
from pointgroup_ros.types import PointBatch

SMALL = ModelConfig(widths=(16, 32, 48))  # same block kinds as the full model, faster


def make_model(seed: int, cfg: ModelConfig = SMALL, classes: int = 20) -> PointGroup:
    torch.manual_seed(seed)
    model = PointGroup(cfg, classes)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters, so that every tensor matters
        for name, t in model.state_dict().items():
            if t.is_floating_point() and ("running" in name or ".bias" in name or t.ndim == 1):
                t.copy_(torch.rand_like(t) + 0.5)
    return model.eval()


def scene() -> PointBatch:
    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(200, 3, generator=g) * 1.5
    return PointBatch(xyz, torch.rand(200, 3, generator=g) * 2 - 1, torch.zeros(200, dtype=torch.long), 1)


def outputs(model: PointGroup) -> torch.Tensor:
    with torch.no_grad():
        out = model(scene())
    return torch.cat((out.semantic_logits, out.offsets, out.point_features), 1)


def to_authors_layout(model: PointGroup) -> dict[str, torch.Tensor]:
    """What the authors' file looks like: spconv 1.x kernels [kx, ky, kz, Cin, Cout], 'module.' prefix.

    Written independently of the converter: a k>1 kernel's spconv 1 tensor W1 satisfies W2 = W1.permute(4,0,1,2,3);
    a 1x1 kernel's spconv 1 matrix (Cin, Cout) is the memory of spconv 2's tensor read as (Cin, Cout).
    """
    out = {}
    for k, v in model.state_dict().items():
        if v.ndim == 5 and v.shape[1] > 1:
            v = v.permute(1, 2, 3, 4, 0).contiguous()
        elif v.ndim == 5:
            v = v.reshape(1, 1, 1, v.shape[4], v.shape[0])
        out[f"module.{k}"] = v.clone()
    return out


def test_roundtrip_with_config_and_extra(tmp_path):
    model = make_model(1)
    path = save_checkpoint(tmp_path / "sub" / "m.pth", model, Config(), extra={"epoch": 7, "note": "x"})
    other = make_model(2)
    assert not torch.equal(outputs(other), outputs(model))
    ckpt = load_weights(other, path)
    assert torch.equal(outputs(other), outputs(model))
    assert ckpt.extra == {"epoch": 7, "note": "x"} and not ckpt.converted_from_spconv1
    assert ckpt.make_config() == Config()
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["format"] == "pointgroup_ros" and raw["format_version"] == 1


def test_save_rejects_objects_and_reserved_keys(tmp_path):
    with pytest.raises(TypeError, match="extra\\['obj'\\]"):
        save_checkpoint(tmp_path / "a.pth", make_model(0), extra={"obj": object()})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "a.pth", make_model(0), extra={"model": 1})
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_authors_checkpoint_loads_to_identical_outputs(tmp_path):
    model = make_model(3)
    authors = to_authors_layout(model)
    assert is_spconv1_layout({k[7:]: v for k, v in authors.items()})
    path = tmp_path / "pointgroup.pth"
    torch.save(authors, path, _use_new_zipfile_serialization=False)  # PyTorch 1.1 style legacy file
    fresh = make_model(4)
    ckpt = load_weights(fresh, path)
    assert ckpt.converted_from_spconv1 and ckpt.config is None
    assert torch.equal(outputs(fresh), outputs(model))


@pytest.mark.parametrize("wrapper", ["net", "state_dict", "model"])
def test_wrapped_state_dicts(tmp_path, wrapper):
    model = make_model(5)
    torch.save({wrapper: to_authors_layout(model), "epoch": 3}, tmp_path / "w.pth")
    fresh = make_model(6)
    ckpt = load_weights(fresh, tmp_path / "w.pth")
    assert ckpt.extra == {"epoch": 3}
    assert torch.equal(outputs(fresh), outputs(model))


def test_convert_weights_cli(tmp_path, capsys):
    model = make_model(7, ModelConfig(), 20)
    src = tmp_path / "pointgroup.pth"
    torch.save(to_authors_layout(model), src, _use_new_zipfile_serialization=False)
    dst = tmp_path / "converted.pth"
    assert cli_main(["convert-weights", str(src), str(dst)]) == 0
    assert "7,715,016 parameters" in capsys.readouterr().out
    ckpt = load_checkpoint(dst)
    assert not ckpt.converted_from_spconv1 and ckpt.extra["converted_from_spconv1"] is True
    fresh = PointGroup(ModelConfig(), 20).eval()
    load_weights(fresh, dst)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    assert cli_main(["convert-weights", str(src), str(dst)]) == 1  # exists, no --force
    assert "exists" in capsys.readouterr().err
    assert cli_main(["convert-weights", str(tmp_path / "nope.pth"), str(tmp_path / "o.pth")]) == 1
    assert "no such checkpoint file" in capsys.readouterr().err
    # the authors' file does not fit the S3DIS model (13 classes): one clear error
    assert cli_main(["convert-weights", str(src), str(tmp_path / "s.pth"), "--config", "s3dis"]) == 1
    err = capsys.readouterr().err
    assert "linear.weight" in err and "(20, 16) vs model (13, 16)" in err


def test_missing_unexpected_and_misshaped_keys_in_one_error(tmp_path):
    model = make_model(8)
    sd = model.state_dict()
    del sd["offset_linear.bias"]
    sd["extra_head.weight"] = torch.zeros(3)
    sd["linear.weight"] = torch.zeros(5, 16)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        load_weights(make_model(9), tmp_path / "bad.pth")
    msg = str(info.value)
    assert str(tmp_path / "bad.pth") in msg
    assert "1 missing keys: offset_linear.bias" in msg
    assert "1 unexpected keys: extra_head.weight" in msg
    assert "1 mis-shaped keys: linear.weight" in msg and "(5, 16) vs model (20, 16)" in msg


def test_missing_bn_counters_are_tolerated(tmp_path):
    model = make_model(10)
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    fresh = make_model(11)
    load_weights(fresh, tmp_path / "old.pth")
    assert torch.equal(outputs(fresh), outputs(model))


def test_truncated_file(tmp_path):
    path = tmp_path / "m.pth"
    save_checkpoint(path, make_model(12))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a torch file") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    legacy = tmp_path / "legacy.pth"
    torch.save(make_model(12).state_dict(), legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=str(legacy.name)):
        load_checkpoint(legacy)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_checkpoint(path)


class Foreign:
    def __init__(self) -> None:
        self.x = 1


def test_foreign_pickle_is_not_unpickled(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"model": Foreign()}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle") as info:
        load_checkpoint(path)
    assert "Foreign" in str(info.value) and "weights_only=False" not in str(info.value)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="plain.pkl"):
        load_checkpoint(plain)


def test_not_a_state_dict(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "t.pth")
    with pytest.raises(CheckpointError, match="found Tensor"):
        load_checkpoint(tmp_path / "t.pth")
    torch.save({"a": 1, "b": torch.zeros(1)}, tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="non-tensor entries: a"):
        load_checkpoint(tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(Path(tmp_path / "missing.pth"))


def test_mixed_layouts_are_rejected(tmp_path):
    sd = make_model(13).state_dict()
    sd["input_conv.0.weight"] = sd["input_conv.0.weight"].permute(1, 2, 3, 4, 0).contiguous()
    torch.save(sd, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match="mix spconv 1 and spconv 2"):
        load_checkpoint(tmp_path / "mixed.pth")
