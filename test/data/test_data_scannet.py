"""ScanNet v2 preparation on hand-made raw files, and the per-vertex .npy loader on real scans."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pointgroup_ros.config import SCANNET20_NYU40_IDS
from pointgroup_ros.data import DataError, write_ply
from pointgroup_ros.data.scannet import (load_scannet_npy, nyu40_to_train, prepare_scannet_scene,
                                         read_label_map, scannet_files)

TSV = ("id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\n"
       "1\twall\twall\t10\t1\t12\twall\n2\tfloor\tfloor\t10\t2\t5\tfloor\n3\tchair\tchair\t10\t5\t4\tchair\n"
       "4\toffice chair\tchair\t10\t5\t4\tchair\n5\tceiling\tceiling\t10\t22\t3\tceiling\n"
       "6\tdesk\tdesk\t10\t14\t12\tdesk\n")
# 12 vertices in 6 segments; groups: wall, floor, chair, office chair, ceiling (not a ScanNet-20 class),
# desk, and segment 60 in no group
SEGS = [10, 10, 20, 20, 30, 30, 40, 40, 50, 50, 60, 70]
GROUPS = [("wall", [10]), ("floor", [20]), ("chair", [30]), ("office chair", [40]), ("ceiling", [50]),
          ("desk", [70])]


def make_raw_scene(folder: Path, name: str = "scene0001_00", groups=GROUPS, agg_name: str | None = None,
                   segs=SEGS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(SEGS)
    xyz = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    mesh = folder / f"{name}_vh_clean_2.ply"
    write_ply(mesh, {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "red": np.arange(n, dtype=np.uint8),
                     "green": np.full(n, 7, np.uint8), "blue": np.full(n, 9, np.uint8),
                     "alpha": np.full(n, 255, np.uint8)}, faces=np.array([[0, 1, 2], [3, 4, 5]]))
    (folder / f"{name}_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": segs}))
    agg = {"segGroups": [{"id": k, "objectId": k, "label": lab, "segments": seg}
                         for k, (lab, seg) in enumerate(groups)]}
    (folder / (agg_name or f"{name}.aggregation.json")).write_text(json.dumps(agg))
    (folder.parent / "scannetv2-labels.combined.tsv").write_text(TSV)
    return mesh


def test_nyu40_mapping() -> None:
    np.testing.assert_array_equal(nyu40_to_train(np.array(SCANNET20_NYU40_IDS)), np.arange(20))
    np.testing.assert_array_equal(nyu40_to_train(np.array([0, 13, 40, 999, -1])), [-100] * 5)


def test_prepare_raw_scene(tmp_path) -> None:
    mesh = make_raw_scene(tmp_path / "scans" / "scene0001_00")
    s = prepare_scannet_scene(mesh, read_label_map(tmp_path / "scans" / "scannetv2-labels.combined.tsv"))
    assert s.name == "scene0001_00" and s.num_points == 12
    np.testing.assert_allclose(s.xyz.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(s.xyz[1] - s.xyz[0], [3, 3, 3])
    np.testing.assert_array_equal(s.rgb[:, 0], np.arange(12))
    # wall 0, floor 1, chair (nyu 5) 4, ceiling -> -100, unlabelled -> -100, desk (nyu 14) 12
    np.testing.assert_array_equal(s.semantic, [0, 0, 1, 1, 4, 4, 4, 4, -100, -100, -100, 12])
    # instances: groups without wall/floor in order; the ceiling group keeps one (as the authors)
    np.testing.assert_array_equal(s.instance, [-100, -100, -100, -100, 0, 0, 1, 1, 2, 2, -100, 3])
    # benchmark ground truth: nyu40 * 1000 + objectId + 1 for every group, 0 for unannotated
    np.testing.assert_array_equal(s.gt_ids, [1001, 1001, 2002, 2002, 5003, 5003, 5004, 5004, 22005, 22005, 0,
                                             14006])


def test_duplicate_groups_and_unknown_labels(tmp_path, caplog) -> None:
    groups = GROUPS + [("chair", [30]), ("mystery", [60])]
    mesh = make_raw_scene(tmp_path / "s", groups=groups, agg_name="scene0001_00_vh_clean.aggregation.json")
    s = prepare_scannet_scene(mesh, read_label_map(tmp_path / "scannetv2-labels.combined.tsv"))
    assert s.num_instances == 5  # the duplicate chair group adds none; 'mystery' (unannotated) adds one
    assert s.instance[4] == 0 and s.instance[10] == 4 and s.semantic[10] == -100
    assert "mystery" in caplog.text


def test_raw_scene_bad_inputs(tmp_path) -> None:
    mesh = make_raw_scene(tmp_path / "a")
    labels = read_label_map(tmp_path / "scannetv2-labels.combined.tsv")
    (tmp_path / "a" / "scene0001_00_vh_clean_2.0.010000.segs.json").unlink()
    with pytest.raises(DataError, match=r"scene0001_00_vh_clean_2.0.010000.segs.json: missing \(segs file"):
        scannet_files(mesh)
    mesh = make_raw_scene(tmp_path / "b", segs=SEGS[:-1])
    with pytest.raises(DataError, match="segs.json: segIndices must be 12 integers"):
        prepare_scannet_scene(mesh, labels)
    mesh = make_raw_scene(tmp_path / "c")
    (tmp_path / "c" / "scene0001_00.aggregation.json").write_text("{not json")
    with pytest.raises(DataError, match="aggregation.json: not valid JSON"):
        prepare_scannet_scene(mesh, labels)
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(DataError, match="bad.tsv: needs tab-separated columns raw_category and nyu40id"):
        read_label_map(tmp_path / "bad.tsv")
    with pytest.raises(DataError, match="label map not found"):
        read_label_map(tmp_path / "none.tsv")


def test_test_split_scene_has_no_labels(tmp_path) -> None:
    mesh = make_raw_scene(tmp_path / "t")
    s = prepare_scannet_scene(mesh, None, labelled=False)
    assert s.semantic is None and s.instance is None and s.num_points == 12


def test_real_scans(realdata) -> None:
    src = realdata / "scannet"
    for name in ("scene0000_00", "scene0000_02"):
        s = load_scannet_npy(src, name)
        nyu = np.load(src / f"{name}_sem_label_all.npy", allow_pickle=False).astype(np.int64)
        ins = np.load(src / f"{name}_ins_label_all.npy", allow_pickle=False).astype(np.int64)
        assert s.num_points == len(nyu) > 50_000
        np.testing.assert_allclose(s.xyz.mean(0), 0.0, atol=1e-3)
        np.testing.assert_array_equal(s.semantic, nyu40_to_train(nyu))
        assert {0, 1} <= set(np.unique(s.semantic).tolist())  # wall and floor present
        assert (s.instance[np.isin(s.semantic, (0, 1))] == -100).all()
        things = (ins > 0) & ~np.isin(nyu, (1, 2))
        assert ((s.instance >= 0) == things).all()
        assert s.num_instances == np.unique(ins[things]).size > 10
        assert set(np.unique(s.instance[s.instance >= 0]).tolist()) == set(range(s.num_instances))
        # the same original instance <-> the same new id
        pairs = np.unique(np.stack([ins[things], s.instance[things]], 1), axis=0)
        assert len(pairs) == s.num_instances
        np.testing.assert_array_equal(s.gt_ids[ins > 0] // 1000, nyu[ins > 0])
    with pytest.raises(DataError, match="scene9999_00_vert_all.npy: missing"):
        load_scannet_npy(src, "scene9999_00")
