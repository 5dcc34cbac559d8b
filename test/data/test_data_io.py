"""Scene .npz format, the PLY reader/writer and users' own .ply / .npz scenes."""
from __future__ import annotations

import numpy as np
import pytest

from pointgroup_ros.data import (DataError, Scene, find_scene_files, load_npz, load_scene, read_ply,
                                 relabel_contiguous, save_scene, write_ply)


def _scene(n: int = 50, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    sem = rng.integers(0, 5, n)
    ins = np.where(sem >= 2, rng.integers(0, 3, n), -100)
    return Scene(rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3)).astype(np.uint8), sem, ins, "room")


def test_npz_roundtrip(tmp_path) -> None:
    s = _scene()
    s.gt_ids = np.arange(s.num_points) * 7
    path = save_scene(s, tmp_path / "room")
    assert path.name == "room.npz"
    t = load_npz(path)
    assert t.name == "room" and t.xyz.dtype == np.float32 and t.semantic.dtype == np.int64
    for key in ("xyz", "rgb", "semantic", "instance", "gt_ids"):
        np.testing.assert_array_equal(getattr(s, key), getattr(t, key))
    dropped = load_scene(path, stuff_classes=(2,))  # a user's file with stuff instances: dropped
    keep = s.semantic != 2
    np.testing.assert_array_equal(dropped.instance[~keep], -100)
    assert dropped.num_instances == np.unique(s.instance[keep & (s.instance >= 0)]).size
    assert set(np.unique(dropped.instance[dropped.instance >= 0]).tolist()) == set(range(dropped.num_instances))
    np.testing.assert_array_equal(load_scene(path, stuff_classes=(0, 1)).instance, s.instance)  # no-op
    unlabelled = load_npz(save_scene(Scene(s.xyz, s.rgb, name="u"), tmp_path / "u.npz"))
    assert unlabelled.semantic is None and unlabelled.instance is None and unlabelled.num_instances == 0


