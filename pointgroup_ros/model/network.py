"""The PointGroup network (paper Fig. 2): backbone U-Net, semantic and offset heads, ScoreNet.

Where this follows the authors' code rather than the paper:
- the module tree and attribute names are the authors', so their checkpoint's state_dict keys map one to
  one (see blocks.py); every BatchNorm is BatchNorm1d(eps 1e-4, momentum 0.1); convolutions have no bias;
- the input features are cat[rgb, xyz] averaged per voxel (the paper only says "colour and coordinates");
- the offset head is Linear(m, m, bias) + BN + ReLU + Linear(m, 3); the semantic head a single Linear;
- ScoreNet's U-Net always has 2 residual blocks per level (hard-coded by the authors, independent of
  block_reps) and its clusters are voxelized as in voxelize.voxelize_clusters.

spconv's CUDA wheels only run on the CPU with ConvAlgo.Native (their default implicit-GEMM algorithm
asserts CUDA), so every forward sets each conv's algorithm from the device of its input: Native on CPU,
spconv's default on CUDA. One model instance can therefore move between devices freely.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import spconv.pytorch as spconv
import torch
from spconv.core import ConvAlgo
from spconv.pytorch.conv import SparseConvolution
from torch import nn

from ..config import ModelConfig
from ..types import PointBatch, Proposals
from .blocks import UBlock, batch_norm
from .voxelize import Voxels, voxelize_clusters, voxelize_points


class _DropFxTracingNotice(logging.Filter):
    """spconv's SparseConvTensor uses torch.fx's ProxyableClassMeta, whose every construction asks
    torch.fx.is_fx_tracing(); torch >= 2.x logs a deprecation notice about that call once per process, a line
    meant for spconv's authors, not our users. Only that record of that logger is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("is_fx_tracing will return true")


_fx_logger = logging.getLogger("torch.fx._symbolic_trace")
if not any(isinstance(f, _DropFxTracingNotice) for f in _fx_logger.filters):
    _fx_logger.addFilter(_DropFxTracingNotice())

SCORE_BLOCK_REPS = 2  # authors: UBlock([m, 2m], norm_fn, 2, ...) regardless of block_reps


@dataclass
class BackboneOutput:
    """Per-point outputs of the backbone and its heads (N points of the PointBatch, same order).

    semantic_logits: float (N, num_classes), unnormalised class scores.
    offsets: float (N, 3), predicted shift towards the instance centre, metres.
    point_features: float (N, m), backbone features after the output BN + ReLU (ScoreNet's input).
    """

    semantic_logits: torch.Tensor
    offsets: torch.Tensor
    point_features: torch.Tensor


def set_conv_algo(module: nn.Module, device: torch.device) -> None:
    """Set every spconv conv in `module` to the algorithm that runs on `device` (Native on CPU)."""
    for m in module.modules():
        if isinstance(m, SparseConvolution):
            if not hasattr(m, "_pg_cuda_algo"):
                m._pg_cuda_algo = m.algo  # spconv's choice at construction (MaskImplicitGemm for k<=32)
            m.algo = m._pg_cuda_algo if device.type == "cuda" else ConvAlgo.Native


