"""Training augmentation and crop: rigid parts preserve distances, elastic distortion moves only the voxel
coordinates and is smooth, the crop respects max_npoint and relabels instances, seeds reproduce."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pointgroup_ros.data import AugmentConfig, augment_scene, crop, elastic_distortion, generate_scene

SCALE = 50.0


@pytest.fixture(scope="module")
def scene():
    return generate_scene(3)


def _pairwise(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[idx[:, 0]] - x[idx[:, 1]], axis=1)


def test_flip_and_rotation_preserve_distances(scene) -> None:
    cfg = AugmentConfig(jitter=0.0, elastic=(), color_noise=0.0)
    s = augment_scene(scene, np.random.default_rng(0), SCALE, True, cfg)
    assert s.xyz.shape == scene.xyz.shape and s.num_instances == scene.num_instances
    idx = np.random.default_rng(1).integers(0, scene.num_points, (2000, 2))
    np.testing.assert_allclose(_pairwise(s.xyz, idx), _pairwise(scene.xyz, idx), atol=1e-5)
    np.testing.assert_allclose(s.xyz[:, 2], scene.xyz[:, 2], atol=1e-6)  # rotation about z only
    assert not np.allclose(s.xyz, scene.xyz, atol=1e-3)
    # no elastic: voxel coordinates are the scaled coordinates shifted to a zero minimum
    np.testing.assert_allclose(s.voxel_xyz, s.xyz * SCALE - (s.xyz * SCALE).min(0), atol=1e-3)
    np.testing.assert_allclose(s.rgb, scene.rgb / 127.5 - 1, atol=1e-6)
    with_jitter = augment_scene(scene, np.random.default_rng(0), SCALE, True, AugmentConfig(elastic=()))
    assert not np.allclose(_pairwise(with_jitter.xyz, idx), _pairwise(scene.xyz, idx), rtol=1e-3)


def test_elastic_changes_only_voxel_coordinates_smoothly(scene) -> None:
    rigid = AugmentConfig(jitter=0.0, elastic=(), color_noise=0.0)
    full = AugmentConfig(jitter=0.0, color_noise=0.0)
    a = augment_scene(scene, np.random.default_rng(5), SCALE, True, rigid)
    b = augment_scene(scene, np.random.default_rng(5), SCALE, True, full)
    np.testing.assert_array_equal(a.xyz, b.xyz)  # float coordinates (and offset targets) undistorted
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.instance, b.instance)
    assert b.voxel_xyz.min() >= 0 and np.allclose(b.voxel_xyz.min(0), 0.0)
    d = b.voxel_xyz - a.voxel_xyz
    d -= d.mean(0)  # the two are shifted by different minima
    assert d.std() > 3.0  # the authors' strengths move points by several voxels
    dist, j = cKDTree(a.voxel_xyz).query(a.voxel_xyz, k=2)
    near = np.linalg.norm(d - d[j[:, 1]], axis=1)
    far = np.linalg.norm(d - d[np.random.default_rng(0).permutation(len(d))], axis=1)
    assert near.max() < 2.0 + dist[:, 1].max()  # neighbours move together: a smooth field
    assert np.median(near) < 0.1 * np.median(far)


def test_elastic_field_statistics() -> None:
    x = np.random.default_rng(0).uniform(-100, 100, (20000, 3))
    y = elastic_distortion(x, 6, 40, np.random.default_rng(1))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert 2.0 < (y - x).std() < 8.0
    np.testing.assert_array_equal(y, elastic_distortion(x, 6, 40, np.random.default_rng(1)))
    assert elastic_distortion(np.zeros((0, 3)), 6, 40, np.random.default_rng(1)).shape == (0, 3)


def test_crop_limits_points_and_relabels_instances(scene) -> None:
    max_npoint = scene.num_points // 3
    cfg = AugmentConfig(jitter=0.0, elastic=())
    s = augment_scene(scene, np.random.default_rng(2), SCALE, True, cfg, max_npoint=max_npoint, full_scale=512)
    assert 0 < len(s.xyz) <= max_npoint
    assert len(s.point_idx) == len(s.xyz) and (np.diff(s.point_idx) > 0).all()
    np.testing.assert_array_equal(s.semantic, scene.semantic[s.point_idx])
    kept = scene.instance[s.point_idx]
    assert set(np.unique(s.instance[s.instance >= 0]).tolist()) == set(range(s.num_instances))
    assert s.num_instances == np.unique(kept[kept >= 0]).size
    assert ((s.instance == -100) == (kept == -100)).all()
    pairs = np.unique(np.stack([kept[kept >= 0], s.instance[s.instance >= 0]], 1), axis=0)
    assert len(pairs) == s.num_instances  # one new id per kept original instance
    assert s.voxel_xyz.min() >= 0
    ext = s.voxel_xyz.max(0) - s.voxel_xyz.min(0)
    full_ext = scene.xyz.max(0) - scene.xyz.min(0)
    assert (ext[:2] < full_ext[:2] * SCALE).any()  # a window in x/y, not a random subset


def test_crop_function_window_and_fallback() -> None:
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 600, (5000, 3)).astype(np.float32) + 7
    out, keep = crop(v, 1000, 512, rng)
    assert keep.sum() <= 1000 and (out[keep] >= 0).all()
    assert (out[keep][:, :2] < 512).all()
    np.testing.assert_allclose(out - v, np.broadcast_to(out[0] - v[0], v.shape), atol=1e-3)  # a pure shift
    same, all_kept = crop(v, 10_000, 512, rng)
    assert all_kept.all() and np.allclose(same.min(0), 0)
    dense = np.zeros((300, 3), np.float32)  # every point in one voxel: no window helps
    _, keep = crop(dense, 100, 512, rng)
    assert keep.sum() == 100


def test_seeded_and_validation_mode(scene) -> None:
    a = augment_scene(scene, np.random.default_rng(9), SCALE, True)
    b = augment_scene(scene, np.random.default_rng(9), SCALE, True)
    for key in ("xyz", "rgb", "voxel_xyz", "instance"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    c = augment_scene(scene, np.random.default_rng(10), SCALE, True)
    assert not np.allclose(a.xyz, c.xyz)
    shift = a.rgb - (scene.rgb / 127.5 - 1)  # one colour shift per scene
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-5)
    assert np.abs(shift[0]).max() > 0
    v = augment_scene(scene, np.random.default_rng(9), SCALE, False)
    np.testing.assert_array_equal(v.xyz, scene.xyz)
    np.testing.assert_allclose(v.voxel_xyz, scene.xyz * SCALE, rtol=1e-6)
    np.testing.assert_allclose(v.rgb, scene.rgb / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(v.instance, scene.instance)