def test_npz_bad_inputs(tmp_path) -> None:
    np.savez(tmp_path / "noxyz.npz", rgb=np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"noxyz.npz: missing array 'xyz'"):
        load_npz(tmp_path / "noxyz.npz")
    np.savez(tmp_path / "obj.npz", xyz=np.array([object()] * 3), rgb=np.zeros((1, 3)))
    with pytest.raises(DataError, match="obj.npz: not a readable .npz"):  # never unpickled
        load_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "shape.npz", xyz=np.zeros((4, 3)), rgb=np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"shape.npz: .*rgb must have shape \(4, 3\)"):
        load_npz(tmp_path / "shape.npz")
    np.savez(tmp_path / "neg.npz", xyz=np.zeros((2, 3)), rgb=np.zeros((2, 3)), semantic=np.array([0, -3]),
             instance=np.array([0, 0]))
    with pytest.raises(DataError, match="semantic has negative values"):
        load_npz(tmp_path / "neg.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "absent.npz")
    with pytest.raises(DataError, match="NaN"):
        Scene(np.full((2, 3), np.nan), np.zeros((2, 3)))
    with pytest.raises(DataError, match="both be given"):
        Scene(np.zeros((2, 3)), np.zeros((2, 3)), semantic=np.zeros(2, dtype=np.int64))


def test_relabel_contiguous() -> None:
    ids, n = relabel_contiguous(np.array([7, -100, 3, 7, 12, -100]))
    np.testing.assert_array_equal(ids, [1, -100, 0, 1, 2, -100])
    assert n == 3


@pytest.mark.parametrize("binary", [True, False])
def test_ply_roundtrip_and_faces_skipped(tmp_path, binary) -> None:
    v = {"x": np.array([0.0, 1.0, 2.5], np.float32), "y": np.array([1, 2, 3], np.float32),
         "z": np.array([0.5, 0.25, 0.0], np.float64), "red": np.array([0, 128, 255], np.uint8),
         "label": np.array([3, -1, 7], np.int32)}
    write_ply(tmp_path / "a.ply", v, faces=np.array([[0, 1, 2]]), binary=binary)
    got = read_ply(tmp_path / "a.ply")
    assert list(got) == list(v)
    for k in v:
        assert got[k].dtype == v[k].dtype
        np.testing.assert_array_equal(got[k], v[k])


def test_ply_bad_inputs(tmp_path) -> None:
    (tmp_path / "t.ply").write_bytes(b"hello")
    with pytest.raises(DataError, match="t.ply: not a PLY file"):
        read_ply(tmp_path / "t.ply")
    write_ply(tmp_path / "c.ply", {"x": np.arange(100, dtype=np.float32)})
    data = (tmp_path / "c.ply").read_bytes()
    (tmp_path / "c.ply").write_bytes(data[:-8])
    with pytest.raises(DataError, match="c.ply: PLY file is truncated"):
        read_ply(tmp_path / "c.ply")
    (tmp_path / "h.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 2\n"
                                     b"property flt x\nend_header\n")
    with pytest.raises(DataError, match="malformed PLY header line 'property flt x'"):
        read_ply(tmp_path / "h.ply")


def test_own_ply_scene(tmp_path) -> None:
    n = 6
    xyz = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    write_ply(tmp_path / "mine.ply", {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                                      "red": np.full(n, 10, np.uint8), "green": np.full(n, 20, np.uint8),
                                      "blue": np.full(n, 30, np.uint8),
                                      "semantic": np.array([0, 0, 2, 2, 3, -1], np.int32),
                                      "instance": np.array([5, 5, 9, 9, 4, -1], np.int32)})
    s = load_scene(tmp_path / "mine.ply", stuff_classes=(0,))
    np.testing.assert_array_equal(s.xyz, xyz)
    np.testing.assert_array_equal(s.rgb[0], [10, 20, 30])
    np.testing.assert_array_equal(s.semantic, [0, 0, 2, 2, 3, -100])
    np.testing.assert_array_equal(s.instance, [-100, -100, 1, 1, 0, -100])  # stuff dropped, relabelled
    write_ply(tmp_path / "bare.ply", {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    bare = load_scene(tmp_path / "bare.ply")
    assert bare.semantic is None and np.allclose(bare.rgb, 127.5)
    write_ply(tmp_path / "half.ply", {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                                      "label": np.zeros(n, np.int32)})
    with pytest.raises(DataError, match="half.ply: has one label property but no instance property"):
        load_scene(tmp_path / "half.ply")
    write_ply(tmp_path / "noz.ply", {"x": xyz[:, 0], "y": xyz[:, 1]})
    with pytest.raises(DataError, match="noz.ply: vertex element lacks z"):
        load_scene(tmp_path / "noz.ply")
    with pytest.raises(DataError, match="unsupported scene file type '.txt'"):
        load_scene(tmp_path / "x.txt")
    assert [p.name for p in find_scene_files(tmp_path)] == ["bare.ply", "half.ply", "mine.ply", "noz.ply"]
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="sub: no scene files"):
        find_scene_files(tmp_path / "sub")


def test_ply_big_endian_after_another_element(tmp_path) -> None:
    head = (b"ply\nformat binary_big_endian 1.0\ncomment made by hand\nelement camera 1\nproperty float f\n"
            b"element vertex 2\nproperty short a\nproperty double b\nend_header\n")
    body = np.array([1.5], ">f4").tobytes() + np.array([(-2, 0.25), (7, -1.0)], [("a", ">i2"), ("b", ">f8")]).tobytes()
    (tmp_path / "be.ply").write_bytes(head + body)
    got = read_ply(tmp_path / "be.ply")
    np.testing.assert_array_equal(got["a"], [-2, 7])
    np.testing.assert_array_equal(got["b"], [0.25, -1.0])
    assert got["a"].dtype.isnative
    assert read_ply(tmp_path / "be.ply", "camera")["f"][0] == 1.5
