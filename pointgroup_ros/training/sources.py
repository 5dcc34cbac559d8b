"""Where training and evaluation scenes come from: a prepared folder or generated synthetic rooms."""
from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..data.augment import AugmentConfig
from ..data.dataset import FolderDataset, SceneDataset, SyntheticDataset

# Off switch for every augmentation (an overfitting check wants the scene exactly as evaluated).
NO_AUGMENTATION = AugmentConfig(jitter=0.0, flip=False, rotate=False, elastic=(), color_noise=0.0)

SYNTHETIC = "synthetic"
# Held-out synthetic rooms use seeds far from the training ones, so the two sets never share a room.
HELD_OUT_SEED_BASE = 1_000_000
# A third set of rooms for choosing thresholds (split 'tune'), so held-out figures stay unbiased.
TUNING_SEED_BASE = 2_000_000


def open_dataset(cfg: Config, data: str | Path | None, split: str, train: bool, num_synthetic: int = 64,
                 seed: int | None = None, augment: AugmentConfig | None = None) -> SceneDataset | None:
    """The scenes of `split` ('train', 'val', or 'tune' for synthetic rooms).

    data: 'synthetic' (or None with a synthetic config) generates rooms by seed: training seeds
        0..num_synthetic-1, held-out seeds HELD_OUT_SEED_BASE + 0..num_synthetic-1 ('val'), tuning seeds
        TUNING_SEED_BASE + 0..num_synthetic-1 ('tune'). The 'train' split holds each room cfg.train.room_copies
        times and adds cfg.train.camera_views camera views of each room (SyntheticDataset; downsampled as the pipeline does, cfg.voxel_size); 'val' and
        'tune' stay whole rooms (camera views are evaluated with `pointgroup-ros eval --sequences`).
        A folder: its train/ and val/ subfolders when present, else the folder itself for training and
        no validation set. train.camera_views > 0 is an error there (views are rendered from synthetic
        rooms only).
    """
    if data is None or str(data) == SYNTHETIC:
        if data is None and cfg.data.dataset != SYNTHETIC:
            raise ValueError(f"--data is required for the {cfg.data.dataset!r} configuration "
                             "(a folder of prepared scenes, see `pointgroup-ros prepare`)")
        base = {"train": 0, "val": HELD_OUT_SEED_BASE, "tune": TUNING_SEED_BASE}[split]
        views = cfg.train.camera_views if split == "train" else 0
        copies = cfg.train.room_copies if split == "train" else 1
        return SyntheticDataset(range(base, base + num_synthetic), cfg.data, train=train, seed=seed, augment=augment,
                                camera_views=views, view_voxel=cfg.voxel_size, room_copies=copies)
    if split == "tune":
        raise ValueError("tuning rooms exist for synthetic data only; for a folder, tune on a split of your own")
    if split == "train" and cfg.train.camera_views:
        raise ValueError(f"train.camera_views={cfg.train.camera_views}: camera views are rendered from synthetic "
                         f"rooms only, not from the scenes of {data}; set train.camera_views=0 "
                         "(--set train.camera_views=0)")
    if split == "train" and cfg.train.room_copies != 1:
        raise ValueError(f"train.room_copies={cfg.train.room_copies}: copies of whole rooms are for synthetic rooms "
                         f"mixed with camera views, not for the scenes of {data}; set train.room_copies=1")
    folder = Path(data)
    if not folder.is_dir():
        raise ValueError(f"--data {folder}: no such folder")
    sub = folder / split
    if sub.is_dir():
        return FolderDataset(sub, cfg.data, train=train, seed=seed, augment=augment, cache=True)
    if split == "train":
        return FolderDataset(folder, cfg.data, train=train, seed=seed, augment=augment, cache=True)
    return None
