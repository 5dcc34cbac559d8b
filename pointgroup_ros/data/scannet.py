"""ScanNet v2: preparation of the raw release into Scenes (the authors' conventions), and a loader for the
per-vertex .npy format of prepared scans.

Raw scene files (folder <scene>/ or all in one folder): <scene>_vh_clean_2.ply (mesh: x y z red green blue),
<scene>_vh_clean_2.0.010000.segs.json (segIndices: one segment id per vertex), <scene>.aggregation.json or
<scene>_vh_clean.aggregation.json (segGroups: objectId, label, segments), optional
<scene>_vh_clean_2.labels.ply (per-vertex NYU40 `label`); and scannetv2-labels.combined.tsv (raw_category ->
nyu40id). The prepared Scene, as the authors': xyz centred on its mean; semantic = NYU40 -> ScanNet-20 index
(config.SCANNET20_NYU40_IDS) else -100; instance = aggregation groups except wall/floor groups (and exact
duplicates of an earlier group, a defect of scene0217_00), 0..I-1 in group order, -100 elsewhere. Groups of
classes outside the 20 keep an instance id (semantic -100), as in the authors' preparation.
gt_ids keeps the benchmark ground truth: nyu40 * 1000 + objectId + 1 per vertex (0 = unannotated), like
ScanNet's export_train_mesh_for_evaluation; write_gt_txt writes it as the official <scene>.txt.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SCANNET20_NYU40_IDS
from .ply import read_ply
from .scene import IGNORE, DataError, Scene, relabel_contiguous

log = logging.getLogger(__name__)

STUFF_NYU40: tuple[int, ...] = (1, 2)  # wall, floor
MESH_SUFFIX = "_vh_clean_2.ply"
_NYU40_TO_TRAIN = np.full(256, IGNORE, dtype=np.int64)
_NYU40_TO_TRAIN[list(SCANNET20_NYU40_IDS)] = np.arange(len(SCANNET20_NYU40_IDS))


def nyu40_to_train(nyu40: np.ndarray) -> np.ndarray:
    """int (N,) NYU40 ids -> int64 (N,) ScanNet-20 training indices, -100 for other or invalid ids."""
    nyu40 = np.asarray(nyu40).astype(np.int64)
    ok = (nyu40 >= 0) & (nyu40 < _NYU40_TO_TRAIN.size)
    return np.where(ok, _NYU40_TO_TRAIN[np.where(ok, nyu40, 0)], IGNORE)


def read_label_map(path: str | Path) -> dict[str, int]:
    """scannetv2-labels.combined.tsv -> {raw_category: nyu40id}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label map not found (scannetv2-labels.combined.tsv; pass --labels)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if not reader.fieldnames or not {"raw_category", "nyu40id"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs tab-separated columns raw_category and nyu40id "
                            f"(header: {reader.fieldnames})")
        out: dict[str, int] = {}
        for row in reader:
            try:
                out[row["raw_category"]] = int(row["nyu40id"])
            except (TypeError, ValueError):
                raise DataError(f"{path}:{reader.line_num}: bad nyu40id {row.get('nyu40id')!r}") from None
    if not out:
        raise DataError(f"{path}: label map has no rows")
    return out


