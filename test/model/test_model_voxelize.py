"""Voxelization of scenes (backbone input) and of clusters (ScoreNet input), on hand-checked cases."""
from __future__ import annotations

import pytest
import torch

from pointgroup_ros.model.voxelize import voxelize_clusters, voxelize_points
from pointgroup_ros.types import PointBatch, Proposals


def hand_batch() -> PointBatch:
    voxel_xyz = torch.tensor([[10.2, 5.5, 3.1], [10.9, 5.1, 3.9], [12.0, 5.0, 3.0],  # scene 0
                              [0.5, 0.5, 0.5], [-1.0, 2.0, 7.5]])  # scene 1
    xyz = voxel_xyz / 50
    rgb = torch.tensor([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5], [1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    return PointBatch(xyz, rgb, torch.tensor([0, 0, 0, 1, 1]), 2, voxel_xyz=voxel_xyz)


def test_scene_voxelization_hand_case():
    batch = hand_batch()
    v = voxelize_points(batch, input_channels=6, min_spatial=4)
    # scene 0 min (10.2, 5.0, 3.0): points -> (0.0, 0.5, 0.1), (0.7, 0.1, 0.9), (1.8, 0.0, 0.0)
    #   -> voxels (0,0,0), (0,0,0), (1,0,0)
    # scene 1 min (-1.0, 0.5, 0.5): points -> (1.5, 0.0, 0.0), (0.0, 1.5, 7.0) -> voxels (1,0,0), (0,1,7)
    assert v.voxel_coords.dtype == torch.int32 and v.point_to_voxel.dtype == torch.int64
    assert v.voxel_coords.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 7], [1, 1, 0, 0]]
    assert v.point_to_voxel.tolist() == [0, 0, 1, 3, 2]
    assert v.spatial_shape == (4, 4, 8)  # max (1, 1, 7) + 1, at least 4
    assert v.batch_size == 2
    feats = torch.cat((batch.rgb, batch.xyz), 1)
    torch.testing.assert_close(v.voxel_features[0], (feats[0] + feats[1]) / 2)  # mean of the two points
    torch.testing.assert_close(v.voxel_features[1:], feats[[2, 4, 3]])


def test_scene_voxelization_defaults():
    batch = hand_batch()
    v = voxelize_points(batch, input_channels=3)
    assert v.spatial_shape == (128, 128, 128)
    assert v.voxel_features.shape == (4, 3)
    # without voxel_xyz the voxel coordinates are xyz * scale: same as above here
    no_vox = PointBatch(batch.xyz, batch.rgb, batch.batch_idx, 2)
    assert torch.equal(voxelize_points(no_vox, 3, scale=50.0).voxel_coords, v.voxel_coords)


def test_scene_voxelization_bad_input():
    batch = hand_batch()
    with pytest.raises(ValueError, match="batch_idx must lie in 0..0"):
        voxelize_points(PointBatch(batch.xyz, batch.rgb, batch.batch_idx, 1))
    with pytest.raises(ValueError, match="NaN"):
        voxelize_points(PointBatch(batch.xyz * float("nan"), batch.rgb, batch.batch_idx, 2))
    with pytest.raises(ValueError, match="rgb"):
        voxelize_points(PointBatch(batch.xyz, batch.rgb[:, :2], batch.batch_idx, 2))


def test_cluster_voxelization_hand_case():
    xyz = torch.tensor([[0.0, 1.0, 2.0], [0.1, 1.0, 2.0],  # cluster 0: 10 cm along x
                        [0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # cluster 1: 1 m
    feats = torch.arange(12, dtype=torch.float32).view(6, 2)
    props = Proposals(torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([0, 2, 6]))
    v = voxelize_clusters(feats, xyz, props, score_scale=50.0, fullscale=14)
    # cluster 0: centred x = -0.05, 0.05; scale = min(50, 14 / 0.1 - 0.01) = 50 -> x = -2.5, 2.5;
    #   free = 14 - 5 - 0.001 = 8.999, shift = 2.5 + 8.999 / 2 = 6.9995 -> x = 4.4995 -> 4, 9.4995 -> 9;
    #   y, z extent 0: free 13.999, shift 6.9995 -> 6
    # cluster 1: x centred at 0.625 -> -0.625, -0.125, 0.375, 0.375; scale = 14 / 1 - 0.01 = 13.99;
    #   x * 13.99 + (0.625 * 13.99 + (14 - 13.99 - 0.001) / 2) = x * 13.99 + 8.74825 -> 0.0045, 6.9995,
    #   13.9945 -> voxels 0, 6, 13 (the last two points share voxel 13); y, z extent 0 -> 6 as above
    assert v.spatial_shape == (14, 14, 14) and v.batch_size == 2
    assert v.voxel_coords.tolist() == [[0, 4, 6, 6], [0, 9, 6, 6], [1, 0, 6, 6], [1, 6, 6, 6], [1, 13, 6, 6]]
    assert v.point_to_voxel.tolist() == [0, 1, 2, 3, 4, 4]
    torch.testing.assert_close(v.voxel_features[4], (feats[4] + feats[5]) / 2)


def test_cluster_voxelization_stays_in_grid_and_random_shift():
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(500, 3, generator=g) * torch.tensor([3.0, 0.2, 0.01])
    feats = torch.randn(500, 16, generator=g)
    offsets = torch.tensor([0, 1, 50, 300, 500])  # includes a one-point cluster (extent 0 -> scale 50)
    props = Proposals(torch.arange(500), offsets)
    for shift in (False, True):
        v = voxelize_clusters(feats, xyz, props, random_shift=shift, generator=torch.Generator().manual_seed(1))
        assert int(v.voxel_coords[:, 1:].min()) >= 0 and int(v.voxel_coords[:, 1:].max()) <= 13
        assert v.voxel_coords[:, 0].unique().tolist() == [0, 1, 2, 3]
        # the largest axis fills (almost) the whole grid
        span = v.voxel_coords[v.voxel_coords[:, 0] == 3][:, 1]
        assert int(span.max() - span.min()) >= 12
    a = voxelize_clusters(feats, xyz, props, random_shift=True, generator=torch.Generator().manual_seed(1))
    b = voxelize_clusters(feats, xyz, props, random_shift=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.voxel_coords, b.voxel_coords)


def test_cluster_voxelization_pooling_is_differentiable():
    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(40, 3, generator=g) * 0.5  # 0.5 m -> about 0.5 * 28 = 14 cells per axis: some shared
    feats = torch.rand(40, 4, generator=g, requires_grad=True)
    v = voxelize_clusters(feats, xyz, Proposals(torch.arange(40), torch.tensor([0, 40])))
    v.voxel_features.sum().backward()
    count = torch.bincount(v.point_to_voxel)[v.point_to_voxel].float()  # points sharing each point's voxel
    assert v.num_voxels < 40 or bool((count == 1).all())
    # each point weighs 1/n in the mean of a voxel of n points
    torch.testing.assert_close(feats.grad, (1.0 / count).unsqueeze(1).expand(40, 4))
