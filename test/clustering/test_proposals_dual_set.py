"""dual_set_proposals: P clusters first, then Q clusters; thing classes only; scenes kept apart."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pointgroup_ros.clustering import cluster_points, dual_set_proposals, scene_labels


def scene(seed: int = 0, n: int = 3000):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * 2
    semantic = torch.randint(0, 5, (n,), generator=g)
    centres = torch.rand(4, 3, generator=g) * 2
    offsets = (centres[torch.randint(0, 4, (n,), generator=g)] - xyz) * 0.95
    return xyz, offsets, semantic


def clusters_as_lists(cid: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(cid == c).tolist() for c in range(cid.max() + 1)]


@pytest.mark.parametrize("seed", range(3))
def test_p_then_q_members_sorted(seed):
    xyz, offsets, semantic = scene(seed)
    stuff = (0,)
    props, from_q = dual_set_proposals(xyz, offsets, semantic, stuff, 0.08, 10, return_set=True)
    members = [props.point_idx[a:b].tolist() for a, b in zip(props.offsets[:-1], props.offsets[1:])]
    ignore = (0,)
    want_p = clusters_as_lists(cluster_points(xyz.numpy(), semantic.numpy(), 0.08, 10, ignore))
    want_q = clusters_as_lists(cluster_points((xyz + offsets).numpy(), semantic.numpy(), 0.08, 10, ignore))
    assert members == want_p + want_q
    assert from_q.tolist() == [False] * len(want_p) + [True] * len(want_q)
    assert all(m == sorted(m) for m in members)
    assert not torch.isin(semantic[props.point_idx], torch.tensor(stuff)).any()
    only_p = dual_set_proposals(xyz, None, semantic, stuff, 0.08, 10, sets="p")
    only_q, q_flags = dual_set_proposals(xyz, offsets, semantic, stuff, 0.08, 10, sets="q", return_set=True)
    assert only_p.num_proposals == len(want_p) and only_q.num_proposals == len(want_q) and q_flags.all()
    assert torch.equal(only_q.point_idx, props.point_idx[props.offsets[len(want_p)]:])


def test_shifted_radius_applies_to_q_only():
    xyz, offsets, semantic = scene(4)
    props, from_q = dual_set_proposals(xyz, offsets, semantic, (0,), 0.08, 10, return_set=True, shifted_radius=0.02)
    members = [props.point_idx[a:b].tolist() for a, b in zip(props.offsets[:-1], props.offsets[1:])]
    want_p = clusters_as_lists(cluster_points(xyz.numpy(), semantic.numpy(), 0.08, 10, (0,)))
    want_q = clusters_as_lists(cluster_points((xyz + offsets).numpy(), semantic.numpy(), 0.02, 10, (0,)))
    assert members == want_p + want_q and from_q.sum() == len(want_q)
    # a different radius changes Q here (the check above is not vacuous), and 0 / None mean `radius`
    assert want_q != clusters_as_lists(cluster_points((xyz + offsets).numpy(), semantic.numpy(), 0.08, 10, (0,)))
    same = dual_set_proposals(xyz, offsets, semantic, (0,), 0.08, 10)
    zero = dual_set_proposals(xyz, offsets, semantic, (0,), 0.08, 10, shifted_radius=0.0)
    assert torch.equal(same.point_idx, zero.point_idx) and torch.equal(same.offsets, zero.offsets)
    only_q = dual_set_proposals(xyz, offsets, semantic, (0,), 0.08, 10, sets="q", shifted_radius=0.02)
    assert only_q.num_proposals == len(want_q)


def test_batch_scenes_never_join():
    xyz, offsets, semantic = scene(1, 1000)
    both = torch.cat([xyz, xyz])  # the same scene twice at the same place
    batch = torch.cat([torch.zeros(1000, dtype=torch.int64), torch.ones(1000, dtype=torch.int64)])
    props = dual_set_proposals(both, torch.cat([offsets, offsets]), torch.cat([semantic, semantic]), (0,), 0.08, 10,
                               batch_idx=batch, num_classes=5)
    single = dual_set_proposals(xyz, offsets, semantic, (0,), 0.08, 10)
    assert props.num_proposals == 2 * single.num_proposals
    for a, b in zip(props.offsets[:-1], props.offsets[1:]):
        assert batch[props.point_idx[a:b]].unique().numel() == 1
    assert scene_labels(torch.tensor([1, 2]), torch.tensor([0, 3]), 5).tolist() == [1, 17]


def test_empty_and_errors():
    xyz = torch.zeros(0, 3)
    props = dual_set_proposals(xyz, xyz, torch.zeros(0, dtype=torch.int64), (0, 1), 0.03, 50)
    assert props.num_proposals == 0 and props.point_idx.numel() == 0
    with pytest.raises(ValueError, match="sets"):
        dual_set_proposals(xyz, xyz, torch.zeros(0, dtype=torch.int64), (), 0.03, 50, sets="x")
    with pytest.raises(ValueError, match="offsets"):
        dual_set_proposals(torch.zeros(3, 3), None, torch.zeros(3, dtype=torch.int64), (), 0.03, 50)


def test_joint_labels_give_the_same_clusters():
    """The single-call form the GPU uses (P and Q appended, labels 2c and 2c + 1) equals the per-set form."""
    xyz, offsets, semantic = scene(4)
    label = torch.where(semantic == 0, -1, semantic)
    joint = cluster_points(torch.cat([xyz, xyz + offsets]), torch.cat([label * 2, label * 2 + 1]), 0.08, 10, (-2, -1))
    props = dual_set_proposals(xyz, offsets, semantic, (0,), 0.08, 10)
    members = torch.nonzero(joint >= 0).squeeze(1)
    members = members[torch.argsort(joint[members], stable=True)]
    assert torch.equal(members % len(xyz), props.point_idx)
    assert torch.equal(torch.bincount(joint[joint >= 0]), props.sizes)
