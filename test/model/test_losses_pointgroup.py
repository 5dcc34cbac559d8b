"""Loss terms on small cases whose expected values were worked out by hand (arithmetic in the comments)."""
from __future__ import annotations

import math

import pytest
import torch

from pointgroup_ros.model.losses import (instance_centroids, offset_losses, pointgroup_loss, proposal_ious,
                                         score_loss, semantic_loss, soft_score_labels)
from pointgroup_ros.types import Proposals


def semantic_case():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]])
    labels = torch.tensor([0, 0, -100])
    return logits, labels


def test_semantic_cross_entropy():
    logits, labels = semantic_case()
    # p0: softmax (1/2, 1/2) -> -ln(1/2) = 0.693147; p1: softmax (3/4, 1/4) -> -ln(3/4) = 0.287682; p2 ignored
    # mean over the 2 labelled points = (0.693147 + 0.287682) / 2 = 0.490415
    assert semantic_loss(logits, labels).item() == pytest.approx(0.490415, abs=1e-6)


def offset_case():
    xyz = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    instance = torch.tensor([7, 7, 3, -100])
    pred = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, -0.5], [9.0, 9.0, 9.0]])
    return xyz, instance, pred


def test_instance_centroids():
    xyz, instance, _ = offset_case()
    centroid, valid = instance_centroids(xyz, instance)
    # instance 7: mean of (0,0,0), (2,0,0) = (1,0,0); instance 3: its single point (0,1,0); invalid -> 0
    assert centroid.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert valid.tolist() == [True, True, True, False]
    # id 0 is a valid instance id like any other
    c0, _ = instance_centroids(torch.tensor([[1.0, 1.0, 1.0], [3.0, 1.0, 1.0], [9.0, 9.0, 9.0]]),
                               torch.tensor([0, 0, -100]))
    assert c0[0].tolist() == [2.0, 1.0, 1.0] and c0[2].tolist() == [0.0, 0.0, 0.0]


def test_offset_l1_and_direction():
    xyz, instance, pred = offset_case()
    l1, direction = offset_losses(pred, xyz, instance)
    # targets (centroid - xyz): p0 (1,0,0), p1 (-1,0,0), p2 (0,0,0); p3 ignored
    # L1: p0 |1-1|+|1-0|+0 = 1; p1 |0+1| = 1; p2 |0.5|+|-0.5| = 1 -> 3 / (3 + 1e-6) = 0.999999667
    assert l1.item() == pytest.approx(3.0 / (3.0 + 1e-6), abs=1e-7)
    # direction: p0 cos((1,1,0), (1,0,0)) = 1/sqrt(2) = 0.707107; p1 pred is zero -> 0; p2 target is zero -> 0
    # -> -(0.707107) / (3 + 1e-6) = -0.235702
    assert direction.item() == pytest.approx(-(1 / math.sqrt(2)) / 3.0, abs=1e-6)


def score_case():
    instance = torch.tensor([5, 5, 5, 5, 8, 8, -100, -100, -100, -100])
    props = Proposals(torch.tensor([0, 1, 2, 3, 0, 1, 4, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 0, 1, 2, 4, 5]),
                      torch.tensor([0, 4, 7, 11, 17, 22]))
    return instance, props


def test_proposal_ious():
    instance, props = score_case()
    # |inst 5| = 4, |inst 8| = 2; IoU = inter / (|p| + |g| - inter + 1e-5)
    # P0 {0,1,2,3}: inst 5 inter 4 -> 4 / 4.00001
    # P1 {0,1,4}: inst 5 inter 2 -> 2 / (3+4-2) = 0.4; inst 8 inter 1 -> 1 / 4 = 0.25; best 0.4
    # P2 {6,7,8,9}: no instance -> 0
    # P3 {2,3,4,5,6,7}: inst 5 -> 2 / (6+4-2) = 0.25; inst 8 -> 2 / (6+2-2) = 1/3; best 1/3
    # P4 {0,1,2,4,5}: inst 5 -> 3 / (5+4-3) = 0.5; inst 8 -> 2 / 5 = 0.4; best 0.5
    expected = torch.tensor([4 / 4.00001, 2 / 5.00001, 0.0, 2 / 6.00001, 3 / 6.00001])
    torch.testing.assert_close(proposal_ious(props, instance), expected, rtol=0, atol=1e-7)
    assert proposal_ious(Proposals.empty(), instance).shape == (0,)


