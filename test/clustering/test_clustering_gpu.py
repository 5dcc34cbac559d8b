"""The CuPy path on a real GPU against the CPU path, exactly (skipped without CUDA + CuPy)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from clustering_cases import SCANNET_SCENES, load_scan, random_cloud

from pointgroup_ros.clustering import cluster_points, dual_set_proposals, intersection_counts, nms, proposal_iou

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("seed", range(60))
def test_cupy_matches_cpu_on_random_clouds(seed):
    import cupy

    dtype = np.float64 if seed % 4 == 0 else np.float32
    xyz, labels, radius, min_points = random_cloud(seed, n_max=20000, dtype=dtype)
    if seed % 5 == 1:
        xyz[: len(xyz) // 5] += dtype(1e9)
    if seed % 6 == 2:
        xyz[::11, seed % 3] = np.nan
    ignore = (1,) if seed % 2 else ()
    got = cluster_points(cupy.asarray(xyz), cupy.asarray(labels), radius, min_points, ignore)
    assert isinstance(got, cupy.ndarray) and got.dtype == cupy.int64
    assert np.array_equal(cupy.asnumpy(got), cluster_points(xyz, labels, radius, min_points, ignore))


def test_torch_cuda_in_torch_cuda_out_non_contiguous():
    xyz, labels, radius, min_points = random_cloud(3, n_max=5000)
    want = cluster_points(xyz, labels, radius, min_points)
    wide = torch.zeros(len(xyz), 6, device="cuda")
    wide[:, ::2] = torch.from_numpy(xyz).cuda()
    got = cluster_points(wide[:, ::2], torch.from_numpy(labels).cuda().to(torch.int32), radius, min_points)
    assert got.is_cuda and got.dtype == torch.int64 and got.device == wide.device
    assert np.array_equal(got.cpu().numpy(), want)
    again = cluster_points(torch.from_numpy(xyz).cuda().double(), torch.from_numpy(labels).cuda(), radius, min_points)
    assert np.array_equal(again.cpu().numpy(), cluster_points(xyz.astype(np.float64), labels, radius, min_points))


def test_gpu_edge_cases():
    import cupy

    empty = cluster_points(cupy.zeros((0, 3), cupy.float32), cupy.zeros(0, cupy.int64), 0.03, 1)
    assert empty.shape == (0,)
    one = cluster_points(cupy.zeros((1, 3), cupy.float32), cupy.zeros(1, cupy.int64), 0.03, 1)
    assert one.tolist() == [0]
    ignored = cluster_points(cupy.zeros((9, 3), cupy.float32), cupy.full(9, 4, cupy.int64), 0.03, 1, [4])
    assert (ignored == -1).all()
    rng = np.random.default_rng(0)
    plane = np.zeros((200000, 3), np.float32)
    plane[:, :2] = rng.random((200000, 2)) * 4
    assert (cluster_points(cupy.asarray(plane), cupy.zeros(200000, cupy.int64), 0.03, 50) == 0).all()
    stack = np.repeat(rng.random((4, 3)).astype(np.float32) * 10, 50000, axis=0)
    got = cluster_points(cupy.asarray(stack), cupy.zeros(200000, cupy.int64), 0.03, 50)
    assert np.array_equal(cupy.asnumpy(got), np.repeat(np.arange(4), 50000))


@pytest.mark.parametrize("scene", SCANNET_SCENES)
def test_cupy_matches_cpu_on_scannet(realdata, scene):
    import cupy

    xyz, semantic, offsets = load_scan(realdata, scene)
    for shift in (0.0, 0.6, 1.0):
        coords = xyz + np.float32(shift) * offsets
        for radius, min_points in ((0.03, 50), (0.05, 20)):
            want = cluster_points(coords, semantic, radius, min_points, (0, 1, -100))
            got = cluster_points(cupy.asarray(coords), cupy.asarray(semantic), radius, min_points, (0, 1, -100))
            assert np.array_equal(cupy.asnumpy(got), want)


def test_dual_set_and_nms_on_gpu_match_cpu(realdata):
    xyz, semantic, offsets = (torch.from_numpy(a) for a in load_scan(realdata, SCANNET_SCENES[1]))
    cpu, cpu_q = dual_set_proposals(xyz, offsets * 0.8, semantic.clamp(min=0), (0, 1), 0.03, 50, return_set=True)
    gpu, gpu_q = dual_set_proposals(xyz.cuda(), offsets.cuda() * 0.8, semantic.clamp(min=0).cuda(), (0, 1), 0.03, 50,
                                    return_set=True)
    assert gpu.point_idx.is_cuda and gpu.offsets.is_cuda
    assert torch.equal(gpu.point_idx.cpu(), cpu.point_idx) and torch.equal(gpu.offsets.cpu(), cpu.offsets)
    assert torch.equal(gpu_q.cpu(), cpu_q)
    assert torch.equal(intersection_counts(gpu).cpu(), intersection_counts(cpu))
    assert torch.equal(proposal_iou(gpu).cpu(), proposal_iou(cpu))
    # a separate radius on Q takes the two-pass path on the GPU too
    cpu2 = dual_set_proposals(xyz, offsets * 0.8, semantic.clamp(min=0), (0, 1), 0.03, 50, shifted_radius=0.015)
    gpu2 = dual_set_proposals(xyz.cuda(), offsets.cuda() * 0.8, semantic.clamp(min=0).cuda(), (0, 1), 0.03, 50,
                              shifted_radius=0.015)
    assert torch.equal(gpu2.point_idx.cpu(), cpu2.point_idx) and torch.equal(gpu2.offsets.cpu(), cpu2.offsets)
    scores = torch.rand(cpu.num_proposals, generator=torch.Generator().manual_seed(0))
    for args in ((0.3, 0.09, 100), (0.1, 0.0, 0)):
        assert torch.equal(nms(gpu, scores.cuda(), *args).cpu(), nms(cpu, scores, *args))


def test_cupy_allocates_from_torch_after_grouping_torch_tensors():
    """One pool: after cluster_points on CUDA tensors, a CuPy array is torch memory, and is given back to torch."""
    import os

    import cupy

    from pointgroup_ros.clustering import gpu

    if os.environ.get(gpu.ALLOCATOR_ENV, "").strip().lower() == "cupy":
        pytest.skip(f"{gpu.ALLOCATOR_ENV}=cupy keeps CuPy's own pool")
    xyz, labels, radius, min_points = random_cloud(7, n_max=5000)
    got = cluster_points(torch.from_numpy(xyz).cuda(), torch.from_numpy(labels).cuda(), radius, min_points)
    assert np.array_equal(got.cpu().numpy(), cluster_points(xyz, labels, radius, min_points))
    shared, why = gpu.allocator_status()
    assert shared, why
    assert gpu.share_torch_allocator() is True  # idempotent
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    pool_before = cupy.get_default_memory_pool().used_bytes()
    size = 64 * 2**20
    array = cupy.zeros(size, dtype=cupy.uint8)
    assert torch.cuda.memory_allocated() - before >= size
    assert cupy.get_default_memory_pool().used_bytes() == pool_before  # nothing from CuPy's own pool
    assert int(array.sum()) == 0
    del array
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before < size  # freed into torch's pool (allocated no more)
    # the grouping keeps giving the same answers from torch's memory
    again = cluster_points(cupy.asarray(xyz), cupy.asarray(labels), radius, min_points)
    assert np.array_equal(cupy.asnumpy(again), cluster_points(xyz, labels, radius, min_points))
