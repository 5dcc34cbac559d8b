"""Data: the Scene type and its .npz format, dataset preparation (ScanNet v2, S3DIS, synthetic rooms, users'
own .npz / .ply), training augmentation and crop, and the torch Datasets + collate that feed the trainer.

The torch-based names (SceneDataset, FolderDataset, SceneListDataset, SyntheticDataset, collate) load
lazily, so numpy-only users (preparation) do not import torch.
"""
from __future__ import annotations

from typing import Any

from .augment import AugmentConfig, Sample, augment_scene, crop, elastic_distortion, random_transform
from .custom import drop_stuff_instances, find_scene_files, load_ply_scene, load_scene
from .ply import read_ply, write_ply
from .scene import IGNORE, DataError, Scene, load_npz, relabel_contiguous, save_scene
from .synthetic import SYNTHETIC_CLASSES, SYNTHETIC_STUFF, SyntheticConfig, generate_scene, generate_scenes

_LAZY = ("SceneDataset", "FolderDataset", "SceneListDataset", "SyntheticDataset", "collate")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AugmentConfig", "DataError", "IGNORE", "SYNTHETIC_CLASSES", "SYNTHETIC_STUFF", "Sample", "Scene",
           "SyntheticConfig", "augment_scene", "crop", "drop_stuff_instances", "elastic_distortion", "find_scene_files",
           "generate_scene", "generate_scenes", "load_npz", "load_ply_scene", "load_scene", "random_transform",
           "read_ply", "relabel_contiguous", "save_scene", "write_ply", *_LAZY]
