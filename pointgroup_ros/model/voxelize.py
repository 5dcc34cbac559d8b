"""Point <-> voxel maps for the backbone and for ScoreNet (vectorised torch; CPU or CUDA tensors).

Both follow the authors' code (their voxelization_idx / voxelization ops in mean mode) rather than a
paper formula: integer voxel coordinates, one voxel per distinct (batch, x, y, z), input features averaged
over each voxel's points, and an int64 point -> voxel map to copy voxel outputs back to points.
Voxels come out sorted by (batch, x, y, z).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..types import PointBatch, Proposals


@dataclass
class Voxels:
    """Sparse voxel input of a spconv network.

    voxel_coords: int32 (V, 4), [batch, x, y, z] per voxel, sorted.
    voxel_features: float (V, C), mean of the features of the voxel's points.
    point_to_voxel: int64 (N,), the voxel of each input point.
    spatial_shape: voxels per axis (x, y, z).
    batch_size: number of scenes (or clusters, for ScoreNet).
    """

    voxel_coords: torch.Tensor
    voxel_features: torch.Tensor
    point_to_voxel: torch.Tensor
    spatial_shape: tuple[int, int, int]
    batch_size: int

    @property
    def num_voxels(self) -> int:
        return int(self.voxel_coords.shape[0])


def _pool_unique(batch: torch.Tensor, coords: torch.Tensor, features: torch.Tensor,
                 spatial_shape: tuple[int, int, int], batch_size: int) -> Voxels:
    """Unique (batch, x, y, z) cells of non-negative int64 coords (N, 3) and mean-pooled features (N, C)."""
    sx, sy, sz = (int(s) for s in spatial_shape)
    # One int64 key per cell: ((b * sx + x) * sy + y) * sz + z (fits int64 for any realistic extent).
    key = ((batch * sx + coords[:, 0]) * sy + coords[:, 1]) * sz + coords[:, 2]
    unique_key, point_to_voxel, counts = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)
    z = unique_key % sz
    rest = unique_key // sz
    y = rest % sy
    rest = rest // sy
    voxel_coords = torch.stack((rest // sx, rest % sx, y, z), dim=1).to(torch.int32)
    # Out-of-place index_add keeps the pooling differentiable (ScoreNet trains through it).
    summed = torch.zeros(unique_key.shape[0], features.shape[1], dtype=features.dtype,
                         device=features.device).index_add(0, point_to_voxel, features)
    voxel_features = summed / counts.unsqueeze(1).to(features.dtype)
    return Voxels(voxel_coords, voxel_features, point_to_voxel, (sx, sy, sz), batch_size)


def voxelize_points(batch: PointBatch, input_channels: int = 6, scale: float = 50.0,
                    min_spatial: int = 128) -> Voxels:
    """Voxelize a PointBatch for the backbone.

    Voxel coordinates: batch.voxel_xyz (or xyz * scale) shifted per scene so that its minimum is 0
    (authors: coords - min per batch item), then floored. Features: cat[rgb, xyz] (input_channels 6) or
    rgb (3), averaged per voxel. Spatial shape per axis: max coordinate + 1 over the batch, at least
    min_spatial (authors: full_scale[0] = 128), so that the 6 downsamplings keep a valid grid.
    """
    xyz, rgb, bidx = batch.xyz, batch.rgb, batch.batch_idx
    n = xyz.shape[0]
    if xyz.ndim != 2 or xyz.shape[1] != 3 or rgb.shape != xyz.shape:
        raise ValueError(f"PointBatch: xyz and rgb must both be (N, 3), got {tuple(xyz.shape)} and "
                         f"{tuple(rgb.shape)}")
    if bidx.shape != (n,):
        raise ValueError(f"PointBatch: batch_idx must be (N,) = ({n},), got {tuple(bidx.shape)}")
    if input_channels not in (3, 6):
        raise ValueError(f"input_channels must be 3 (rgb) or 6 (rgb + xyz), got {input_channels}")
    if batch.batch_size < 1:
        raise ValueError(f"PointBatch: batch_size must be >= 1, got {batch.batch_size}")
    vox = batch.voxel_xyz if batch.voxel_xyz is not None else xyz * scale
    if vox.shape != xyz.shape:
        raise ValueError(f"PointBatch: voxel_xyz must be (N, 3), got {tuple(vox.shape)}")
    bidx = bidx.long()
    features = torch.cat((rgb, xyz), dim=1) if input_channels == 6 else rgb
    if n == 0:
        empty_shape = (min_spatial, min_spatial, min_spatial)
        return Voxels(torch.zeros(0, 4, dtype=torch.int32, device=xyz.device), features[:0],
                      torch.zeros(0, dtype=torch.int64, device=xyz.device), empty_shape, batch.batch_size)
    # the three checks in one read from the device (one synchronisation on a GPU, not three)
    finite, lo, hi = torch.stack((torch.isfinite(vox).all().long(), bidx.min(), bidx.max())).tolist()
    if not finite:
        raise ValueError("PointBatch: coordinates contain NaN or inf (remove invalid points first)")
    if lo < 0 or hi >= batch.batch_size:
        raise ValueError(f"PointBatch: batch_idx must lie in 0..{batch.batch_size - 1}, got {lo}..{hi}")
    scene_min = torch.full((batch.batch_size, 3), float("inf"), dtype=vox.dtype, device=vox.device)
    scene_min = scene_min.scatter_reduce(0, bidx.unsqueeze(1).expand(-1, 3), vox, "amin", include_self=True)
    coords = torch.floor(vox - scene_min[bidx]).long()
    extent = coords.max(dim=0).values + 1
    spatial_shape = tuple(max(int(e), min_spatial) for e in extent.tolist())
    return _pool_unique(bidx, coords, features, spatial_shape, batch.batch_size)  # type: ignore[arg-type]


def downsample_voxels(xyz: torch.Tensor, features: torch.Tensor,
                      voxel_size: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average points into cubes of voxel_size metres, on the grid the backbone uses (anchored at the minimum).

    xyz: float (N, 3), N >= 1; features: (N, C), averaged alongside (in xyz's precision).
    Returns (mean xyz (V, 3), mean features (V, C) in features' dtype, the voxel of each point int64 (N,),
    integer voxel coordinates int64 (V, 3)). Points are grouped in one sort (torch.unique), on their device.
    """
    coords = torch.floor((xyz - xyz.min(dim=0).values) / voxel_size).long()
    extent = (coords.max(dim=0).values + 1).tolist()
    zeros = torch.zeros(xyz.shape[0], dtype=torch.int64, device=xyz.device)
    pooled = _pool_unique(zeros, coords, torch.cat((xyz, features.to(xyz.dtype)), dim=1), tuple(extent), 1)
    mean = pooled.voxel_features
    return mean[:, :3], mean[:, 3:].to(features.dtype), pooled.point_to_voxel, pooled.voxel_coords[:, 1:].long()


