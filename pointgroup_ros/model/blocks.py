"""Sparse building blocks of PointGroup: the pre-activation residual block and the recursive U-Net level.

The module tree (attribute names, Sequential indices) reproduces the authors' code exactly, so their
state_dict keys map one to one onto this model:

    ResidualBlock: i_branch (empty, or .0 = 1x1 SubMConv3d where in != out),
                   conv_branch .0 BN, .1 ReLU, .2 SubMConv3d(k3), .3 BN, .4 ReLU, .5 SubMConv3d(k3)
    UBlock:        blocks.block<i>, conv (.0 BN, .1 ReLU, .2 SparseConv3d k2 s2), u (next level),
                   deconv (.0 BN, .1 ReLU, .2 SparseInverseConv3d k2), blocks_tail.block<i>

Indice keys follow the authors (subm<L> for the submanifold convs of level L, spconv<L> for the strided
conv of level L and its inverse), so each level computes its neighbour tables once and the inverse conv
reuses the downsampling pairs.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import spconv.pytorch as spconv
import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]


def batch_norm(eps: float = 1e-4, momentum: float = 0.1) -> NormFactory:
    """BatchNorm1d factory with the authors' settings (weight 1, bias 0 at init, which is torch's default)."""

    def make(channels: int) -> nn.Module:
        return nn.BatchNorm1d(channels, eps=eps, momentum=momentum)

    return make


class ResidualBlock(spconv.SparseModule):
    """Pre-activation residual block: out = conv_branch(x) + i_branch(x), no activation after the sum.

    conv_branch = BN, ReLU, SubMConv3d(k=3), BN, ReLU, SubMConv3d(k=3); i_branch = identity when
    in_channels == out_channels, else a 1x1 SubMConv3d (no indice key: spconv computes 1x1 convs as a
    plain matrix product, see checkpoint.py for what that means for the weight layout).
    """

    def __init__(self, in_channels: int, out_channels: int, norm: NormFactory, indice_key: str) -> None:
        super().__init__()
        if in_channels == out_channels:
            self.i_branch = spconv.SparseSequential()  # identity; no parameters, like the authors' nn.Identity
        else:
            self.i_branch = spconv.SparseSequential(
                spconv.SubMConv3d(in_channels, out_channels, kernel_size=1, bias=False))
        self.conv_branch = spconv.SparseSequential(
            norm(in_channels), nn.ReLU(),
            spconv.SubMConv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False,
                              indice_key=indice_key),
            norm(out_channels), nn.ReLU(),
            spconv.SubMConv3d(out_channels, out_channels, kernel_size=3, padding=1, bias=False,
                              indice_key=indice_key),
        )

    def forward(self, x: spconv.SparseConvTensor) -> spconv.SparseConvTensor:
        identity = self.i_branch(x).features
        out = self.conv_branch(x)
        return out.replace_feature(out.features + identity)


class UBlock(nn.Module):
    """One U-Net level and, recursively, all deeper ones (widths[0] here, widths[1:] below).

    Level L: block_reps residual blocks at widths[0]; if deeper levels exist: BN, ReLU, SparseConv3d(k=2,
    s=2) -> UBlock(widths[1:]) -> BN, ReLU, SparseInverseConv3d(k=2) back onto this level's voxels,
    concatenate [skip, decoder] (2C channels) and block_reps residual blocks, the first 2C -> C.
    """

    def __init__(self, widths: Sequence[int], norm: NormFactory, block_reps: int, level: int = 1) -> None:
        super().__init__()
        self.widths = tuple(widths)
        c = widths[0]
        subm_key, down_key = f"subm{level}", f"spconv{level}"
        self.blocks = spconv.SparseSequential(OrderedDict(
            (f"block{i}", ResidualBlock(c, c, norm, subm_key)) for i in range(block_reps)))
        if len(widths) > 1:
            self.conv = spconv.SparseSequential(
                norm(c), nn.ReLU(),
                spconv.SparseConv3d(c, widths[1], kernel_size=2, stride=2, bias=False, indice_key=down_key))
            self.u = UBlock(widths[1:], norm, block_reps, level + 1)
            self.deconv = spconv.SparseSequential(
                norm(widths[1]), nn.ReLU(),
                spconv.SparseInverseConv3d(widths[1], c, kernel_size=2, bias=False, indice_key=down_key))
            # Authors: the i-th tail block takes c * (2 - i) channels (2c for the first, c after; with
            # block_reps > 2 this would go to 0 channels, as in their code, so only 1 or 2 make sense).
            self.blocks_tail = spconv.SparseSequential(OrderedDict(
                (f"block{i}", ResidualBlock(c * max(2 - i, 1), c, norm, subm_key)) for i in range(block_reps)))

    def forward(self, x: spconv.SparseConvTensor) -> spconv.SparseConvTensor:
        out = self.blocks(x)
        if len(self.widths) == 1:
            return out
        skip = out.features
        decoded = self.deconv(self.u(self.conv(out)))
        # The inverse conv outputs exactly the voxels of `out`, in the same order, so features line up.
        out = out.replace_feature(torch.cat((skip, decoded.features), dim=1))
        return self.blocks_tail(out)
