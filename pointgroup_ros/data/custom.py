"""Users' own labelled data: .npz Scenes (see scene.py for the keys) or .ply clouds.

PLY: a vertex element with x, y, z (metres), optionally red, green, blue (0..255; mid grey when absent), and
per-vertex labels: a semantic property named `semantic` (or `label`, `class`) holding class indices into the
config's class_names (-100 = ignore), and an instance property named `instance` (or `instance_id`,
`object_id`) holding ids (any non-negative integers; relabelled to 0..I-1; negative = no instance).
Instances of stuff classes are dropped when `stuff_classes` is given (for .npz files too).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from .ply import read_ply
from .scene import IGNORE, DataError, Scene, load_npz, relabel_contiguous

SEMANTIC_NAMES = ("semantic", "label", "class")
INSTANCE_NAMES = ("instance", "instance_id", "object_id")
SCENE_SUFFIXES = (".npz", ".ply")


def _first(props: dict[str, np.ndarray], names: Iterable[str]) -> np.ndarray | None:
    for n in names:
        if n in props:
            return props[n]
    return None


def load_ply_scene(path: str | Path, stuff_classes: Iterable[int] = ()) -> Scene:
    """Read a labelled (or unlabelled) cloud from a PLY file; property names in the module docstring."""
    path = Path(path)
    props = read_ply(path)
    missing = [k for k in ("x", "y", "z") if k not in props]
    if missing:
        raise DataError(f"{path}: vertex element lacks {', '.join(missing)} (has {', '.join(props)})")
    xyz = np.stack([props["x"], props["y"], props["z"]], 1).astype(np.float32)
    if all(k in props for k in ("red", "green", "blue")):
        rgb = np.stack([props["red"], props["green"], props["blue"]], 1)
        rgb = rgb if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    else:
        rgb = np.full((len(xyz), 3), 127.5, dtype=np.float32)  # scales to 0 in the network input
    sem, ins = _first(props, SEMANTIC_NAMES), _first(props, INSTANCE_NAMES)
    if (sem is None) != (ins is None):
        which = "semantic" if sem is None else "instance"
        raise DataError(f"{path}: has one label property but no {which} property "
                        f"(names tried: {SEMANTIC_NAMES if sem is None else INSTANCE_NAMES})")
    semantic = instance = None
    if sem is not None and ins is not None:
        if not (np.issubdtype(sem.dtype, np.integer) and np.issubdtype(ins.dtype, np.integer)):
            raise DataError(f"{path}: label properties must be integers, got {sem.dtype} and {ins.dtype}")
        semantic = np.where(sem < 0, IGNORE, sem).astype(np.int64)
        inst = np.where(ins < 0, IGNORE, ins).astype(np.int64)
        stuff = np.isin(semantic, np.asarray(list(stuff_classes), dtype=np.int64))
        inst[stuff] = IGNORE
        instance, _ = relabel_contiguous(inst)
    try:
        return Scene(xyz, rgb, semantic, instance, path.stem)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def drop_stuff_instances(scene: Scene, stuff_classes: Iterable[int]) -> Scene:
    """Set instance = -100 on points of stuff classes (relabelling the rest 0..I-1); no copy when none has one."""
    if scene.semantic is None or scene.instance is None:
        return scene
    stuff = np.isin(scene.semantic, np.asarray(list(stuff_classes), dtype=np.int64)) & (scene.instance >= 0)
    if not stuff.any():
        return scene
    instance, _ = relabel_contiguous(np.where(stuff, IGNORE, scene.instance))
    return Scene(scene.xyz, scene.rgb, scene.semantic, instance, scene.name, scene.gt_ids)


def load_scene(path: str | Path, stuff_classes: Iterable[int] = ()) -> Scene:
    """Load a Scene from .npz (save_scene's format) or .ply; points of `stuff_classes` get no instance."""
    path = Path(path)
    if path.suffix == ".npz":
        return drop_stuff_instances(load_npz(path), stuff_classes)
    if path.suffix == ".ply":
        return load_ply_scene(path, stuff_classes)
    raise DataError(f"{path}: unsupported scene file type {path.suffix!r} (use {' or '.join(SCENE_SUFFIXES)})")


def find_scene_files(folder: str | Path) -> list[Path]:
    """The .npz and .ply files of a folder, sorted by name; DataError if it has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix in SCENE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{folder}: no scene files ({' or '.join(SCENE_SUFFIXES)})")
    return files