def voxelize_clusters(point_features: torch.Tensor, xyz: torch.Tensor, proposals: Proposals,
                      score_scale: float = 50.0, fullscale: int = 14, random_shift: bool = False,
                      generator: torch.Generator | None = None) -> Voxels:
    """ScoreNet input: each proposal voxelized on its own fullscale^3 grid, all proposals at once.

    point_features: float (N, m) backbone features (gradients flow through the mean pooling).
    xyz: float (N, 3) metres. Proposal m becomes batch item m of the returned Voxels, whose
    point_to_voxel has one entry per entry of proposals.point_idx (K,).

    Per proposal (authors' clusters_voxelization): subtract the mean; scale = min(score_scale,
    fullscale / largest axis extent - 0.01); shift into [0, fullscale): by -min + free * r with
    free = max(fullscale - range - 0.001, 0) per axis. The authors draw r ~ U[0, 1)^3 once per call (shared by
    all clusters), at test time too; here random_shift=True does that and random_shift=False uses
    r = 0.5, the mean of that shift (each cluster centred in its grid), so inference is deterministic.
    Then truncate to integer voxels and mean-pool the features per voxel. (The authors' second shift term,
    non-zero only if a cluster were wider than the grid, cannot trigger with this scale; a clamp to
    [0, fullscale - 1] guards float rounding instead of their assertion.)
    """
    m = proposals.num_proposals
    idx = proposals.point_idx.long()
    pid = proposals.proposal_id
    device = xyz.device
    coords = xyz[idx]
    sizes = proposals.sizes.to(coords.dtype).clamp(min=1).unsqueeze(1)
    mean = torch.zeros(m, 3, dtype=coords.dtype, device=device).index_add(0, pid, coords) / sizes
    coords = coords - mean[pid]
    expand = pid.unsqueeze(1).expand(-1, 3)
    cmin = torch.zeros(m, 3, dtype=coords.dtype, device=device).scatter_reduce(0, expand, coords, "amin",
                                                                                include_self=False)
    cmax = torch.zeros(m, 3, dtype=coords.dtype, device=device).scatter_reduce(0, expand, coords, "amax",
                                                                                include_self=False)
    # 1 / (extent / fullscale) - 0.01, capped at score_scale (a one-point cluster gives inf -> score_scale).
    scale = (1.0 / ((cmax - cmin) / fullscale).max(dim=1).values - 0.01).clamp(max=score_scale)
    min_xyz = cmin * scale.unsqueeze(1)
    extent = (cmax - cmin) * scale.unsqueeze(1)
    free = (fullscale - extent - 0.001).clamp(min=0)
    if random_shift:
        r = torch.rand(3, generator=generator, device=generator.device if generator is not None else "cpu")
        r = r.to(device=device, dtype=coords.dtype)
    else:
        r = torch.full((3,), 0.5, dtype=coords.dtype, device=device)
    shift = -min_xyz + free * r
    scaled = coords * scale[pid].unsqueeze(1) + shift[pid]
    # Non-negative by construction, so truncation is the floor; the clamp only guards float rounding.
    vcoords = scaled.long().clamp(0, fullscale - 1)
    return _pool_unique(pid, vcoords, point_features[idx], (fullscale,) * 3, m)