def test_soft_score_labels():
    iou = torch.tensor([0.1, 0.25, 0.4, 0.5, 0.75, 0.9])
    # 0 below 0.25, 1 above 0.75, else 2 * iou - 0.5: 0.4 -> 0.3, 0.5 -> 0.5
    torch.testing.assert_close(soft_score_labels(iou), torch.tensor([0.0, 0.0, 0.3, 0.5, 1.0, 1.0]))
    # general thresholds: (iou - bg) / (fg - bg) = (0.5 - 0.2) / 0.4 = 0.75
    assert soft_score_labels(torch.tensor([0.5]), bg=0.2, fg=0.6).item() == pytest.approx(0.75)


def expected_score_loss() -> float:
    # labels from the IoUs above: P0 1, P1 (0.4 - 0.25) / 0.5 = 0.3, P2 0, P3 (1/3 - 0.25) / 0.5 = 1/6, P4 0.5
    # logits 0, ln 3, 0, -ln 3, 2 -> sigmoid 0.5, 0.75, 0.5, 0.25, 0.880797
    # BCE = -(y ln p + (1 - y) ln(1 - p)):
    #   P0: -ln 0.5 = 0.693147
    #   P1: -(0.3 ln 0.75 + 0.7 ln 0.25) = 0.3 * 0.287682 + 0.7 * 1.386294 = 1.056711
    #   P2: -ln 0.5 = 0.693147
    #   P3: -(1/6 ln 0.25 + 5/6 ln 0.75) = 1.386294 / 6 + 5 * 0.287682 / 6 = 0.470784
    #   P4: -(0.5 ln 0.880797 + 0.5 ln 0.119203) = 0.5 * (0.126928 + 2.126928) = 1.126928
    # mean = 4.040717 / 5 = 0.808143
    return 0.808143


def test_score_bce_with_soft_labels():
    instance, props = score_case()
    logits = torch.tensor([0.0, math.log(3.0), 0.0, -math.log(3.0), 2.0])
    assert score_loss(logits, props, instance).item() == pytest.approx(expected_score_loss(), abs=2e-5)
    empty = score_loss(torch.zeros(0, requires_grad=True), Proposals.empty(), instance)
    assert empty.item() == 0.0 and empty.requires_grad


def test_combined_loss_and_weights():
    logits, labels = semantic_case()
    xyz, instance, pred = offset_case()
    labels4 = torch.cat((labels, torch.tensor([1])))
    logits4 = torch.cat((logits, torch.tensor([[0.0, 0.0]])))
    # semantic over 3 labelled points: (0.693147 + 0.287682 + 0.693147) / 3 = 0.557992
    parts = pointgroup_loss(logits4, pred, xyz, labels4, instance)
    assert set(parts) == {"semantic", "offset_l1", "offset_dir", "total"}
    assert parts["semantic"].item() == pytest.approx(0.557992, abs=1e-6)
    total = 0.557992 + 3.0 / (3.0 + 1e-6) - (1 / math.sqrt(2)) / 3.0  # = 1.322289
    assert parts["total"].item() == pytest.approx(total, abs=1e-5)

    s_instance, props = score_case()
    s_xyz = torch.cat((xyz, torch.zeros(6, 3)))
    s_pred = torch.cat((pred, torch.zeros(6, 3)))
    s_logits = torch.cat((logits4, torch.zeros(6, 2)))
    s_labels = torch.cat((labels4, torch.full((6,), -100)))
    scores = torch.tensor([0.0, math.log(3.0), 0.0, -math.log(3.0), 2.0])
    parts = pointgroup_loss(s_logits, s_pred, s_xyz, s_labels, s_instance, scores, props, weights=(1, 2, 3, 4))
    assert set(parts) == {"semantic", "offset_l1", "offset_dir", "score", "total"}
    weighted = parts["semantic"] + 2 * parts["offset_l1"] + 3 * parts["offset_dir"] + 4 * parts["score"]
    assert parts["total"].item() == pytest.approx(weighted.item(), abs=1e-6)
    assert parts["score"].item() == pytest.approx(expected_score_loss(), abs=2e-5)
