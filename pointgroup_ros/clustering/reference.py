"""A plain implementation of PointGroup's Algorithm 1 (ball query, then BFS seeded in index order).

For tests and documentation: clarity over speed. It follows the arithmetic contract of layout.py (working
dtype, d2 = (dx*dx + dy*dy) + dz*dz < r2), so the fast paths must agree with it exactly.
Two exact shortcuts keep it usable on real scans: the ball query uses a KD-tree for candidates (a slightly
larger radius, then the exact test), and exact duplicates (same coordinates and label, always neighbours
of each other with the same neighbours) are visited as one node.
"""
from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np
from scipy.spatial import cKDTree

from .layout import radius_squared, working_dtype


def reference_cluster(coords: np.ndarray, labels: np.ndarray, radius: float, min_points: int,
                      ignore_labels: Iterable[int] = (), max_neighbours: int = 0,
                      scenes: np.ndarray | None = None) -> np.ndarray:
    """Cluster id per point (int64 (N,), -1 = none) by Algorithm 1; same contract as cluster_points.

    max_neighbours > 0: the authors' capped ball query, transcribed literally (reference_capped_cluster)."""
    if max_neighbours:
        return reference_capped_cluster(coords, labels, radius, min_points, ignore_labels, max_neighbours, scenes)
    coords = np.asarray(coords)
    dtype = working_dtype(coords.dtype)
    xyz = np.ascontiguousarray(coords, dtype=dtype).reshape(-1, 3)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n = len(xyz)
    valid = np.isfinite(xyz).all(axis=1) & ~np.isin(labels, list(ignore_labels))
    idx = np.flatnonzero(valid)
    cluster = np.full(n, -1, dtype=np.int64)
    if len(idx) == 0:
        return cluster

    # One node per distinct (coordinates, label); node order = order of each node's first point.
    rows = np.concatenate([xyz[idx].view(np.uint8).reshape(len(idx), -1),
                           labels[idx].reshape(-1, 1).view(np.uint8)], axis=1)
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    node_rank = np.argsort(first, kind="stable")  # node ids in order of first appearance
    relabel = np.empty_like(node_rank)
    relabel[node_rank] = np.arange(len(node_rank))
    node_of_point = relabel[inverse.reshape(-1)]
    node_point = idx[first[node_rank]]  # a representative point (the lowest index) of each node
    node_size = np.bincount(node_of_point, minlength=len(node_point))
    pts = xyz[node_point]
    lab = labels[node_point]

    # Ball query: KD-tree candidates within a slightly larger radius, then the exact contract test.
    r2 = radius_squared(radius, dtype)
    tree = cKDTree(pts.astype(np.float64))
    candidates = tree.query_ball_point(pts.astype(np.float64), r=radius * (1 + 1e-4) + 1e-12)
    neighbours = []
    for a, cand in enumerate(candidates):
        cand = np.asarray(cand, dtype=np.int64)
        d = pts[cand] - pts[a]
        d2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]
        d2 = d2 + d[:, 2] * d[:, 2]
        neighbours.append(cand[(d2 < r2) & (lab[cand] == lab[a])])

    # BFS seeded in index order: each new seed is the lowest index of a new component.
    node_cluster = np.full(len(pts), -1, dtype=np.int64)
    seen = np.zeros(len(pts), dtype=bool)
    next_id = 0
    for seed in range(len(pts)):
        if seen[seed]:
            continue
        seen[seed] = True
        members = [seed]
        queue = deque([seed])
        while queue:
            a = queue.popleft()
            for b in neighbours[a]:
                if not seen[b]:
                    seen[b] = True
                    members.append(int(b))
                    queue.append(int(b))
        if node_size[members].sum() >= min_points:
            node_cluster[members] = next_id
            next_id += 1
    cluster[idx] = node_cluster[node_of_point]
    return cluster


def reference_capped_cluster(coords: np.ndarray, labels: np.ndarray, radius: float, min_points: int,
                             ignore_labels: Iterable[int], max_neighbours: int,
                             scenes: np.ndarray | None = None) -> np.ndarray:
    """The authors' ball query and BFS as they wrote them (O(N^2): small inputs only).

    Ball query: for each clustered point i (label not ignored, finite), scan the clustered points j of its scene in
    increasing index and list j when d2 < r2 (any label; i itself included), stopping at max_neighbours entries.
    BFS: seeds in increasing index; from a seed, pop points first in, first out and append each listed point of
    the same label that is not yet visited. Every visited point stays visited; clusters with >= min_points points
    are numbered in seed order.
    """
    coords = np.asarray(coords)
    dtype = working_dtype(coords.dtype)
    xyz = np.ascontiguousarray(coords, dtype=dtype).reshape(-1, 3)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n = len(xyz)
    scene = np.zeros(n, dtype=np.int64) if scenes is None else np.asarray(scenes).astype(np.int64).reshape(-1)
    valid = np.isfinite(xyz).all(axis=1) & ~np.isin(labels, list(ignore_labels))
    idx = np.flatnonzero(valid)
    r2 = radius_squared(radius, dtype)
    lists = {}
    for i in idx:
        found = []
        for j in idx:
            if scene[j] != scene[i]:
                continue
            d = xyz[j] - xyz[i]
            d2 = d[0] * d[0] + d[1] * d[1]
            d2 = d2 + d[2] * d[2]
            if d2 < r2:
                found.append(int(j))
                if len(found) == max_neighbours:
                    break
        lists[int(i)] = found
    cluster = np.full(n, -1, dtype=np.int64)
    visited = np.zeros(n, dtype=bool)
    next_id = 0
    for seed in idx:
        if visited[seed]:
            continue
        visited[seed] = True
        members = [int(seed)]
        queue = deque([int(seed)])
        while queue:
            a = queue.popleft()
            for b in lists[a]:
                if labels[b] != labels[a] or visited[b]:
                    continue
                visited[b] = True
                members.append(b)
                queue.append(b)
        if len(members) >= min_points:
            cluster[members] = next_id
            next_id += 1
    return cluster
