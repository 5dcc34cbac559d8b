"""Grouping that emulates the authors' capped ball query (at most K neighbours per point), on the CPU.

The authors' ball query keeps, for each point, only its first K neighbours in increasing point index (K = 1000
in their code), counting every clustered point of the same scene within the radius whatever its class, the
point itself included. Their BFS then runs seeded in increasing point index over these directed lists: from a
seed it visits every not yet visited point reachable through lists, following an edge only between points of
the same label; the points it visits form the seed's cluster (kept with >= min_points points; smaller ones stay
visited). When no list is capped the lists are symmetric and the clusters are the exact connected components
(cluster_points with max_neighbours=0); on dense blobs (offset-shifted points) capped lists can drop points.

Method (no Python loop over seeds or points):
1. Ball query per scene with a KD-tree (candidates in a slightly larger radius, then the exact test of
   layout.py): all pairs from one query_pairs call, where a cell count bounds them by _PAIRS_AT_ONCE, then only
   the lists longer than K are sorted and cut to their first K entries by index; on denser scenes the complete
   lists of spatially compact chunks of points (a KD-tree per chunk against the scene's), cut chunk by chunk. Then reduced to same-label entries: a directed graph G
   with sum(min(degree, K)) edges at most.
2. The BFS in seed order gives point v to the cluster seeded by min{u : u reaches v in G}. (The clusters made
   before a seed are closed under G's edges: anything a BFS could not reach through unvisited points was
   visited already, so a path that enters them never leaves. Hence the cluster of seed s is everything s
   reaches minus the earlier clusters, and the lowest point reaching v is a seed whose cluster holds v.)
3. That minimum is computed on the strongly connected components of G (scipy.sparse.csgraph, exact and
   vectorised; without capped lists they are the connected components) and then propagated along the
   condensed DAG's edges, re-examining only the components whose value dropped in the previous round.
Cost: the ball query is O(sum of neighbour counts) in the KD-tree (the authors' is the same on the GPU), plus a
sort of the capped lists; memory O(sum of neighbour counts) up to the bound, O(sum(min(degree, K))) beyond it;
the SCCs are linear, and the propagation takes one numpy round per level of the condensed DAG (few: only
capped lists make it non-trivial). On the held-out synthetic rooms about 3x the exact CPU grouping.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .layout import budget_chunks, clustered_indices, radius_squared

log = logging.getLogger(__name__)

_PAIRS_AT_ONCE = 1 << 26  # bound on ordered pairs up to which all pairs come from one query_pairs call
_PAIRS_PER_CHUNK = 1 << 22  # otherwise: about this many candidate pairs at a time
_noted_host_copy = False


def note_host_copy() -> None:
    """Log once per process that the capped emulation copies GPU inputs to the host and runs on the CPU."""
    global _noted_host_copy
    if not _noted_host_copy:
        _noted_host_copy = True
        log.info("grouping.max_neighbours > 0: the capped ball-query emulation runs on the CPU (GPU inputs are "
                 "copied to the host and the cluster ids copied back)")


def check_max_neighbours(max_neighbours: int) -> int:
    if isinstance(max_neighbours, (bool, np.bool_)) or int(max_neighbours) != max_neighbours or max_neighbours < 0:
        raise ValueError(f"cluster_points: max_neighbours must be an integer >= 0 (0: exact), got {max_neighbours!r}")
    return int(max_neighbours)


def _expand(lo: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i repeated count[i] times, lo[i] .. lo[i] + count[i] - 1), int64."""
    ends = np.cumsum(count)
    which = np.repeat(np.arange(len(count)), count)
    return which, np.arange(int(ends[-1]) if len(ends) else 0) + (lo - (ends - count))[which]


