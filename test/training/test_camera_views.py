"""Camera views in training: the option reaches the synthetic training set only, and a trainer step takes a
batch that mixes a whole room with a camera view."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from pointgroup_ros.config import ConfigError, load_config
from pointgroup_ros.data.dataset import SyntheticDataset, collate
from pointgroup_ros.data.synthetic import SyntheticConfig
from pointgroup_ros.training.sources import open_dataset
from pointgroup_ros.training.trainer import Trainer

SMALL_ROOMS = SyntheticConfig(room_size=(2.2, 2.4), spacing=0.03, extra_groups=(0, 0))


def test_the_option_is_checked_and_off_by_default() -> None:
    cfg = load_config("synthetic")
    assert cfg.train.camera_views == 0
    assert cfg.replace(train={"camera_views": 3}).train.camera_views == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="train.camera_views"):
            cfg.replace(train={"camera_views": bad})


def test_only_the_synthetic_training_split_gets_views(tmp_path: Path) -> None:
    cfg = load_config("synthetic").replace(train={"camera_views": 2})
    train = open_dataset(cfg, "synthetic", "train", train=True, num_synthetic=3)
    assert isinstance(train, SyntheticDataset) and len(train) == 9 and train.camera_views == 2
    assert train.view_voxel == pytest.approx(cfg.voxel_size)
    for split in ("val", "tune"):
        held = open_dataset(cfg, "synthetic", split, train=False, num_synthetic=3)
        assert len(held) == 3 and held.camera_views == 0
    assert len(open_dataset(load_config("synthetic"), "synthetic", "train", train=True, num_synthetic=3)) == 3
    with pytest.raises(ValueError, match="camera views are rendered from synthetic rooms only"):
        open_dataset(cfg, tmp_path, "train", train=True)


def test_room_copies_are_checked_and_reach_the_synthetic_training_split(tmp_path: Path) -> None:
    cfg = load_config("synthetic")
    assert cfg.train.room_copies == 1
    for bad in (0, -2, 1.5):
        with pytest.raises(ConfigError, match="train.room_copies"):
            cfg.replace(train={"room_copies": bad})
    cfg = cfg.replace(train={"camera_views": 2, "room_copies": 3})
    train = open_dataset(cfg, "synthetic", "train", train=True, num_synthetic=3)
    assert isinstance(train, SyntheticDataset) and len(train) == 3 * 3 + 3 * 2 and train.room_copies == 3
    for split in ("val", "tune"):  # held-out and tuning rooms are counted once
        assert len(open_dataset(cfg, "synthetic", split, train=False, num_synthetic=3)) == 3
    with pytest.raises(ValueError, match="train.room_copies=3"):
        open_dataset(cfg.replace(train={"camera_views": 0}), tmp_path, "train", train=True)


def test_a_trainer_step_on_a_room_and_a_view(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = load_config("synthetic").replace(
        model={"widths": [16, 32, 48]},
        train={"epochs": 1, "prepare_epochs": 0, "batch_size": 2, "checkpoint_every": 1, "mixed_precision": False,
               "camera_views": 1},
        grouping={"min_points": 20})
    ds = SyntheticDataset([3], cfg.data, train=True, seed=0, synthetic=SMALL_ROOMS, camera_views=1)
    assert [ds.locate(i) for i in range(2)] == [(0, None), (0, 0)]
    loader = DataLoader(ds, batch_size=2, shuffle=False, collate_fn=collate)
    result = Trainer(cfg, tmp_path, device="cpu", tensorboard=False).fit(loader, progress=False,
                                                                        set_epoch=ds.set_epoch)
    assert result.epochs_run == 1
    losses = result.history[0]
    assert {"semantic", "offset_l1", "offset_dir", "score"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(float(v))) for v in losses.values())
