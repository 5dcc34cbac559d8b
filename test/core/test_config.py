"""Typed configuration: presets load with the authors' values; every wrong key or value is named."""
from __future__ import annotations

from pathlib import Path

import pytest

from pointgroup_ros.config import (SCANNET20_CLASSES, Config, ConfigError, config_from_dict, load_config,
                                   preset_names)


def test_scannet_preset_has_the_authors_values() -> None:
    cfg = load_config("scannet")
    assert cfg.data.class_names == SCANNET20_CLASSES and cfg.data.num_classes == 20
    assert cfg.data.stuff_classes == (0, 1) and cfg.data.thing_classes == tuple(range(2, 20))
    assert cfg.data.scale == 50.0 and cfg.data.full_scale == (128, 512) and cfg.data.max_npoint == 250_000
    assert cfg.model.widths == (16, 32, 48, 64, 80, 96, 112) and cfg.model.block_reps == 2
    assert (cfg.grouping.radius, cfg.grouping.min_points, cfg.grouping.sets) == (0.03, 50, "both")
    assert (cfg.postprocess.score_threshold, cfg.postprocess.nms_iou_threshold,
            cfg.postprocess.min_instance_points) == (0.09, 0.3, 100)
    assert (cfg.train.lr, cfg.train.prepare_epochs, cfg.train.epochs) == (1e-3, 128, 384)
    assert cfg.train.mixed_precision is False  # the authors train in fp32
    # the preset only restates the defaults (one source of truth), but for fp32 training
    assert cfg == Config().replace(train={"mixed_precision": False})


def test_s3dis_preset_has_13_classes_with_three_stuff() -> None:
    cfg = load_config("s3dis")
    assert cfg.data.num_classes == 13 and cfg.data.stuff_classes == (0, 1, 2)
    assert cfg.data.class_names[-1] == "clutter"


def test_every_preset_loads() -> None:
    names = preset_names()
    assert {"scannet", "s3dis"} <= set(names)
    for name in names:
        load_config(name)


@pytest.mark.parametrize("data, message", [
    ({"grouping": {"radius": -0.01}}, "grouping.radius: must be in (0, 1] metres, got -0.01"),
    ({"grouping": {"sets": "x"}}, "grouping.sets: must be one of"),
    ({"grouping": {"min_points": 2.5}}, "grouping.min_points: must be an integer, got 2.5"),
    ({"grouping": {"radiuss": 0.03}}, "grouping: unknown key(s) radiuss"),
    ({"modle": {}}, "unknown section(s) modle"),
    ({"model": {"widths": [16, "a"]}}, "model.widths[1]: must be an integer"),
    ({"data": {"full_scale": [128]}}, "data.full_scale: must be a list of 2 values"),
    ({"data": {"stuff_classes": [25]}}, "data.stuff_classes: must be class indices"),
    ({"train": {"mixed_precision": "yes"}}, "train.mixed_precision: must be true or false"),
    ({"train": {"lr_steps": [50, 20]}}, "train.lr_steps: must be increasing epoch numbers >= 1"),
    ({"train": {"lr_multiplier": 0}}, "train.lr_multiplier: must be in (0, 1]"),
    ({"postprocess": {"score_threshold": 2}}, "postprocess.score_threshold: must be in [0, 1]"),
])
def test_wrong_keys_and_values_are_named(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert message in str(err.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("grouping:\n  radius: [oops\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("grouping:\n  radius: 7\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: grouping.radius"):
        load_config(bad)
    with pytest.raises(ConfigError, match="unknown preset 'nonexistent'"):
        load_config("nonexistent")


def test_round_trip_and_replace() -> None:
    cfg = load_config("s3dis")
    assert config_from_dict(cfg.to_dict()) == cfg
    tuned = cfg.replace(grouping={"radius": 0.05, "sets": "q"})
    assert tuned.grouping.radius == 0.05 and tuned.grouping.sets == "q" and tuned.data == cfg.data
    with pytest.raises(ConfigError, match="grouping.radius"):
        cfg.replace(grouping={"radius": 0.0})
