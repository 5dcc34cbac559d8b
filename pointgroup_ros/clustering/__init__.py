"""Point grouping (PointGroup Algorithm 1) on the CPU and, through CuPy kernels, on the GPU; proposals, NMS.

- cluster_points: connected components of same-label points closer than a radius (numpy / torch / CuPy).
- dual_set_proposals: clusters on P and on Q = P + offsets, as Proposals (P first, then Q).
- proposal_iou, nms: mask IoU from sparse intersection counts; the authors' test-time filters and NMS.
- reference_cluster: a plain Algorithm 1 (ball query + BFS) that the tests compare against.
"""
from __future__ import annotations

from .api import cluster_points
from .nms import intersection_counts, nms, proposal_iou, select_proposals
from .proposals import dual_set_proposals, scene_labels
from .reference import reference_cluster

__all__ = ["cluster_points", "dual_set_proposals", "intersection_counts", "nms", "proposal_iou",
           "reference_cluster", "scene_labels", "select_proposals"]
