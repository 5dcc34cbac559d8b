"""S3DIS: preparation of Area_N/<room>/Annotations/<class>_<k>.txt (lines "x y z r g b") into Scenes.

The room's points are the union of its annotation files (as PointNet's collect_indoor3d_data); each file is
one object: its class is the file name before the last "_<k>" (classes outside the 13, e.g. "stairs", count
as clutter, as in PointNet's indoor3d_util), mapped to the index in config.S3DIS_CLASSES order
(ceiling, floor, wall, beam, column, window, door, table, chair, sofa, bookcase, board, clutter).
Instances: every file of a non-stuff class is one instance, 0..I-1 in file-name order; files of the stuff
classes (default ceiling, floor, wall: config/s3dis.yaml) get -100, because this project never groups
stuff and offset targets are only defined for things (SoftGroup's preparation numbers every file, stuff
included). xyz centred on the mean, rgb uint8.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

from ..config import S3DIS_CLASSES
from .scene import IGNORE, DataError, Scene

S3DIS_STUFF: tuple[int, ...] = (0, 1, 2)
_FILE_RE = re.compile(r"^(?P<cls>.+?)_(?P<k>\d+)\.txt$")


def read_s3dis_txt(path: str | Path) -> np.ndarray:
    """One S3DIS text file -> float32 (M, 6) x y z r g b. DataError names the file on a malformed line."""
    path = Path(path)
    try:
        arr = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: malformed line ({exc}); each line must be 'x y z r g b'") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if arr.size == 0:
        return np.zeros((0, 6), dtype=np.float32)
    if arr.shape[1] != 6:
        raise DataError(f"{path}: each line must have 6 values (x y z r g b), got {arr.shape[1]}")
    return arr


def find_s3dis_rooms(src: str | Path, areas: Iterable[int] | None = None) -> list[Path]:
    """Room folders src/Area_N/<room> that have an Annotations folder, sorted; `areas` filters by N."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: no such folder")
    wanted = None if areas is None else {f"Area_{a}" for a in areas}
    rooms = [p.parent for p in src.glob("Area_*/*/Annotations") if p.is_dir()
             and (wanted is None or p.parent.parent.name in wanted)]
    return sorted(rooms, key=lambda p: (p.parent.name, p.name))


def prepare_s3dis_room(room: str | Path, stuff_classes: Iterable[int] = S3DIS_STUFF,
                       class_names: tuple[str, ...] = S3DIS_CLASSES) -> Scene:
    """One room folder (with Annotations/) -> Scene named <Area_N>_<room> (conventions in the docstring)."""
    room = Path(room)
    ann = room / "Annotations"
    if not ann.is_dir():
        raise DataError(f"{ann}: missing (S3DIS rooms need an Annotations folder)")
    files = sorted(p for p in ann.iterdir() if p.suffix == ".txt")
    if not files:
        raise DataError(f"{ann}: no annotation files (<class>_<k>.txt)")
    lookup = {c: i for i, c in enumerate(class_names)}
    clutter = lookup.get("clutter")
    stuff = set(stuff_classes)
    chunks, sem, ins = [], [], []
    next_instance = 0
    for f in files:
        m = _FILE_RE.match(f.name)
        if m is None:
            raise DataError(f"{f}: annotation file names must be <class>_<number>.txt")
        cls = lookup.get(m.group("cls"), clutter)
        if cls is None:
            raise DataError(f"{f}: class {m.group('cls')!r} is not one of {class_names}")
        pts = read_s3dis_txt(f)
        if not len(pts):
            continue
        chunks.append(pts)
        sem.append(np.full(len(pts), cls, dtype=np.int64))
        if cls in stuff:
            ins.append(np.full(len(pts), IGNORE, dtype=np.int64))
        else:
            ins.append(np.full(len(pts), next_instance, dtype=np.int64))
            next_instance += 1
    if not chunks:
        raise DataError(f"{ann}: all annotation files are empty")
    data = np.concatenate(chunks)
    xyz = data[:, :3].astype(np.float64)
    rgb = np.clip(data[:, 3:6], 0, 255).astype(np.uint8)
    return Scene((xyz - xyz.mean(0)).astype(np.float32), rgb, np.concatenate(sem), np.concatenate(ins),
                 f"{room.parent.name}_{room.name}")
