"""The CUDA kernel sources run on the CPU (g++ + kernels/host/cuda_host_shim.h) through the GPU driver.

gpu.group_with_kernels is the driver the CuPy path uses; here it gets numpy and the host-built kernels,
launched thread by thread in index order, in shuffled orders and on several OS threads at once.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from clustering_cases import SCANNET_SCENES, load_scan, random_cloud

from pointgroup_ros.clustering import cluster_points, reference_cluster
from pointgroup_ros.clustering.gpu import group_with_kernels
from pointgroup_ros.clustering.hostbuild import HostLauncher, build

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to build the kernels for the host")


@pytest.fixture(scope="module")
def host_libs(tmp_path_factory):
    out = tmp_path_factory.mktemp("host_kernels")
    return {np.dtype(dt): build(dt, out) for dt in (np.float32, np.float64)}


def run_kernels(libs, xyz, labels, radius, min_points, ignore=(), mode="ordered", seed=0):
    xyz = np.ascontiguousarray(xyz)
    launcher = HostLauncher(libs[xyz.dtype], xyz.dtype, mode=mode, seed=seed)
    return group_with_kernels(np, launcher, xyz, np.ascontiguousarray(labels, dtype=np.int64), radius,
                              min_points, tuple(ignore), np.asarray)


@pytest.mark.parametrize("mode", ["ordered", "shuffled", "threads"])
@pytest.mark.parametrize("seed", range(25))
def test_kernels_match_reference(host_libs, mode, seed):
    dtype = np.float64 if seed % 5 == 0 else np.float32
    xyz, labels, radius, min_points = random_cloud(seed, dtype=dtype)
    if seed % 4 == 1:
        xyz[: len(xyz) // 5] += dtype(1e9)  # far away: clamped, non-clique cells
    if seed % 6 == 2:
        xyz[::7, seed % 3] = np.nan
    ignore = (1,) if seed % 2 else ()
    got = run_kernels(host_libs, xyz, labels, radius, min_points, ignore, mode, seed)
    assert np.array_equal(got, reference_cluster(xyz, labels, radius, min_points, ignore))


def test_kernel_edge_cases(host_libs):
    empty = run_kernels(host_libs, np.zeros((0, 3), np.float32), np.zeros(0, np.int64), 0.1, 1)
    assert empty.shape == (0,)
    assert run_kernels(host_libs, np.zeros((1, 3), np.float32), [3], 0.1, 1).tolist() == [0]
    assert (run_kernels(host_libs, np.zeros((5, 3), np.float32), [3] * 5, 0.1, 1, ignore=(3,)) == -1).all()
    stack = np.repeat(np.eye(3, dtype=np.float32), 3000, axis=0)  # 3 dense spots, one huge cell each
    got = run_kernels(host_libs, stack, np.zeros(9000), 0.03, 50, mode="threads")
    assert np.array_equal(got, np.repeat([0, 1, 2], 3000))
    wide = np.arange(400, dtype=np.int64) % 3 * (1 << 45)  # wide label range: ranks
    xyz = np.random.default_rng(0).random((400, 3)).astype(np.float32) * 0.3
    assert np.array_equal(run_kernels(host_libs, xyz, wide, 0.05, 2), reference_cluster(xyz, wide, 0.05, 2))


def test_kernels_on_a_scannet_scan(host_libs, realdata):
    xyz, semantic, offsets = load_scan(realdata, SCANNET_SCENES[0])
    for shift in (0.0, 0.7):
        coords = xyz + np.float32(shift) * offsets
        got = run_kernels(host_libs, coords, semantic, 0.03, 50, (0, 1, -100), mode="threads")
        assert np.array_equal(got, cluster_points(coords, semantic, 0.03, 50, (0, 1, -100)))
