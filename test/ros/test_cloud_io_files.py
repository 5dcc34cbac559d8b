"""Cloud files without ROS: PCD (ascii / binary / binary_compressed), PLY, npy / npz readers; writers; PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros_testing_fakes import FakePipeline

from pointgroup_ros.cloud_io import (CloudFileError, instance_colours, make_cloud, pack_rgb, read_cloud, render_png,
                                     write_labeled_npz, write_labeled_ply)

RNG = np.random.default_rng(3)
XYZ = RNG.normal(size=(50, 3)).astype(np.float32)
XYZ[7] = np.nan
RGB = RNG.integers(0, 256, (50, 3)).astype(np.uint8)


def _pcd_header(kind: str, fields="x y z rgb", size="4 4 4 4", types="F F F F", count="1 1 1 1", n=50) -> bytes:
    return (f"# .PCD v0.7\nVERSION 0.7\nFIELDS {fields}\nSIZE {size}\nTYPE {types}\nCOUNT {count}\nWIDTH {n}\n"
            f"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {kind}\n").encode()


def _records() -> np.ndarray:
    rec = np.empty(50, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
    rec["x"], rec["y"], rec["z"] = XYZ.T
    rec["rgb"] = pack_rgb(RGB).view(np.float32)
    return rec


def _check(cloud, rgb=True):
    np.testing.assert_array_equal(cloud.xyz, XYZ)
    assert cloud.valid.sum() == 49 and not cloud.valid[7]
    if rgb:
        np.testing.assert_array_equal(cloud.rgb, RGB)


def test_pcd_binary_and_compressed_and_ascii(tmp_path):
    import lzf

    rec = _records()
    (tmp_path / "b.pcd").write_bytes(_pcd_header("binary") + rec.tobytes())
    _check(read_cloud(tmp_path / "b.pcd"))
    columns = b"".join(np.ascontiguousarray(rec[name]).tobytes() for name in rec.dtype.names)
    packed = lzf.compress(columns, 2 * len(columns) + 64)  # random floats do not shrink
    body = np.array([len(packed), len(columns)], "<u4").tobytes() + packed
    (tmp_path / "c.pcd").write_bytes(_pcd_header("binary_compressed") + body)
    _check(read_cloud(tmp_path / "c.pcd"))
    lines = "\n".join(" ".join(repr(float(v)) for v in (*XYZ[i], int(pack_rgb(RGB[i:i + 1])[0])))
                      for i in range(50))
    (tmp_path / "a.pcd").write_bytes(_pcd_header("ascii", types="F F F U") + lines.encode() + b"\n")
    _check(read_cloud(tmp_path / "a.pcd"))


def test_pcd_errors(tmp_path):
    (tmp_path / "short.pcd").write_bytes(_pcd_header("binary") + b"\0" * 10)
    with pytest.raises(CloudFileError, match="short.pcd: PCD binary body has 10 bytes"):
        read_cloud(tmp_path / "short.pcd")
    (tmp_path / "noxyz.pcd").write_bytes(_pcd_header("binary", "a b c d") + _records().tobytes())
    with pytest.raises(CloudFileError, match="no x, y, z field"):
        read_cloud(tmp_path / "noxyz.pcd")
    (tmp_path / "lzf.pcd").write_bytes(_pcd_header("binary_compressed") + np.array([5, 800], "<u4").tobytes()
                                       + b"\x1f" * 5)
    with pytest.raises(CloudFileError, match="decompress|inconsistent"):
        read_cloud(tmp_path / "lzf.pcd")
    with pytest.raises(CloudFileError, match="unsupported cloud file type"):
        read_cloud(tmp_path / "x.xyz")


def test_real_pcd_captures(realdata):
    for path in sorted((realdata / "pcl").glob("*.pcd")):
        cloud = read_cloud(path)
        assert (cloud.height, cloud.width) == (480, 640), path.name
        assert 0.5 < cloud.valid.mean() < 1.0 and cloud.rgb is not None
        assert np.isfinite(cloud.xyz[cloud.valid]).all() and np.isnan(cloud.xyz[~cloud.valid]).any()


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_formats(tmp_path, fmt):
    header = (f"ply\nformat {fmt} 1.0\nelement vertex 50\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nelement face 0\n"
              "property list uchar int vertex_indices\nend_header\n").encode()
    if fmt == "ascii":
        body = "\n".join(" ".join([*(repr(float(v)) for v in XYZ[i]), *(str(int(c)) for c in RGB[i])])
                         for i in range(50)).encode() + b"\n"
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        rec = np.empty(50, [("x", order + "f4"), ("y", order + "f4"), ("z", order + "f4"), ("r", "u1"), ("g", "u1"),
                            ("b", "u1")])
        rec["x"], rec["y"], rec["z"] = XYZ.T
        rec["r"], rec["g"], rec["b"] = RGB.T
        body = rec.tobytes()
    (tmp_path / "c.ply").write_bytes(header + body)
    _check(read_cloud(tmp_path / "c.ply"))


def test_npy_and_npz(tmp_path):
    np.save(tmp_path / "c.npy", np.concatenate([XYZ, RGB.astype(np.float32)], axis=1))
    _check(read_cloud(tmp_path / "c.npy"))
    np.save(tmp_path / "xyz.npy", XYZ.astype(np.float64))
    _check(read_cloud(tmp_path / "xyz.npy"), rgb=False)
    np.savez(tmp_path / "c.npz", xyz=XYZ, rgb=RGB.astype(np.float32) / 255.0)
    _check(read_cloud(tmp_path / "c.npz"))
    np.save(tmp_path / "bad.npy", np.zeros((4, 2)))
    with pytest.raises(CloudFileError, match=r"shape \(N, 3\)"):
        read_cloud(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(CloudFileError, match="not a plain numpy array"):
        read_cloud(tmp_path / "obj.npy")  # never unpickled


def test_labeled_writers_roundtrip(tmp_path):
    cloud = make_cloud(XYZ, RGB)
    seg = FakePipeline(cell=1.0).segment(cloud.xyz, cloud.rgb, cloud.valid,
                                         grouping=FakePipeline().cfg.grouping.__class__(min_points=2),
                                         postprocess=FakePipeline().cfg.postprocess.__class__(
                                             min_instance_points=2, score_threshold=0.0))
    assert seg.num_instances >= 2
    write_labeled_ply(tmp_path / "l.ply", cloud, seg)
    back = read_cloud(tmp_path / "l.ply")
    np.testing.assert_array_equal(back.xyz, XYZ)
    np.testing.assert_array_equal(back.extra["label"], seg.semantic)
    np.testing.assert_array_equal(back.extra["instance"], seg.instance)
    np.testing.assert_array_equal(back.rgb, instance_colours(seg.instance))
    write_labeled_npz(tmp_path / "l.npz", cloud, seg)
    with np.load(tmp_path / "l.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["instance_offsets"], seg.instance_offsets)
        assert tuple(z["class_names"]) == seg.class_names
        np.testing.assert_array_equal(z["rgb"], RGB)


@pytest.mark.parametrize("view", ["auto", "oblique", "top", "grid"])
def test_png_rendering(tmp_path, view):
    from PIL import Image

    xyz = np.concatenate([XYZ, XYZ + 5]).reshape(-1, 3)
    cloud = make_cloud(xyz, None, height=10, width=10)
    instance = np.repeat(np.arange(10) - 1, 10).astype(np.int32)
    render_png(tmp_path / "v.png", cloud, instance, view=view, size=200)
    with Image.open(tmp_path / "v.png") as im:
        arr = np.asarray(im.convert("RGB"))
    panel = (10, 10) if view in ("auto", "grid") else (200, 200)
    assert arr.shape == (panel[0], 2 * panel[1] + 8, 3)
    right = arr[:, panel[1] + 8:]
    # the instance panel shows palette colours of the instances that are present
    present = {tuple(c) for c in right.reshape(-1, 3)}
    assert tuple(instance_colours(np.array([3]))[0]) in present


def test_render_nearest_point_wins(tmp_path):
    """Top view: of two points on the same pixel, the higher one (nearer the viewer) is drawn."""
    from PIL import Image

    xyz = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    cloud = make_cloud(xyz)
    render_png(tmp_path / "z.png", cloud, np.array([0, 1, 2], np.int32), view="top", size=50, point_size=1)
    right = np.asarray(Image.open(tmp_path / "z.png").convert("RGB"))[:, 58:]
    colours = {tuple(c) for c in right.reshape(-1, 3)}
    assert tuple(instance_colours(np.array([1]))[0]) in colours
    assert tuple(instance_colours(np.array([0]))[0]) not in colours


def test_missing_file(tmp_path: Path):
    with pytest.raises(CloudFileError, match="no such file"):
        read_cloud(tmp_path / "none.pcd")