def _read_json(path: Path, key: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data[key]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    except (KeyError, TypeError):
        raise DataError(f"{path}: has no {key!r} entry") from None


def scannet_files(mesh: str | Path) -> dict[str, Path | None]:
    """The files of the scene whose mesh is `mesh` (<scene>_vh_clean_2.ply): mesh, segs, aggregation,
    labels (None when absent). Raises DataError naming a missing file."""
    mesh = Path(mesh)
    if not mesh.name.endswith(MESH_SUFFIX):
        raise DataError(f"{mesh}: not a ScanNet mesh (expected <scene>{MESH_SUFFIX})")
    name, folder = mesh.name[:-len(MESH_SUFFIX)], mesh.parent
    agg = [folder / f"{name}.aggregation.json", folder / f"{name}_vh_clean.aggregation.json"]
    files: dict[str, Path | None] = {
        "mesh": mesh, "segs": folder / f"{name}_vh_clean_2.0.010000.segs.json",
        "aggregation": next((p for p in agg if p.is_file()), agg[0]),
        "labels": folder / f"{name}_vh_clean_2.labels.ply"}
    for key in ("mesh", "segs", "aggregation"):
        if not files[key].is_file():  # type: ignore[union-attr]
            raise DataError(f"{files[key]}: missing ({key} file of scene {name})")
    if not files["labels"].is_file():  # type: ignore[union-attr]
        files["labels"] = None
    return files


def find_scannet_meshes(src: str | Path) -> list[Path]:
    """All <scene>_vh_clean_2.ply under src (in src itself or one folder per scene), sorted by name."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: no such folder")
    meshes = sorted(set(src.glob("*" + MESH_SUFFIX)) | set(src.glob("*/*" + MESH_SUFFIX)), key=lambda p: p.name)
    return meshes


def _read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    v = read_ply(path)
    missing = [k for k in ("x", "y", "z", "red", "green", "blue") if k not in v]
    if missing:
        raise DataError(f"{path}: vertex element lacks {', '.join(missing)}")
    xyz = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    rgb = np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.uint8)
    return xyz, rgb


def prepare_scannet_scene(mesh: str | Path, label_map: dict[str, int] | None, labelled: bool = True) -> Scene:
    """One raw ScanNet scene -> Scene (conventions in the module docstring). `labelled=False` (test split):
    only the mesh is read, semantic/instance are None."""
    mesh = Path(mesh)
    name = mesh.name[:-len(MESH_SUFFIX)] if mesh.name.endswith(MESH_SUFFIX) else mesh.stem
    if not labelled:
        if not mesh.is_file():
            raise DataError(f"{mesh}: missing (mesh of scene {name})")
        xyz, rgb = _read_mesh(mesh)
        return Scene((xyz - xyz.mean(0)).astype(np.float32), rgb, name=name)
    if label_map is None:
        raise DataError("a label map (scannetv2-labels.combined.tsv) is needed for labelled scenes")
    files = scannet_files(mesh)
    xyz, rgb = _read_mesh(mesh)
    n = len(xyz)
    segs_path, agg_path = files["segs"], files["aggregation"]
    assert segs_path is not None and agg_path is not None
    seg = np.asarray(_read_json(segs_path, "segIndices"))
    if seg.shape != (n,) or not np.issubdtype(seg.dtype, np.integer):
        raise DataError(f"{segs_path}: segIndices must be {n} integers (one per mesh vertex), got {seg.shape}")
    groups = _read_json(agg_path, "segGroups")
    seg_ids, seg_of_vertex = np.unique(seg, return_inverse=True)
    seg_of_vertex = seg_of_vertex.reshape(-1)

    # per segment: NYU40 id and benchmark object id (all groups, later ones win, like ScanNet's export),
    # and training instance (groups other than wall/floor, duplicates skipped, as the authors)
    seg_nyu = np.zeros(seg_ids.size, dtype=np.int64)
    seg_obj = np.zeros(seg_ids.size, dtype=np.int64)
    seg_ins = np.full(seg_ids.size, IGNORE, dtype=np.int64)
    seen: set[tuple[int, ...]] = set()
    unknown: set[str] = set()
    for k, g in enumerate(groups):
        try:
            label, segments = str(g["label"]), np.asarray(g["segments"], dtype=np.int64).reshape(-1)
            obj = int(g.get("objectId", g.get("id", k)))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{agg_path}: segGroups[{k}] needs 'label' and integer 'segments'") from None
        idx = np.searchsorted(seg_ids, segments)
        idx = idx[(idx < seg_ids.size) & (seg_ids[np.minimum(idx, seg_ids.size - 1)] == segments)]
        if label not in label_map:
            unknown.add(label)
        nyu = label_map.get(label, 0)
        seg_nyu[idx], seg_obj[idx] = nyu, obj + 1
        key = tuple(sorted(segments.tolist()))
        if nyu in STUFF_NYU40 or key in seen:
            continue
        seen.add(key)
        seg_ins[idx] = k
    if unknown:
        log.warning("%s: labels not in the label map (treated as unannotated): %s", agg_path, sorted(unknown))
    nyu40 = seg_nyu[seg_of_vertex]
    gt_ids = np.where(seg_obj[seg_of_vertex] > 0, nyu40 * 1000 + seg_obj[seg_of_vertex], 0)
    if files["labels"] is not None:  # the released per-vertex labels, which the authors train on
        lab = read_ply(files["labels"])
        if "label" not in lab or lab["label"].shape != (n,):
            raise DataError(f"{files['labels']}: needs a per-vertex 'label' property for all {n} vertices")
        nyu40 = lab["label"].astype(np.int64)
    instance, _ = relabel_contiguous(seg_ins[seg_of_vertex])
    return Scene((xyz - xyz.mean(0)).astype(np.float32), rgb, nyu40_to_train(nyu40), instance, name, gt_ids)


def write_gt_txt(scene: Scene, path: str | Path) -> None:
    """The benchmark's ground-truth file: one integer per vertex (nyu40 * 1000 + instance, 0 = none)."""
    if scene.gt_ids is None:
        raise DataError(f"{scene.name}: has no gt_ids (only ScanNet scenes do)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, scene.gt_ids, fmt="%d")


# ---- the per-vertex .npy format: <scene>_vert_all.npy, _sem_label_all.npy, _ins_label_all.npy ----

NPY_SUFFIXES = ("_vert_all.npy", "_sem_label_all.npy", "_ins_label_all.npy")


def find_scannet_npy(src: str | Path) -> list[str]:
    """Scene names that have a <scene>_vert_all.npy in src, sorted."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: no such folder")
    return sorted(p.name[:-len(NPY_SUFFIXES[0])] for p in src.glob("*" + NPY_SUFFIXES[0]))


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: missing")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None


def load_scannet_npy(src: str | Path, name: str, center: bool = True) -> Scene:
    """Load <src>/<name>_vert_all.npy (float32 (N, 6) xyz + rgb 0..255), _sem_label_all.npy (NYU40 ids,
    0 = unannotated) and _ins_label_all.npy (instance ids, 0 = none) as a Scene: NYU40 -> ScanNet-20,
    instances without wall/floor relabelled 0..I-1 in id order, gt_ids = nyu40 * 1000 + id (0 where no
    instance), xyz centred on the mean when `center`."""
    src = Path(src)
    paths = [src / f"{name}{s}" for s in NPY_SUFFIXES]
    vert, sem, ins = (_load_npy(p) for p in paths)
    if vert.ndim != 2 or vert.shape[1] < 6:
        raise DataError(f"{paths[0]}: must have shape (N, 6) (xyz, rgb), got {vert.shape}")
    n = len(vert)
    for p, a in ((paths[1], sem), (paths[2], ins)):
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise DataError(f"{p}: must hold {n} integers (one per vertex), got {a.shape} {a.dtype}")
    xyz = vert[:, :3].astype(np.float64)
    if center:
        xyz = xyz - xyz.mean(0)
    nyu40, ins = sem.astype(np.int64), ins.astype(np.int64)
    inst = np.where((ins > 0) & ~np.isin(nyu40, STUFF_NYU40), ins, IGNORE)
    instance, _ = relabel_contiguous(inst)
    gt_ids = np.where(ins > 0, nyu40 * 1000 + ins, 0)
    rgb = np.clip(np.rint(vert[:, 3:6]), 0, 255).astype(np.uint8)
    return Scene(xyz.astype(np.float32), rgb, nyu40_to_train(nyu40), instance, name, gt_ids)
