"""PointGroup training losses, as in the authors' train.py (paper Section 3.5 gives the same terms).

- semantic: cross entropy over points, ignore_label skipped, mean;
- offset L1 ("L_reg"): sum over valid points of |pred - target|_1 over xyz, divided by (n_valid + 1e-6);
- direction ("L_dir"): sum over valid points of -cos(pred, target), each vector divided by (norm + 1e-8),
  divided by (n_valid + 1e-6); target = instance centroid - xyz; valid = instance label != ignore_label;
- score: BCE between sigmoid(score logit) and a soft label of each proposal's best IoU with a ground-truth
  instance: 0 below bg, 1 above fg, (iou - bg) / (fg - bg) between (2 iou - 0.5 for 0.25 / 0.75), mean.
  IoU = inter / (|proposal| + |instance| - inter + 1e-5), |proposal| counting all of its points.
- total = w0 sem + w1 reg + w2 dir (+ w3 score once ScoreNet is trained, after prepare_epochs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..types import Proposals

IGNORE_LABEL = -100


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_label: int = IGNORE_LABEL) -> torch.Tensor:
    """logits float (N, C), labels int64 (N,) -> scalar mean cross entropy over labelled points."""
    return F.cross_entropy(logits, labels.long(), ignore_index=ignore_label)


def instance_centroids(xyz: torch.Tensor, instance: torch.Tensor,
                       ignore_label: int = IGNORE_LABEL) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point centroid of the point's instance.

    xyz float (N, 3), instance int64 (N,) (ids unique over the batch, ignore_label = none).
    Returns (centroid float (N, 3), valid bool (N,)); centroid is 0 where not valid.
    """
    valid = instance != ignore_label
    ids = torch.where(valid, instance.long(), torch.zeros_like(instance, dtype=torch.long))
    uniq, inv = torch.unique(ids, return_inverse=True)
    w = valid.to(xyz.dtype).unsqueeze(1)
    sums = xyz.new_zeros(uniq.shape[0], 3).index_add(0, inv, xyz * w)
    counts = xyz.new_zeros(uniq.shape[0]).index_add(0, inv, w.squeeze(1))
    centroid = sums / counts.clamp(min=1).unsqueeze(1)
    return centroid[inv] * w, valid


def offset_losses(offsets: torch.Tensor, xyz: torch.Tensor, instance: torch.Tensor,
                  ignore_label: int = IGNORE_LABEL) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 offset loss, direction loss), both scalars; offsets and xyz float (N, 3) metres."""
    centroid, valid = instance_centroids(xyz, instance, ignore_label)
    target = centroid - xyz
    w = valid.to(offsets.dtype)
    n_valid = w.sum() + 1e-6
    l1 = ((offsets - target).abs().sum(dim=1) * w).sum() / n_valid
    t_dir = target / (target.norm(dim=1, keepdim=True) + 1e-8)
    p_dir = offsets / (offsets.norm(dim=1, keepdim=True) + 1e-8)
    direction = (-(t_dir * p_dir).sum(dim=1) * w).sum() / n_valid
    return l1, direction


def proposal_ious(proposals: Proposals, instance: torch.Tensor, ignore_label: int = IGNORE_LABEL) -> torch.Tensor:
    """float (M,): each proposal's best IoU with any ground-truth instance (0 if it touches none).

    Built from sparse intersection counts (one bincount over (proposal, instance) pairs of member points),
    never a dense proposals x points matrix.
    """
    m = proposals.num_proposals
    device = instance.device
    if m == 0:
        return torch.zeros(0, device=device)
    valid = instance != ignore_label
    uniq, inv = torch.unique(torch.where(valid, instance.long(), torch.full_like(instance, -1, dtype=torch.long)),
                             return_inverse=True)
    g = uniq.shape[0]
    inst_size = torch.bincount(inv[valid], minlength=g)
    member_inst = inv[proposals.point_idx.long()]
    member_valid = valid[proposals.point_idx.long()]
    pair = proposals.proposal_id[member_valid] * g + member_inst[member_valid]
    inter = torch.bincount(pair, minlength=m * g).view(m, g).to(torch.float32)
    union = proposals.sizes.to(torch.float32).unsqueeze(1) + inst_size.to(torch.float32).unsqueeze(0) - inter
    # The slot of the -1 id ("no instance") has inter = 0, so its IoU is 0 and never wins.
    return (inter / (union + 1e-5)).max(dim=1).values


def soft_score_labels(iou: torch.Tensor, bg: float = 0.25, fg: float = 0.75) -> torch.Tensor:
    """0 where iou < bg, 1 where iou > fg, linear (iou - bg) / (fg - bg) in between."""
    return ((iou - bg) / (fg - bg)).clamp(0.0, 1.0)


def score_loss(score_logits: torch.Tensor, proposals: Proposals, instance: torch.Tensor, bg: float = 0.25,
               fg: float = 0.75, ignore_label: int = IGNORE_LABEL) -> torch.Tensor:
    """Mean BCE of sigmoid(score_logits) (M,) against the soft IoU labels; 0 (with a graph) when M = 0."""
    if proposals.num_proposals == 0:
        return score_logits.sum() * 0.0
    target = soft_score_labels(proposal_ious(proposals, instance, ignore_label), bg, fg).to(score_logits.dtype)
    # BCE on sigmoid as the authors; the logits form is the same function, numerically safer.
    return F.binary_cross_entropy_with_logits(score_logits, target)


def pointgroup_loss(semantic_logits: torch.Tensor, offsets: torch.Tensor, xyz: torch.Tensor,
                    semantic_labels: torch.Tensor, instance_labels: torch.Tensor,
                    score_logits: torch.Tensor | None = None, proposals: Proposals | None = None,
                    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                    bg: float = 0.25, fg: float = 0.75,
                    ignore_label: int = IGNORE_LABEL) -> dict[str, torch.Tensor]:
    """All loss terms and their weighted sum.

    Returns {'semantic', 'offset_l1', 'offset_dir', 'score' (only when score_logits and proposals are
    given), 'total'}; total = w0 semantic + w1 offset_l1 + w2 offset_dir (+ w3 score).
    """
    parts: dict[str, torch.Tensor] = {"semantic": semantic_loss(semantic_logits, semantic_labels, ignore_label)}
    parts["offset_l1"], parts["offset_dir"] = offset_losses(offsets, xyz, instance_labels, ignore_label)
    total = weights[0] * parts["semantic"] + weights[1] * parts["offset_l1"] + weights[2] * parts["offset_dir"]
    if score_logits is not None and proposals is not None:
        parts["score"] = score_loss(score_logits, proposals, instance_labels, bg, fg, ignore_label)
        total = total + weights[3] * parts["score"]
    parts["total"] = total
    return parts