def _exact_hits(xyz: np.ndarray, r2: np.floating, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Positions of the candidate pairs (row, col) that pass the neighbour test of layout.py."""
    d = xyz[row] - xyz[col]
    d2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]
    d2 = d2 + d[:, 2] * d[:, 2]
    return np.flatnonzero(d2 < r2)


def _cut(row: np.ndarray, col: np.ndarray, n: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (row, col), any order, each row complete, with every row longer than `keep` cut to its first
    `keep` cols (only those rows are sorted)."""
    capped = np.bincount(row, minlength=n) > keep
    if not capped.any():
        return row, col
    inside = capped[row]
    r_c, c_c = row[inside], col[inside]
    order = np.lexsort((c_c, r_c))
    r_c, c_c = r_c[order], c_c[order]
    per_row = np.bincount(r_c, minlength=n)
    rank = np.arange(len(r_c)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    first = rank < keep
    return np.concatenate([row[~inside], r_c[first]]), np.concatenate([col[~inside], c_c[first]])


def _pair_bound(xyz64: np.ndarray, side: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Cells of the given side: (27 * sum of squared counts, a bound on the ordered neighbour pairs; cell of
    each point, numbered in lexicographic order; points per cell)."""
    cell = np.floor((xyz64 - xyz64.min(axis=0)) / side).astype(np.int64)
    _, inverse, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    counts = counts.astype(np.int64)
    return 27 * int((counts * counts).sum()), inverse.reshape(-1), counts


def _capped_lists(xyz: np.ndarray, radius: float, max_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed pairs (row, col), in no particular order: each point's first max_neighbours neighbours by index
    (itself included; squared distance < r2 in the working dtype of xyz)."""
    n = len(xyz)
    r2 = radius_squared(radius, xyz.dtype)
    p64 = xyz.astype(np.float64)
    tree = cKDTree(p64)
    reach = radius * (1 + 1e-4) + 1e-12  # candidates: a clear margin over any rounding of the exact test
    bound, cell, counts = _pair_bound(p64, reach)
    if bound <= _PAIRS_AT_ONCE:
        # All pairs from one call (the fast way), then mirrored, plus each point itself.
        pairs = tree.query_pairs(reach, output_type="ndarray")
        a, b = pairs[:, 0], pairs[:, 1]
        hit = _exact_hits(xyz, r2, a, b)
        self_ = np.arange(n)
        row, col = _cut(np.concatenate([a[hit], b[hit], self_]), np.concatenate([b[hit], a[hit], self_]), n,
                        max_neighbours)
        return row.astype(np.int32), col.astype(np.int32)
    # Dense: the points in cell order (spatially compact chunks), each chunk's complete lists from a KD-tree of
    # the chunk against the scene's, about _PAIRS_PER_CHUNK candidates at a time, cut at once.
    order = np.argsort(cell, kind="stable")
    ends = np.cumsum(27 * counts[cell[order]])  # estimated candidates up to each point
    rows, cols = [], []
    for start, stop in budget_chunks(ends, _PAIRS_PER_CHUNK):
        members = order[start:stop]
        found = cKDTree(p64[members]).sparse_distance_matrix(tree, reach, output_type="ndarray")
        row, col = members[found["i"]], found["j"]
        hit = _exact_hits(xyz, r2, row, col)
        row, col = _cut(row[hit], col[hit], n, max_neighbours)
        rows.append(row.astype(np.int32))
        cols.append(col.astype(np.int32))
    return np.concatenate(rows), np.concatenate(cols)


def _lowest_reaching(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """For each node v of the directed graph (src -> dst): the lowest node u that reaches v (u = v if none lower)."""
    graph = csr_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=True, connection="strong")
    value = np.full(n_comp, n, dtype=np.int64)
    np.minimum.at(value, comp, np.arange(n))
    cs, cd = comp[src].astype(np.int64), comp[dst].astype(np.int64)
    between = cs != cd
    if between.any():
        edge = np.unique(cs[between] * n_comp + cd[between])  # sorted by source component
        cs, cd = edge // n_comp, edge % n_comp
        indptr = np.searchsorted(cs, np.arange(n_comp + 1))
        active = np.unique(cs)
        while len(active):
            _, e = _expand(indptr[active], indptr[active + 1] - indptr[active])
            lower = value[cs[e]] < value[cd[e]]
            if not lower.any():
                break
            target = cd[e[lower]]
            np.minimum.at(value, target, value[cs[e[lower]]])
            active = np.unique(target)
    return value[comp]


def capped_cluster_numpy(xyz: np.ndarray, labels: np.ndarray, radius: float, min_points: int,
                         ignore_labels: tuple[int, ...], max_neighbours: int,
                         scenes: np.ndarray | None = None) -> np.ndarray:
    """Cluster ids as cluster_points returns them (int64 (N,), -1 = none; ids in order of their seed, the
    cluster's lowest index), under the authors' cap of max_neighbours (> 0) neighbours per point.

    xyz: (N, 3) float32/float64 (the working dtype); labels: (N,) int64. scenes: (N,) int scene of each point or
    None (one scene): a point's list only holds points of its own scene (the authors' ball query runs per
    scene of a batch); labels must still differ between scenes for no cluster to span two.
    """
    n = len(xyz)
    out = np.full(n, -1, dtype=np.int64)
    idx = clustered_indices(xyz, labels, ignore_labels)  # in index order: node i = idx[i]
    if len(idx) == 0:
        return out
    pts, lab = xyz[idx], labels[idx]
    src, dst = [], []
    if scenes is None:
        parts: list[np.ndarray | None] = [None]
    else:
        scene = np.asarray(scenes)[idx]
        order = np.argsort(scene, kind="stable")  # index order within each scene
        parts = list(np.split(order, np.flatnonzero(np.diff(scene[order])) + 1))
    for nodes in parts:
        row, col = _capped_lists(pts if nodes is None else pts[nodes], radius, max_neighbours)
        if nodes is not None:
            row, col = nodes[row], nodes[col]
        same = np.flatnonzero((lab[row] == lab[col]) & (row != col))
        src.append(row[same])
        dst.append(col[same])
    seed = _lowest_reaching(len(idx), np.concatenate(src), np.concatenate(dst))
    seeds = np.flatnonzero(seed == np.arange(len(idx)))  # increasing: the clusters in seed order
    size = np.bincount(seed, minlength=len(idx))
    kept = seeds[size[seeds] >= min_points]
    rank = np.full(len(idx), -1, dtype=np.int64)
    rank[kept] = np.arange(len(kept))
    out[idx] = rank[seed]
    return out
