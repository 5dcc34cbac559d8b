"""Dual-set proposals (paper Section 3.3): clusters on the original coordinates P and on the shifted Q.

On the GPU both sets are grouped in one cluster_points call: Q's points are appended after P's with labels
kept apart (2 * label for P, 2 * label + 1 for Q), so no edge joins the sets and, since clusters are
numbered by their lowest point index, every P cluster comes before every Q cluster. On the CPU the two sets
are grouped one after the other (each picks its own strategy) and Q's cluster ids follow P's. With
max_neighbours > 0 (the authors' capped ball query, emulated on the CPU) the sets are always grouped one after
the other.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence, overload

import torch

from ..types import Proposals
from .api import cluster_points

SETS = ("p", "q", "both")


def scene_labels(semantic: torch.Tensor, batch_idx: torch.Tensor | None = None,
                 num_classes: int | None = None) -> torch.Tensor:
    """Labels that keep the scenes of a batch apart: batch_idx * num_classes + semantic (int64 (N,)).

    semantic: (N,) class indices in 0..num_classes-1; batch_idx: (N,) scene index or None (one scene).
    num_classes defaults to semantic.max() + 1 (one small device read).
    """
    semantic = semantic.to(torch.int64)
    if batch_idx is None:
        return semantic
    if num_classes is None:
        num_classes = int(semantic.max()) + 1 if semantic.numel() else 1
    return batch_idx.to(torch.int64) * num_classes + semantic


@overload
def dual_set_proposals(xyz: torch.Tensor, offsets: torch.Tensor | None, semantic_pred: torch.Tensor,
                       stuff_classes: Sequence[int], radius: float, min_points: int, sets: str = ...,
                       batch_idx: torch.Tensor | None = ..., num_classes: int | None = ...,
                       return_set: Literal[False] = ..., shifted_radius: float | None = ...,
                       max_neighbours: int = ...) -> Proposals: ...


@overload
def dual_set_proposals(xyz: torch.Tensor, offsets: torch.Tensor | None, semantic_pred: torch.Tensor,
                       stuff_classes: Sequence[int], radius: float, min_points: int, sets: str = ...,
                       batch_idx: torch.Tensor | None = ..., num_classes: int | None = ...,
                       *, return_set: Literal[True], shifted_radius: float | None = ...,
                       max_neighbours: int = ...) -> tuple[Proposals, torch.Tensor]: ...


def dual_set_proposals(xyz: torch.Tensor, offsets: torch.Tensor | None, semantic_pred: torch.Tensor,
                       stuff_classes: Sequence[int], radius: float, min_points: int, sets: str = "both",
                       batch_idx: torch.Tensor | None = None, num_classes: int | None = None,
                       return_set: bool = False, shifted_radius: float | None = None, max_neighbours: int = 0
                       ) -> Proposals | tuple[Proposals, torch.Tensor]:
    """Group thing-class points on P = xyz and on Q = xyz + offsets; proposals = P clusters, then Q clusters.

    xyz: float (N, 3) metres; offsets: float (N, 3) predicted offsets (may be None when sets == 'p');
    semantic_pred: int (N,) predicted classes; points of stuff_classes are not grouped.
    radius (metres), min_points (a cluster is kept with >= min_points points) and sets ('p', 'q' or 'both')
    can change on every call; shifted_radius is the radius on Q (None or 0: `radius`). batch_idx: int (N,)
    scene of each point for a batch of several scenes (scenes are never joined); num_classes as for
    scene_labels.
    max_neighbours: 0 = exact grouping; K > 0 emulates the authors' ball query, which lists at most K neighbours
    per point (cluster_points; on the CPU, also for CUDA inputs), each set grouped separately, a point's list
    holding points of its own scene only.
    Returns Proposals on the device of xyz (point_idx indexes xyz; each proposal's points in increasing
    index order), and with return_set=True also a bool (M,) tensor that is True for proposals from Q.
    """
    if sets not in SETS:
        raise ValueError(f"dual_set_proposals: sets must be one of {SETS}, got {sets!r}")
    if xyz.dim() != 2 or xyz.shape[1] != 3:
        raise ValueError(f"dual_set_proposals: xyz must have shape (N, 3), got {tuple(xyz.shape)}")
    n = xyz.shape[0]
    if semantic_pred.shape != (n,):
        raise ValueError(f"dual_set_proposals: semantic_pred must have shape ({n},), got {tuple(semantic_pred.shape)}")
    if sets != "p":
        if offsets is None or offsets.shape != xyz.shape:
            raise ValueError(f"dual_set_proposals: offsets must have shape {tuple(xyz.shape)} for sets={sets!r}, "
                             f"got {None if offsets is None else tuple(offsets.shape)}")
        if offsets.device != xyz.device:
            raise ValueError(f"dual_set_proposals: offsets on {offsets.device}, xyz on {xyz.device}")
    if semantic_pred.device != xyz.device or (batch_idx is not None and batch_idx.device != xyz.device):
        raise ValueError("dual_set_proposals: xyz, semantic_pred and batch_idx must be on one device")

    label = scene_labels(semantic_pred, batch_idx, num_classes)
    if len(stuff_classes):
        stuff = torch.isin(semantic_pred.to(torch.int64),
                           torch.as_tensor(list(stuff_classes), dtype=torch.int64, device=xyz.device))
        label = torch.where(stuff, torch.full_like(label, -1), label)
    q_radius = shifted_radius or radius  # cluster_points refuses a radius <= 0
    capped: dict[str, Any] = {"max_neighbours": max_neighbours, "scenes": batch_idx} if max_neighbours else {}
    if sets == "both" and xyz.is_cuda and q_radius == radius and not capped:
        # One kernel pass over both sets: labels 2 * label (P) and 2 * label + 1 (Q) never connect.
        cluster = cluster_points(torch.cat([xyz, xyz + offsets]), torch.cat([label * 2, label * 2 + 1]), radius,
                                 min_points, (-2, -1))
    elif sets == "both":
        # On the CPU each set picks its own strategy (P is sparse, Q dense), and the radii may differ;
        # Q's ids follow P's.
        p_ids = cluster_points(xyz, label, radius, min_points, (-1,), **capped)
        q_ids = cluster_points(xyz + offsets, label, q_radius, min_points, (-1,), **capped)
        num_p = int(p_ids.max()) + 1 if n else 0
        cluster = torch.cat([p_ids, torch.where(q_ids >= 0, q_ids + num_p, q_ids)])
    else:
        cluster = (cluster_points(xyz, label, radius, min_points, (-1,), **capped) if sets == "p"
                   else cluster_points(xyz + offsets, label, q_radius, min_points, (-1,), **capped))

    member = torch.nonzero(cluster >= 0).squeeze(1)  # increasing position
    cid = cluster[member]
    member = member[torch.argsort(cid, stable=True)]  # by cluster, positions still increasing within one
    num = int(cid.max()) + 1 if cid.numel() else 0
    sizes = torch.bincount(cid, minlength=num)
    starts = torch.zeros(num + 1, dtype=torch.int64, device=xyz.device)
    torch.cumsum(sizes, 0, out=starts[1:])
    proposals = Proposals(member % n if sets == "both" else member, starts)
    if not return_set:
        return proposals
    if sets == "both":
        from_q = member[starts[:-1]] >= n
    else:
        from_q = torch.full((num,), sets == "q", dtype=torch.bool, device=xyz.device)
    return proposals, from_q
