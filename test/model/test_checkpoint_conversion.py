"""Proof, per conv kind, that converted spconv 1.x weights give spconv 1's result in this model's layers.

spconv 1.x semantics (its own test suite compares SparseConv3d with weight W [k, k, k, Cin, Cout] against
torch Conv3d with W.permute(4, 3, 0, 1, 2), and its inverse/transposed convs against ConvTranspose3d with
W.permute(3, 4, 0, 1, 2)) are modelled densely with torch; the layers under test are the model's own
spconv 2 modules on the CPU (ConvAlgo.Native), fed the converted weight.
"""
from __future__ import annotations

import pytest
import spconv.pytorch as spconv
import torch
import torch.nn.functional as F
from spconv.core import ConvAlgo

from pointgroup_ros.config import ModelConfig
from pointgroup_ros.model.checkpoint import spconv1_to_spconv2
from pointgroup_ros.model.network import PointGroup, set_conv_algo

SHAPE = (8, 6, 10)  # even, so the strided conv covers every site


@pytest.fixture(scope="module")
def model() -> PointGroup:
    torch.set_num_threads(1)
    net = PointGroup(ModelConfig(widths=(16, 32)), num_classes=4)
    set_conv_algo(net, torch.device("cpu"))
    return net.eval()


def random_sparse(channels: int, n_active: int = 70, batch: int = 2, seed: int = 0):
    """Random distinct active sites: (indices int32 (A, 4), features (A, C), dense (B, C, X, Y, Z))."""
    g = torch.Generator().manual_seed(seed)
    cells = batch * SHAPE[0] * SHAPE[1] * SHAPE[2]
    flat = torch.randperm(cells, generator=g)[:n_active]
    b, rest = flat // (SHAPE[0] * SHAPE[1] * SHAPE[2]), flat % (SHAPE[0] * SHAPE[1] * SHAPE[2])
    x, rest = rest // (SHAPE[1] * SHAPE[2]), rest % (SHAPE[1] * SHAPE[2])
    y, z = rest // SHAPE[2], rest % SHAPE[2]
    idx = torch.stack((b, x, y, z), 1).int()
    feats = torch.randn(n_active, channels, generator=g, dtype=torch.float64).float()
    dense = torch.zeros(batch, channels, *SHAPE)
    dense[b, :, x, y, z] = feats
    return idx, feats, dense