class PointGroup(nn.Module):
    """PointGroup with the authors' architecture (7.7 M parameters for the ScanNet configuration).

    model_cfg: widths, block_reps, ScoreNet sizes, BN settings; num_classes: semantic classes;
    scale: voxels per metre used when a PointBatch has no voxel_xyz; min_spatial: smallest spatial extent
    of the voxel grid per axis (authors' full_scale[0]).
    """

    def __init__(self, model_cfg: ModelConfig, num_classes: int, scale: float = 50.0,
                 min_spatial: int = 128) -> None:
        super().__init__()
        model_cfg.validate()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.cfg = model_cfg
        self.num_classes = num_classes
        self.scale = float(scale)
        self.min_spatial = int(min_spatial)
        m = model_cfg.widths[0]
        norm = batch_norm(model_cfg.bn_eps, model_cfg.bn_momentum)

        # backbone
        self.input_conv = spconv.SparseSequential(
            spconv.SubMConv3d(model_cfg.input_channels, m, kernel_size=3, padding=1, bias=False,
                              indice_key="subm1"))
        self.unet = UBlock(model_cfg.widths, norm, model_cfg.block_reps, level=1)
        self.output_layer = spconv.SparseSequential(norm(m), nn.ReLU())
        # semantic head
        self.linear = nn.Linear(m, num_classes)
        # offset head
        self.offset = nn.Sequential(nn.Linear(m, m, bias=True), norm(m), nn.ReLU())
        self.offset_linear = nn.Linear(m, 3, bias=True)
        # ScoreNet
        self.score_unet = UBlock(model_cfg.score_widths, norm, SCORE_BLOCK_REPS, level=1)
        self.score_outputlayer = spconv.SparseSequential(norm(m), nn.ReLU())
        self.score_linear = nn.Linear(m, 1)
        self._algo_device: str | None = None

    # ---- device handling -------------------------------------------------------------------------------
    def _use_device(self, device: torch.device) -> None:
        if self._algo_device != device.type:
            set_conv_algo(self, device)
            self._algo_device = device.type

    # ---- stages ----------------------------------------------------------------------------------------
    def voxelize(self, batch: PointBatch) -> Voxels:
        """Points -> voxels with mean-pooled input features (see voxelize.voxelize_points)."""
        return voxelize_points(batch, self.cfg.input_channels, self.scale, self.min_spatial)

    def backbone(self, voxels: Voxels) -> torch.Tensor:
        """Input conv, U-Net, output BN + ReLU; returns float (V, m) voxel features."""
        self._use_device(voxels.voxel_features.device)
        x = spconv.SparseConvTensor(voxels.voxel_features, voxels.voxel_coords, list(voxels.spatial_shape),
                                    voxels.batch_size)
        x = self.output_layer(self.unet(self.input_conv(x)))
        return x.features

    def semantic_head(self, point_features: torch.Tensor) -> torch.Tensor:
        """float (N, m) -> float (N, num_classes) logits."""
        return self.linear(point_features)

    def offset_head(self, point_features: torch.Tensor) -> torch.Tensor:
        """float (N, m) -> float (N, 3) offsets in metres."""
        return self.offset_linear(self.offset(point_features))

    def forward(self, batch: PointBatch) -> BackboneOutput:
        """Semantic logits, offsets and per-point features for every point of the batch."""
        voxels = self.voxelize(batch)
        if voxels.num_voxels == 0:  # an empty cloud: spconv cannot run on zero voxels
            feats = batch.xyz.new_zeros(0, self.cfg.widths[0])
        else:
            feats = self.backbone(voxels)[voxels.point_to_voxel]
        return BackboneOutput(self.semantic_head(feats), self.offset_head(feats), feats)

    def score_proposals(self, point_features: torch.Tensor, xyz: torch.Tensor, proposals: Proposals,
                        random_shift: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """ScoreNet: float (M,) score logits for M proposals (sigmoid gives the scores in [0, 1]).

        point_features: float (N, m) from forward(); xyz: float (N, 3) metres; proposals on the same device.
        Each proposal is voxelized on its own grid (voxelize.voxelize_clusters; random_shift as the authors'
        training, off for deterministic inference), run through score_unet + BN + ReLU, copied back to its
        points, max-pooled over the proposal's points, then score_linear.
        """
        m = proposals.num_proposals
        if m == 0:
            return point_features.new_zeros(0)
        voxels = voxelize_clusters(point_features, xyz, proposals, self.cfg.score_scale,
                                   self.cfg.score_fullscale, random_shift, generator)
        self._use_device(voxels.voxel_features.device)
        x = spconv.SparseConvTensor(voxels.voxel_features, voxels.voxel_coords, list(voxels.spatial_shape),
                                    voxels.batch_size)
        x = self.score_outputlayer(self.score_unet(x))
        per_point = x.features[voxels.point_to_voxel]  # (K, m)
        pid = proposals.proposal_id.unsqueeze(1).expand(-1, per_point.shape[1])
        pooled = per_point.new_zeros(m, per_point.shape[1]).scatter_reduce(0, pid, per_point, "amax",
                                                                            include_self=False)
        return self.score_linear(pooled).view(-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
