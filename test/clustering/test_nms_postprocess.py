"""proposal_iou from sparse counts and the authors' filtering + greedy NMS (hand cases, dense twins)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pointgroup_ros.clustering import intersection_counts, nms, proposal_iou, select_proposals
from pointgroup_ros.types import Proposals


def make(members: list[list[int]]) -> Proposals:
    sizes = torch.tensor([len(m) for m in members], dtype=torch.int64)
    offsets = torch.zeros(len(members) + 1, dtype=torch.int64)
    torch.cumsum(sizes, 0, out=offsets[1:])
    flat = [p for m in members for p in sorted(m)]
    return Proposals(torch.tensor(flat, dtype=torch.int64), offsets)


def dense_masks(proposals: Proposals, n: int) -> np.ndarray:
    masks = np.zeros((proposals.num_proposals, n), dtype=np.int64)
    masks[proposals.proposal_id.numpy(), proposals.point_idx.numpy()] = 1
    return masks


def authors_nms(masks: np.ndarray, scores: np.ndarray, iou_threshold, score_threshold, min_points) -> list[int]:
    """The authors' test.py post-processing on dense masks (score, then size filter, then greedy NMS)."""
    keep = np.flatnonzero((scores > score_threshold) & (masks.sum(1) > min_points))
    m = masks[keep].astype(np.float64)
    inter = m @ m.T
    n = m.sum(1)
    ious = inter / (n[:, None] + n[None, :] - inter)
    order = list(np.argsort(-scores[keep], kind="stable"))
    pick = []
    while order:
        i = order.pop(0)
        pick.append(i)
        order = [j for j in order if not ious[i, j] > iou_threshold]
    return keep[pick].tolist()


def random_proposals(seed: int, n: int = 400) -> Proposals:
    rng = np.random.default_rng(seed)
    members = []
    for _ in range(int(rng.integers(1, 40))):
        centre, size = rng.integers(0, n), rng.integers(1, 150)
        members.append(sorted(set(((centre + rng.integers(-size, size + 1, size)) % n).tolist())))
    return make(members)


def test_hand_case_iou_and_counts():
    p = make([[0, 1, 2, 3], [2, 3, 4, 5], [10, 11], [0, 1, 2, 3]])
    counts = intersection_counts(p)
    assert counts.tolist() == [[4, 2, 0, 4], [2, 4, 0, 2], [0, 0, 2, 0], [4, 2, 0, 4]]
    iou = proposal_iou(p)
    assert iou.dtype == torch.float64
    assert torch.allclose(iou[0, 1], torch.tensor(2 / 6, dtype=torch.float64)) and iou[0, 3] == 1 and iou[0, 2] == 0


def test_hand_case_nms():
    p = make([list(range(0, 200)), list(range(50, 250)), list(range(300, 500)), list(range(0, 90)),
              list(range(600, 800))])
    scores = torch.tensor([0.8, 0.9, 0.5, 0.95, 0.05])
    # 3 has 90 points (<= 100) and 4 scores 0.05 (<= 0.09): filtered before NMS; 1 beats 0 (IoU 150/250 > 0.3)
    assert nms(p, scores).tolist() == [1, 2]
    assert nms(p, scores, iou_threshold=0.7).tolist() == [1, 0, 2]
    assert nms(p, scores, min_points=0, score_threshold=0.0).tolist() == [3, 1, 2, 4]
    assert nms(p, torch.zeros(5)).tolist() == []


def test_ties_keep_the_lower_index():
    p = make([list(range(200)), list(range(200))])
    assert nms(p, torch.tensor([0.5, 0.5])).tolist() == [0]


@pytest.mark.parametrize("seed", range(20))
def test_iou_and_nms_match_dense_twins(seed):
    p = random_proposals(seed)
    masks = dense_masks(p, 400)
    inter = masks @ masks.T
    assert np.array_equal(intersection_counts(p).numpy(), inter)
    n = masks.sum(1)
    assert np.allclose(proposal_iou(p).numpy(), inter / (n[:, None] + n[None, :] - inter))
    scores = torch.from_numpy(np.random.default_rng(seed).random(p.num_proposals).astype(np.float32))
    for iou_t, score_t, min_points in ((0.3, 0.09, 100), (0.1, 0.5, 10), (0.6, 0.0, 0)):
        assert nms(p, scores, iou_t, score_t, min_points).tolist() == authors_nms(
            masks, scores.numpy(), iou_t, score_t, min_points)


def test_points_in_many_proposals():
    """The sparse counts are general: a point may sit in any number of proposals."""
    p = make([[0, 1, 2], [0, 1], [0, 2], [0], [5]])
    assert np.array_equal(intersection_counts(p).numpy(), dense_masks(p, 6) @ dense_masks(p, 6).T)


def test_select_and_empty():
    p = make([[1, 2], [3], [4, 5, 6]])
    s = select_proposals(p, torch.tensor([2, 0]))
    assert s.point_idx.tolist() == [4, 5, 6, 1, 2] and s.offsets.tolist() == [0, 3, 5]
    assert proposal_iou(Proposals.empty()).shape == (0, 0)
    assert nms(Proposals.empty(), torch.zeros(0)).tolist() == []
    with pytest.raises(ValueError, match="scores must have shape"):
        nms(p, torch.zeros(2))
