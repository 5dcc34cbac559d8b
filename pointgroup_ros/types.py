"""Small data types shared by the model, the grouping code and the pipeline (ROS-free)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Proposals:
    """Instance proposals (clusters) in compressed form, on one device.

    point_idx: int64 (K,), the member point indices of all proposals, concatenated, each proposal's
        members in increasing index order.
    offsets: int64 (M + 1,), proposal m owns point_idx[offsets[m]:offsets[m + 1]]; offsets[0] = 0.
    """

    point_idx: torch.Tensor
    offsets: torch.Tensor

    @property
    def num_proposals(self) -> int:
        return int(self.offsets.numel()) - 1

    @property
    def sizes(self) -> torch.Tensor:
        """int64 (M,), the number of points of each proposal."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def proposal_id(self) -> torch.Tensor:
        """int64 (K,), which proposal each entry of point_idx belongs to."""
        return torch.repeat_interleave(torch.arange(self.num_proposals, device=self.offsets.device), self.sizes)

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> "Proposals":
        return Proposals(torch.zeros(0, dtype=torch.int64, device=device),
                         torch.zeros(1, dtype=torch.int64, device=device))

    def to(self, device: torch.device | str) -> "Proposals":
        return Proposals(self.point_idx.to(device), self.offsets.to(device))


@dataclass
class PointBatch:
    """One or more scenes' points, concatenated: the input of the network (training and inference).

    xyz: float32 (N, 3), metres; the coordinate features and the frame of the predicted offsets.
    rgb: float32 (N, 3), colours scaled to [-1, 1] (rgb / 127.5 - 1); zeros when a cloud has none.
    batch_idx: int64 (N,), which scene each point belongs to, in 0..batch_size-1.
    batch_size: number of scenes.
    voxel_xyz: float32 (N, 3) or None, the coordinates in voxel units that decide each point's voxel
        (xyz * scale, possibly elastically distorted in training); None means xyz * scale.
    semantic: int64 (N,) or None, training target class index, ignore_label (-100) where unknown.
    instance: int64 (N,) or None, training target instance id, unique across the whole batch,
        ignore_label (-100) for points of no instance.
    """

    xyz: torch.Tensor
    rgb: torch.Tensor
    batch_idx: torch.Tensor
    batch_size: int
    voxel_xyz: torch.Tensor | None = None
    semantic: torch.Tensor | None = None
    instance: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PointBatch":
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return PointBatch(move(self.xyz), move(self.rgb), move(self.batch_idx), self.batch_size,  # type: ignore[arg-type]
                          move(self.voxel_xyz), move(self.semantic), move(self.instance))