def at(dense: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather a dense (B, C, X, Y, Z) tensor at sparse indices (A, 4) -> (A, C)."""
    i = idx.long()
    return dense[i[:, 0], :, i[:, 1], i[:, 2], i[:, 3]]


def set_weight(layer: torch.nn.Module, w1: torch.Tensor) -> None:
    with torch.no_grad():
        layer.weight.copy_(spconv1_to_spconv2(w1))


def test_layers_run_native_on_cpu(model):
    layer = model.unet.blocks.block0.conv_branch[2]
    assert layer.algo == ConvAlgo.Native


def test_spconv_orientation_single_tap(model):
    """A kernel with one non-zero tap at spconv-1 index (2, 1, 1) reads the neighbour at +1 in x."""
    layer = model.unet.blocks.block0.conv_branch[2]  # SubMConv3d 16 -> 16, k=3
    w1 = torch.zeros(3, 3, 3, 16, 16)
    w1[2, 1, 1] = torch.eye(16)
    set_weight(layer, w1)
    idx = torch.tensor([[0, 3, 3, 3], [0, 4, 3, 3]], dtype=torch.int32)
    feats = torch.stack((torch.full((16,), 1.0), torch.full((16,), 5.0)))
    out = layer(spconv.SparseConvTensor(feats, idx, list(SHAPE), 1)).features
    assert torch.equal(out[0], torch.full((16,), 5.0))  # site x=3 takes x=4's features
    assert torch.equal(out[1], torch.zeros(16))  # x=5 is empty


def test_submanifold_3x3x3_matches_dense_conv(model):
    layer = model.unet.u.blocks.block0.conv_branch[2]  # SubMConv3d 32 -> 32, k=3
    w1 = torch.randn(3, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    set_weight(layer, w1)
    idx, feats, dense = random_sparse(32)
    out = layer(spconv.SparseConvTensor(feats, idx, list(SHAPE), 2))
    ref = F.conv3d(dense, w1.permute(4, 3, 0, 1, 2), padding=1)  # zeros at inactive sites, read at active ones
    assert torch.equal(out.indices, idx)
    torch.testing.assert_close(out.features, at(ref, idx), rtol=1e-4, atol=1e-4)


def test_input_conv_6_to_16_matches_dense_conv(model):
    layer = model.input_conv[0]
    w1 = torch.randn(3, 3, 3, 6, 16, generator=torch.Generator().manual_seed(2))
    set_weight(layer, w1)
    idx, feats, dense = random_sparse(6, seed=3)
    out = layer(spconv.SparseConvTensor(feats, idx, list(SHAPE), 2))
    ref = F.conv3d(dense, w1.permute(4, 3, 0, 1, 2), padding=1)
    torch.testing.assert_close(out.features, at(ref, idx), rtol=1e-4, atol=1e-4)


def test_submanifold_1x1x1_matches_dense_conv_and_needs_reshape_not_permute(model):
    layer = model.unet.blocks_tail.block0.i_branch[0]  # SubMConv3d 32 -> 16, k=1
    assert tuple(layer.weight.shape) == (16, 1, 1, 1, 32)
    w1 = torch.randn(1, 1, 1, 32, 16, generator=torch.Generator().manual_seed(4))
    idx, feats, dense = random_sparse(32, seed=5)
    ref = at(F.conv3d(dense, w1.permute(4, 3, 0, 1, 2)), idx)
    set_weight(layer, w1)
    out = layer(spconv.SparseConvTensor(feats, idx, list(SHAPE), 2))
    torch.testing.assert_close(out.features, ref, rtol=1e-4, atol=1e-4)
    # The permute used for the other kernels would be wrong here (spconv 2 reads 1x1 weights as (Cin, Cout)).
    with torch.no_grad():
        layer.weight.copy_(w1.permute(4, 0, 1, 2, 3).contiguous())
    wrong = layer(spconv.SparseConvTensor(feats, idx, list(SHAPE), 2)).features
    assert not torch.allclose(wrong, ref, atol=1e-2)


def test_strided_2x2x2_and_inverse_match_dense_conv_and_transpose(model):
    down = model.unet.conv[2]  # SparseConv3d 16 -> 32, k=2, s=2, indice_key spconv1
    up = model.unet.deconv[2]  # SparseInverseConv3d 32 -> 16, k=2, indice_key spconv1
    g = torch.Generator().manual_seed(6)
    w_down = torch.randn(2, 2, 2, 16, 32, generator=g)
    w_up = torch.randn(2, 2, 2, 32, 16, generator=g)
    set_weight(down, w_down)
    set_weight(up, w_up)
    idx, feats, dense = random_sparse(16, seed=7)
    coarse = down(spconv.SparseConvTensor(feats, idx, list(SHAPE), 2))

    # Output sites: exactly the coarse cells with an active input in their 2x2x2 window.
    occupied = F.max_pool3d((dense.abs().sum(1, keepdim=True) > 0).float(), 2, 2)[:, 0]
    expected_sites = occupied.nonzero().int()
    got = coarse.indices[torch.argsort(
        ((coarse.indices[:, 0] * 4 + coarse.indices[:, 1]) * 3 + coarse.indices[:, 2]) * 5 + coarse.indices[:, 3])]
    assert torch.equal(got, expected_sites)
    ref_down = F.conv3d(dense, w_down.permute(4, 3, 0, 1, 2), stride=2)
    torch.testing.assert_close(coarse.features, at(ref_down, coarse.indices), rtol=1e-4, atol=1e-4)

    # Inverse conv: fresh random coarse features, back onto the fine input sites.
    coarse_feats = torch.randn(coarse.features.shape[0], 32, generator=g)
    coarse = coarse.replace_feature(coarse_feats)
    fine = up(coarse)
    assert torch.equal(fine.indices, idx)
    coarse_dense = torch.zeros(2, 32, SHAPE[0] // 2, SHAPE[1] // 2, SHAPE[2] // 2)
    ci = coarse.indices.long()
    coarse_dense[ci[:, 0], :, ci[:, 1], ci[:, 2], ci[:, 3]] = coarse_feats
    ref_up = F.conv_transpose3d(coarse_dense, w_up.permute(3, 4, 0, 1, 2), stride=2)
    torch.testing.assert_close(fine.features, at(ref_up, idx), rtol=1e-4, atol=1e-4)
