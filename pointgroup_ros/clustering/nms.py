"""Mask IoU between proposals from sparse intersection counts, and the authors' test-time filtering + NMS.

Torch only, so the same code runs on CPU and CUDA tensors with the same result (integer counts, float64
IoU, a stable sort). No proposals x points matrix is ever built: intersections are counted from the
(point, proposal) entries that share a point.
"""
from __future__ import annotations

import numpy as np
import torch

from ..types import Proposals


def select_proposals(proposals: Proposals, index: torch.Tensor) -> Proposals:
    """The proposals at `index` (int64 (K,), any order), as a new Proposals in that order."""
    sizes = proposals.sizes[index]
    starts = torch.zeros(index.numel() + 1, dtype=torch.int64, device=proposals.offsets.device)
    torch.cumsum(sizes, 0, out=starts[1:])
    pos = torch.repeat_interleave(proposals.offsets[index] - starts[:-1], sizes)
    pos += torch.arange(pos.numel(), device=pos.device)
    return Proposals(proposals.point_idx[pos], starts)


def intersection_counts(proposals: Proposals) -> torch.Tensor:
    """int64 (M, M): number of points shared by proposals i and j (diagonal: their sizes)."""
    m = proposals.num_proposals
    device = proposals.offsets.device
    pid = proposals.proposal_id
    order = torch.argsort(proposals.point_idx, stable=True)
    point, pid = proposals.point_idx[order], pid[order]
    k = point.numel()
    # Entries of one point form a run; each entry pairs with the later entries of its run.
    new = torch.ones(k, dtype=torch.bool, device=device)
    new[1:] = point[1:] != point[:-1]
    run = torch.cumsum(new, 0) - 1
    run_end = torch.cumsum(torch.bincount(run), 0)[run]
    partners = run_end - torch.arange(k, device=device) - 1
    first = torch.repeat_interleave(torch.arange(k, device=device), partners)
    second = first + 1 + torch.arange(first.numel(), device=device) - torch.repeat_interleave(
        torch.cumsum(partners, 0) - partners, partners)
    a, b = pid[first], pid[second]
    counts = torch.bincount(torch.minimum(a, b) * m + torch.maximum(a, b), minlength=m * m).view(m, m)
    counts = counts + counts.T
    counts.diagonal().copy_(proposals.sizes)
    return counts


def proposal_iou(proposals: Proposals) -> torch.Tensor:
    """float64 (M, M) mask IoU = |i & j| / (|i| + |j| - |i & j|), on the proposals' device (0 for empty pairs)."""
    inter = intersection_counts(proposals).to(torch.float64)
    sizes = proposals.sizes.to(torch.float64)
    union = sizes[:, None] + sizes[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def nms(proposals: Proposals, scores: torch.Tensor, iou_threshold: float = 0.3, score_threshold: float = 0.09,
        min_points: int = 100) -> torch.Tensor:
    """Indices (int64 (K,), on the scores' device) of the proposals kept, by descending score.

    In the authors' order (their test.py): keep score > score_threshold, then keep more than min_points
    points, then class-agnostic greedy NMS over what is left: take the highest score (ties: lower index
    first), drop every remaining proposal whose IoU with it is > iou_threshold, repeat.
    The M x M IoU of the candidates is computed on the device; the greedy pass reads its thresholded copy
    (M x M bools, M is small after the filters) on the host.
    scores: float (M,), e.g. sigmoid of ScoreNet's output.
    """
    m = proposals.num_proposals
    if scores.shape != (m,):
        raise ValueError(f"nms: scores must have shape ({m},) like the proposals, got {tuple(scores.shape)}")
    if scores.device != proposals.offsets.device:
        raise ValueError(f"nms: scores on {scores.device}, proposals on {proposals.offsets.device}")
    candidates = torch.nonzero((scores > score_threshold) & (proposals.sizes > min_points)).squeeze(1)
    if candidates.numel() == 0:
        return candidates
    over = (proposal_iou(select_proposals(proposals, candidates)) > iou_threshold).cpu().numpy()
    order = torch.argsort(scores[candidates], descending=True, stable=True).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in order:
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return candidates[torch.as_tensor(keep, dtype=torch.int64, device=candidates.device)]
