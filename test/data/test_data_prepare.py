"""`pointgroup-ros prepare` on synthetic, hand-made ScanNet and S3DIS inputs, and its error messages."""
from __future__ import annotations

import logging

import numpy as np

from pointgroup_ros.cli import main
from pointgroup_ros.data import generate_scene, load_npz

from test_data_s3dis import make_room
from test_data_scannet import make_raw_scene


def test_prepare_synthetic(tmp_path) -> None:
    assert main(["prepare", "synthetic", "--out", str(tmp_path), "--num-scenes", "2", "--seed", "7"]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["synthetic_000007.npz", "synthetic_000008.npz"]
    s, ref = load_npz(tmp_path / files[1]), generate_scene(8)
    np.testing.assert_array_equal(s.xyz, ref.xyz)
    np.testing.assert_array_equal(s.instance, ref.instance)


def test_prepare_scannet_raw_and_gt(tmp_path) -> None:
    make_raw_scene(tmp_path / "scans" / "scene0001_00")
    make_raw_scene(tmp_path / "scans" / "scene0002_00", name="scene0002_00")
    out = tmp_path / "out"
    assert main(["prepare", "scannet", "--src", str(tmp_path / "scans"), "--out", str(out),
                 "--scenes", "scene0002_00"]) == 0
    s = load_npz(out / "scene0002_00.npz")
    assert not (out / "scene0001_00.npz").exists()
    assert s.num_instances == 4 and s.gt_ids is not None
    np.testing.assert_array_equal(np.loadtxt(out / "gt" / "scene0002_00.txt", dtype=np.int64), s.gt_ids)


def test_prepare_s3dis(tmp_path) -> None:
    make_room(tmp_path / "raw", "Area_1", "office_1")
    make_room(tmp_path / "raw", "Area_2", "wc_1")
    assert main(["prepare", "s3dis", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "o"),
                 "--areas", "2"]) == 0
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["Area_2_wc_1.npz"]


def test_prepare_errors_name_the_problem(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    assert main(["prepare", "s3dis", "--out", str(tmp_path / "o")]) == 1
    assert "needs --src" in caplog.text
    assert main(["prepare", "scannet", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "nope: no such folder" in caplog.text
    (tmp_path / "empty").mkdir()
    assert main(["prepare", "scannet", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert "no ScanNet scenes" in caplog.text
    mesh = make_raw_scene(tmp_path / "scans" / "scene0001_00")
    (tmp_path / "scans" / "scannetv2-labels.combined.tsv").unlink()
    assert main(["prepare", "scannet", "--src", str(tmp_path / "scans"), "--out", str(tmp_path / "o")]) == 1
    assert "scannetv2-labels.combined.tsv not found" in caplog.text
    make_raw_scene(tmp_path / "scans" / "scene0001_00")
    mesh.with_name("scene0001_00.aggregation.json").unlink()
    assert main(["prepare", "scannet", "--src", str(tmp_path / "scans"), "--out", str(tmp_path / "o")]) == 1
    assert "scene0001_00.aggregation.json: missing (aggregation file of scene scene0001_00)" in caplog.text
