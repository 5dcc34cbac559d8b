"""The PointGroup network: parameter count, authors' key names, heads, ScoreNet, devices, gradients."""
from __future__ import annotations

import pytest
import torch
from spconv.core import ConvAlgo
from spconv.pytorch.conv import SparseConvolution

from pointgroup_ros.config import ModelConfig
from pointgroup_ros.model import BackboneOutput, PointGroup, count_parameters, pointgroup_loss, set_conv_algo
from pointgroup_ros.types import PointBatch, Proposals


@pytest.fixture(scope="module")
def scannet_model() -> PointGroup:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return PointGroup(ModelConfig(), num_classes=20)


def small_scene(n: int = 300, seed: int = 0, batch_size: int = 1) -> PointBatch:
    """Random points in a 2.6 x 2.6 x 1.5 m box (enough voxels at every one of the 7 U-Net levels)."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([2.6, 2.6, 1.5])
    rgb = torch.rand(n, 3, generator=g) * 2 - 1
    bidx = torch.arange(n) % batch_size
    return PointBatch(xyz, rgb, bidx, batch_size)


def test_parameter_count_is_the_authors(scannet_model):
    assert count_parameters(scannet_model) == 7_715_016


def test_state_dict_keys_are_the_authors(scannet_model):
    sd = scannet_model.state_dict()
    assert len(sd) == 499
    expected = {
        "input_conv.0.weight": (16, 3, 3, 3, 6),
        "unet.blocks.block0.conv_branch.0.weight": (16,),
        "unet.blocks.block0.conv_branch.2.weight": (16, 3, 3, 3, 16),
        "unet.blocks.block1.conv_branch.3.running_var": (16,),
        "unet.blocks.block1.conv_branch.5.weight": (16, 3, 3, 3, 16),
        "unet.conv.0.bias": (16,),
        "unet.conv.2.weight": (32, 2, 2, 2, 16),
        "unet.u.blocks.block0.conv_branch.2.weight": (32, 3, 3, 3, 32),
        "unet.u.u.u.u.u.u.blocks.block1.conv_branch.5.weight": (112, 3, 3, 3, 112),
        "unet.u.u.u.u.u.deconv.2.weight": (96, 2, 2, 2, 112),
        "unet.deconv.0.weight": (32,),
        "unet.deconv.2.weight": (16, 2, 2, 2, 32),
        "unet.blocks_tail.block0.i_branch.0.weight": (16, 1, 1, 1, 32),
        "unet.blocks_tail.block0.conv_branch.2.weight": (16, 3, 3, 3, 32),
        "unet.blocks_tail.block1.conv_branch.5.weight": (16, 3, 3, 3, 16),
        "output_layer.0.weight": (16,),
        "output_layer.0.num_batches_tracked": (),
        "linear.weight": (20, 16),
        "linear.bias": (20,),
        "offset.0.weight": (16, 16),
        "offset.0.bias": (16,),
        "offset.1.running_mean": (16,),
        "offset_linear.weight": (3, 16),
        "offset_linear.bias": (3,),
        "score_unet.blocks.block0.conv_branch.2.weight": (16, 3, 3, 3, 16),
        "score_unet.conv.2.weight": (32, 2, 2, 2, 16),
        "score_unet.u.blocks.block1.conv_branch.5.weight": (32, 3, 3, 3, 32),
        "score_unet.deconv.2.weight": (16, 2, 2, 2, 32),
        "score_unet.blocks_tail.block0.i_branch.0.weight": (16, 1, 1, 1, 32),
        "score_outputlayer.0.weight": (16,),
        "score_linear.weight": (1, 16),
        "score_linear.bias": (1,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    # identity branches exist only where the width changes: 6 U-Net tails + 1 ScoreNet tail
    assert sum(k.endswith("i_branch.0.weight") for k in sd) == 7
    assert not any(k.startswith("unet.blocks.block0.i_branch") for k in sd)
    # no conv biases; 7 levels: unet, unet.u, ..., unet.u.u.u.u.u.u and nothing deeper
    assert not any(k.endswith(".bias") and sd[k.replace(".bias", ".weight")].ndim == 5 for k in sd)
    assert any(k.startswith("unet.u.u.u.u.u.u.") for k in sd)
    assert not any(k.startswith("unet.u.u.u.u.u.u.u.") for k in sd)


def test_batchnorm_settings(scannet_model):
    bns = [m for m in scannet_model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns and all(m.eps == 1e-4 and m.momentum == 0.1 for m in bns)


def test_indice_keys_follow_the_authors(scannet_model):
    assert scannet_model.input_conv[0].indice_key == "subm1"
    assert scannet_model.unet.u.u.blocks.block0.conv_branch[2].indice_key == "subm3"
    assert scannet_model.unet.u.u.conv[2].indice_key == "spconv3"
    assert scannet_model.unet.u.u.deconv[2].indice_key == "spconv3"
    assert scannet_model.score_unet.u.blocks.block1.conv_branch[5].indice_key == "subm2"


def test_forward_shapes_and_cpu_algo(scannet_model):
    scannet_model.eval()
    set_conv_algo(scannet_model, torch.device("cuda"))  # as if it had run on a GPU before (no GPU needed)
    scannet_model._algo_device = "cuda"
    batch = small_scene(250, batch_size=2)
    with torch.no_grad():
        out = scannet_model(batch)
    assert isinstance(out, BackboneOutput)
    assert out.semantic_logits.shape == (250, 20) and out.offsets.shape == (250, 3)
    assert out.point_features.shape == (250, 16)
    assert bool((out.point_features >= 0).all())  # after the output ReLU
    assert all(torch.isfinite(t).all() for t in (out.semantic_logits, out.offsets))
    convs = [m for m in scannet_model.modules() if isinstance(m, SparseConvolution)]
    # input 1 + U-Net (7 levels x 4 + 6 x (4 tail + 1x1 + down + up) = 70) + ScoreNet (2 x 4 + 4 + 3 = 15)
    assert len(convs) == 86 and all(m.algo == ConvAlgo.Native for m in convs)


def test_points_in_one_voxel_share_features(scannet_model):
    scannet_model.eval()
    batch = small_scene(200, seed=3)
    # duplicate point 0 with another colour inside the same 2 cm voxel
    batch = PointBatch(torch.cat((batch.xyz, batch.xyz[:1] + 0.001)), torch.cat((batch.rgb, -batch.rgb[:1])),
                       torch.zeros(201, dtype=torch.long), 1)
    voxels = scannet_model.voxelize(batch)
    if voxels.point_to_voxel[0] != voxels.point_to_voxel[200]:
        pytest.skip("random point sits on a voxel boundary")
    with torch.no_grad():
        out = scannet_model(batch)
    assert torch.equal(out.point_features[0], out.point_features[200])


def test_empty_batch_gives_empty_outputs(scannet_model):
    batch = PointBatch(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 1)
    out = scannet_model(batch)
    assert out.semantic_logits.shape == (0, 20) and out.offsets.shape == (0, 3)
    assert out.point_features.shape == (0, 16)


def test_score_proposals(scannet_model):
    scannet_model.eval()
    batch = small_scene(300, seed=1)
    with torch.no_grad():
        feats = scannet_model(batch).point_features
        empty = scannet_model.score_proposals(feats, batch.xyz, Proposals.empty())
        assert empty.shape == (0,)
        props = Proposals(torch.cat((torch.arange(0, 120), torch.arange(100, 300), torch.tensor([7]))),
                          torch.tensor([0, 120, 320, 321]))
        s1 = scannet_model.score_proposals(feats, batch.xyz, props)
        s2 = scannet_model.score_proposals(feats, batch.xyz, props)
        assert s1.shape == (3,) and torch.isfinite(s1).all()
        assert torch.equal(s1, s2)  # centred placement: deterministic
        # each proposal is scored on its own grid: scoring it alone gives the same logit (eval-mode BN)
        alone = scannet_model.score_proposals(feats, batch.xyz, Proposals(torch.arange(100, 300),
                                                                          torch.tensor([0, 200])))
        torch.testing.assert_close(alone[0], s1[1], rtol=1e-5, atol=1e-5)
        g = torch.Generator().manual_seed(0)
        r = scannet_model.score_proposals(feats, batch.xyz, props, random_shift=True, generator=g)
        assert r.shape == (3,) and torch.isfinite(r).all()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = PointGroup(ModelConfig(), num_classes=20).train()
    batch = small_scene(300, seed=2, batch_size=2)
    g = torch.Generator().manual_seed(5)
    semantic = torch.randint(0, 20, (300,), generator=g)
    semantic[:10] = -100
    instance = (batch.xyz[:, 0] > 1.3).long() + 2 * batch.batch_idx  # 4 instances, ids unique over the batch
    instance[semantic < 2] = -100
    out = model(batch)
    order = torch.argsort(instance * 1000 + torch.arange(300))
    props = Proposals(torch.sort(order[:90]).values, torch.tensor([0, 90]))
    props = Proposals(torch.cat((props.point_idx, torch.sort(order[60:200]).values, torch.arange(200, 260))),
                      torch.tensor([0, 90, 230, 290]))
    scores = model.score_proposals(out.point_features, batch.xyz, props, random_shift=True)
    losses = pointgroup_loss(out.semantic_logits, out.offsets, batch.xyz, semantic, instance, scores, props)
    losses["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not bool(p.grad.abs().sum() > 0)]
    assert not missing and not zero, (missing, zero)


def test_rgb_only_input():
    model = PointGroup(ModelConfig(input_channels=3, widths=(16, 32)), num_classes=13).eval()
    assert tuple(model.input_conv[0].weight.shape) == (16, 3, 3, 3, 3)
    with torch.no_grad():
        out = model(small_scene(100))
    assert out.semantic_logits.shape == (100, 13)


def test_torch_fx_notice_about_spconv_is_dropped_and_nothing_else() -> None:
    """torch logs "is_fx_tracing will return true ..." when spconv builds its first SparseConvTensor: not the
    user's business. The filter drops that record only; the same logger's other records still go out."""
    import logging

    import pointgroup_ros.model.network  # noqa: F401  (installs the filter)

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("torch.fx._symbolic_trace")
    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning("is_fx_tracing will return true for both fx.symbolic_trace and torch.export. Please use ...")
        logger.warning("a warning of torch.fx that matters")
    finally:
        logger.removeHandler(handler)
    assert seen == ["a warning of torch.fx that matters"]
