"""cluster_points on the CPU (numpy / torch CPU) against Algorithm 1 and brute force; edge cases; errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from clustering_cases import brute_force, random_cloud

from pointgroup_ros.clustering import cluster_points, reference_cluster


@pytest.mark.parametrize("seed", range(40))
def test_reference_is_algorithm_1(seed):
    """The reference itself against an O(N^2) graph + connected components (small clouds)."""
    xyz, labels, radius, min_points = random_cloud(seed, n_max=300, dtype=np.float64 if seed % 4 == 0 else np.float32)
    assert np.array_equal(reference_cluster(xyz, labels, radius, min_points, (1,)),
                          brute_force(xyz, labels, radius, min_points, (1,)))


@pytest.mark.parametrize("seed", range(150))
def test_matches_reference_on_random_clouds(seed):
    dtype = np.float64 if seed % 5 == 0 else np.float32
    xyz, labels, radius, min_points = random_cloud(seed, dtype=dtype)
    ignore = (2,) if seed % 2 else ()
    got = cluster_points(xyz, labels, radius, min_points, ignore)
    assert got.dtype == np.int64 and got.shape == (len(xyz),)
    assert np.array_equal(got, reference_cluster(xyz, labels, radius, min_points, ignore))


def test_numbering_follows_lowest_index_and_min_points():
    xyz = np.array([[5, 0, 0], [0, 0, 0], [5, 0, 0.01], [0, 0, 0.01], [0, 0, 0.02], [9, 9, 9]], np.float32)
    labels = np.zeros(6, np.int64)
    assert cluster_points(xyz, labels, 0.05, 2).tolist() == [0, 1, 0, 1, 1, -1]
    assert cluster_points(xyz, labels, 0.05, 3).tolist() == [-1, 0, -1, 0, 0, -1]
    assert cluster_points(xyz, labels, 0.05, 0).tolist() == [0, 1, 0, 1, 1, 2]


def test_labels_never_connect():
    xyz = np.zeros((4, 3), np.float32)
    assert cluster_points(xyz, np.array([0, 1, 0, 1]), 0.1, 2).tolist() == [0, 1, 0, 1]


def test_strictly_less_than_radius():
    """Distances exactly equal to the radius (exact in binary) are not neighbours."""
    line = np.zeros((10, 3), np.float32)
    line[:, 0] = np.arange(10) * 0.25
    labels = np.zeros(10, np.int64)
    assert (cluster_points(line, labels, 0.25, 2) == -1).all()
    assert (cluster_points(line, labels, 0.2500001, 2) == 0).all()
    diagonal = np.array([[0, 0, 0], [0.5, 0.5, 0.5]], np.float64)  # d2 = 0.75 exactly
    assert cluster_points(diagonal, labels[:2], np.sqrt(0.75), 1).tolist() == [0, 1]
    assert cluster_points(diagonal, labels[:2], np.nextafter(np.sqrt(0.75), 1), 1).tolist() in ([0, 0], [0, 1])
    assert np.array_equal(cluster_points(diagonal, labels[:2], 0.8661, 1), [0, 0])


def test_grid_exact_boundaries_match_reference():
    """A lattice at spacing 1/8 with radius a multiple of it: many pairs exactly at the radius."""
    rng = np.random.default_rng(0)
    xyz = (rng.integers(0, 12, (600, 3)) / 8.0).astype(np.float32)
    labels = rng.integers(0, 2, 600)
    for radius in (0.125, 0.25, np.sqrt(2) / 8, 0.375):
        assert np.array_equal(cluster_points(xyz, labels, radius, 3), reference_cluster(xyz, labels, radius, 3))


def test_empty_one_point_all_ignored():
    empty = cluster_points(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), 0.03, 1)
    assert empty.shape == (0,) and empty.dtype == np.int64
    assert cluster_points(np.zeros((1, 3)), np.zeros(1, np.int64), 0.03, 1).tolist() == [0]
    assert cluster_points(np.zeros((1, 3)), np.zeros(1, np.int64), 0.03, 2).tolist() == [-1]
    xyz = np.random.default_rng(0).random((50, 3))
    assert (cluster_points(xyz, np.full(50, 7), 0.5, 1, ignore_labels=[7]) == -1).all()


def test_nan_and_inf_join_no_cluster():
    xyz = np.zeros((6, 3), np.float32)
    xyz[1, 0] = np.nan
    xyz[3, 2] = np.inf
    xyz[4, 1] = -np.inf
    out = cluster_points(xyz, np.zeros(6, np.int64), 0.1, 1)
    assert out.tolist() == [0, -1, 0, -1, -1, 0]


def test_one_huge_component_and_dense_duplicates():
    rng = np.random.default_rng(1)
    plane = np.zeros((40000, 3), np.float32)
    plane[:, :2] = rng.random((40000, 2)) * 2.0  # 2 m x 2 m at ~1 cm spacing: one component at r = 3 cm
    assert (cluster_points(plane, np.zeros(40000, np.int64), 0.03, 50) == 0).all()
    stack = np.repeat(rng.random((3, 3)).astype(np.float32) * 10, 30000, axis=0)  # 90k points on 3 spots
    out = cluster_points(stack, np.zeros(90000, np.int64), 0.03, 50)
    assert np.array_equal(out, np.repeat([0, 1, 2], 30000))


def test_far_apart_points_are_clamped_but_exact():
    """Coordinates far beyond the key's range share clamped cells; the answer stays exact."""
    xyz, labels, radius, min_points = random_cloud(5, n_max=400)
    far = xyz.astype(np.float64)
    far[: len(far) // 3] += 1e9
    far[len(far) // 3: len(far) // 2] -= 1e9
    assert np.array_equal(cluster_points(far, labels, radius, min_points),
                          brute_force(far, labels, radius, min_points))


def test_wide_label_ranges():
    xyz, labels, radius, min_points = random_cloud(7)
    wide = labels.astype(np.int64) * (1 << 40) - (1 << 50)
    assert np.array_equal(cluster_points(xyz, wide, radius, min_points), cluster_points(xyz, labels, radius, min_points))


def test_strides_dtypes_and_torch_cpu():
    xyz, labels, radius, min_points = random_cloud(3)
    want = cluster_points(xyz, labels, radius, min_points)
    wide = np.zeros((len(xyz), 6), np.float32)
    wide[:, ::2] = xyz
    assert np.array_equal(cluster_points(wide[:, ::2], labels.astype(np.int32), radius, min_points), want)
    assert np.array_equal(cluster_points(xyz[::-1], labels[::-1], radius, min_points),
                          reference_cluster(xyz[::-1], labels[::-1], radius, min_points))
    x64 = xyz.astype(np.float64)
    assert np.array_equal(cluster_points(x64, labels, radius, min_points),
                          reference_cluster(x64, labels, radius, min_points))
    out = cluster_points(torch.from_numpy(xyz), torch.from_numpy(labels), radius, min_points)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64 and torch.equal(out, torch.from_numpy(want))
    ints = cluster_points(np.round(xyz * 100).astype(np.int32), labels, radius * 100, min_points)
    assert np.array_equal(ints, reference_cluster(np.round(xyz * 100).astype(np.float32), labels, radius * 100,
                                                  min_points))


@pytest.mark.parametrize("call, error", [
    (lambda: cluster_points(np.zeros((4, 2)), np.zeros(4, int), 0.1, 1), "shape \\(N, 3\\)"),
    (lambda: cluster_points(np.zeros((4, 3)), np.zeros(3, int), 0.1, 1), "labels must have shape"),
    (lambda: cluster_points(np.zeros((4, 3)), np.zeros(4), 0.1, 1), "integer"),
    (lambda: cluster_points(np.zeros((4, 3)), np.zeros(4, int), 0.0, 1), "radius"),
    (lambda: cluster_points(np.zeros((4, 3)), np.zeros(4, int), float("nan"), 1), "radius"),
    (lambda: cluster_points(np.zeros((4, 3)), np.zeros(4, int), 0.1, -1), "min_points"),
    (lambda: cluster_points(np.zeros((4, 3)), np.zeros(4, int), 0.1, 1.5), "min_points"),
    (lambda: cluster_points(np.zeros((4, 3), bool), np.zeros(4, int), 0.1, 1), "real number"),
    (lambda: cluster_points(np.zeros((4, 3)), torch.zeros(4, dtype=torch.int64), 0.1, 1), "same kind"),
    (lambda: cluster_points(torch.zeros(4, 3), np.zeros(4, int), 0.1, 1), "torch tensor"),
])
def test_bad_input_is_rejected_clearly(call, error):
    with pytest.raises((ValueError, TypeError), match=error):
        call()


@pytest.mark.parametrize("mode_threshold", [0, 10**12])  # 0: fine-cell cliques always; huge: point pairs always
@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_both_cpu_modes_match_reference(monkeypatch, mode_threshold, seed):
    import pointgroup_ros.clustering.cpu as cpu

    monkeypatch.setattr(cpu, "_SPARSE_PAIRS_PER_POINT", mode_threshold)
    xyz, labels, radius, min_points = random_cloud(seed, dtype=np.float64 if seed % 2 else np.float32)
    if seed % 4 == 0:
        xyz[: len(xyz) // 4] += xyz.dtype.type(1e9)
    assert np.array_equal(cluster_points(xyz, labels, radius, min_points),
                          reference_cluster(xyz, labels, radius, min_points))
