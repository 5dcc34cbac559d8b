"""Synthetic rooms for training, tuning and held-out evaluation never share a seed."""
from __future__ import annotations

from pathlib import Path

import pytest

from pointgroup_ros.config import load_config
from pointgroup_ros.training.sources import HELD_OUT_SEED_BASE, TUNING_SEED_BASE, open_dataset


def test_train_tune_and_held_out_rooms_are_disjoint() -> None:
    cfg = load_config("synthetic")
    seeds = {split: set(open_dataset(cfg, "synthetic", split, train=False, num_synthetic=500).scene_seeds)
             for split in ("train", "val", "tune")}
    assert min(seeds["val"]) == HELD_OUT_SEED_BASE and min(seeds["tune"]) == TUNING_SEED_BASE
    assert not (seeds["train"] & seeds["val"]) and not (seeds["train"] & seeds["tune"])
    assert not (seeds["val"] & seeds["tune"])


def test_tuning_split_is_synthetic_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synthetic data only"):
        open_dataset(load_config("synthetic"), tmp_path, "tune", train=False)
