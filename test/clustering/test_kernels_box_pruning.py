"""Bounding-box pruning of dense fine cells in pg_scan_range (kernels/grouping.cu), run on the CPU through the
host shim: it happens (the shim's event counters), it removes the quadratic corner, and the clusters stay the
same as without it, as the CPU path's and as Algorithm 1's."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from clustering_cases import random_cloud

from pointgroup_ros.clustering import cluster_points, reference_cluster
from pointgroup_ros.clustering.gpu import group_with_kernels
from pointgroup_ros.clustering.hostbuild import HostLauncher, build

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to build the kernels for the host")

DISTANCE_TESTS, BOX_SKIPS = 0, 1  # PG_COUNT indices in grouping.cu
NO_PRUNING = {"PG_BOX_MIN": 1 << 30}  # no cell is that large: no box is written or read


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    out = tmp_path_factory.mktemp("host_kernels_box")
    return {(np.dtype(dt), pruning): build(dt, out, defines=None if pruning else NO_PRUNING)
            for dt in (np.float32, np.float64) for pruning in (True, False)}


def run(libs, xyz, labels, radius, min_points, ignore=(), pruning=True, mode="ordered", seed=0):
    """(cluster ids, counters) of one run of the kernels through gpu.group_with_kernels."""
    xyz = np.ascontiguousarray(xyz)
    launcher = HostLauncher(libs[(xyz.dtype, pruning)], xyz.dtype, mode=mode, seed=seed)
    launcher.counters(reset=True)
    out = group_with_kernels(np, launcher, xyz, np.ascontiguousarray(labels, dtype=np.int64), radius, min_points,
                             tuple(ignore), np.asarray)
    return out, launcher.counters(reset=True)


def two_dense_clumps(dtype, m=600, radius=0.1):
    """Two clumps of m points in two neighbouring fine cells of one coarse cell (fine side 0.0577 at r = 0.1),
    at the far ends of their cells: 0.11 apart, so not one pair of them are neighbours."""
    rng = np.random.default_rng(0)
    a = np.array([0.001, 0.001, 0.001]) + rng.random((m, 3)) * 1e-4
    b = np.array([0.111, 0.001, 0.001]) + rng.random((m, 3)) * 1e-4
    return np.concatenate([a, b]).astype(dtype), np.zeros(2 * m, np.int64), radius


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_dense_cells_without_neighbour_pairs_are_pruned(libs, dtype):
    m = 600
    xyz, labels, radius = two_dense_clumps(dtype, m)
    want = reference_cluster(xyz, labels, radius, 10)
    assert np.array_equal(want, np.repeat([0, 1], m))
    got, counts = run(libs, xyz, labels, radius, 10)
    assert np.array_equal(got, want)
    assert counts[BOX_SKIPS] == m  # each point of the first clump skips the second one with one box test
    assert counts[DISTANCE_TESTS] == 0
    unpruned, counts = run(libs, xyz, labels, radius, 10, pruning=False)
    assert np.array_equal(unpruned, want)
    assert counts[BOX_SKIPS] == 0 and counts[DISTANCE_TESTS] == m * m  # the quadratic corner


def test_near_boxes_are_scanned_as_before(libs):
    """Clumps 0.09 apart (< r): boxes do not prune, the cells join, as without boxes."""
    xyz, labels, radius = two_dense_clumps(np.float32)
    xyz[len(xyz) // 2:, 0] -= np.float32(0.02)
    got, counts = run(libs, xyz, labels, radius, 10)
    assert counts[BOX_SKIPS] == 0
    assert np.array_equal(got, np.zeros(len(xyz), np.int64))
    assert np.array_equal(got, run(libs, xyz, labels, radius, 10, pruning=False)[0])


@pytest.mark.parametrize("mode", ["ordered", "shuffled", "threads"])
@pytest.mark.parametrize("seed", range(12))
def test_pruning_keeps_the_clusters(libs, mode, seed):
    """Random clouds with dense spots (many cells over PG_BOX_MIN points): the same ids with and without boxes,
    and as the CPU path."""
    dtype = np.float64 if seed % 4 == 0 else np.float32
    xyz, labels, radius, min_points = random_cloud(seed, n_max=3000, dtype=dtype)
    if seed % 3 == 1:
        xyz[: len(xyz) // 6] += dtype(1e9)  # clamped cells: boxes of non-clique cells
    ignore = (1,) if seed % 2 else ()
    got, counts = run(libs, xyz, labels, radius, min_points, ignore, mode=mode, seed=seed)
    assert np.array_equal(got, run(libs, xyz, labels, radius, min_points, ignore, False, mode, seed)[0])
    assert np.array_equal(got, cluster_points(xyz, labels, radius, min_points, ignore))


def test_pruning_on_offset_shifted_scannet(libs, realdata):
    """Q of a real scan (offsets pile points up: dense cells): boxes skip cells, the ids stay the same."""
    from clustering_cases import SCANNET_SCENES, load_scan

    xyz, semantic, offsets = load_scan(realdata, SCANNET_SCENES[0])
    coords = xyz + np.float32(0.9) * offsets
    got, counts = run(libs, coords, semantic, 0.03, 50, (0, 1, -100), mode="threads")
    assert counts[BOX_SKIPS] > 0
    assert np.array_equal(got, cluster_points(coords, semantic, 0.03, 50, (0, 1, -100)))
