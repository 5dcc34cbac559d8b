"""CPU grouping with numpy / scipy: the same clusters as the GPU kernels, vectorised over cells.

Points are sorted by the grid key of layout.py. Candidate neighbours come from the forward half of each
coarse cell's 3x3x3 neighbourhood (coarse side > radius; one searchsorted per forward row). Two strategies
give the same exact components; the cheaper one is picked from the coarse cells' occupancy:
- sparse scenes (few points per coarse cell, typical of P): every point pair of neighbouring coarse cells
  is tested, and csgraph takes the components of the point graph;
- dense scenes (typical of Q, where offsets pile points up): every fine cell (a "group") is a clique of
  the neighbour graph, so the graph is contracted to groups, two groups being joined when any pair of
  their points are neighbours. Most group pairs are settled by one test between the groups' first points;
  the rest are dropped when already connected or when their bounding boxes are too far apart, and the
  remaining ones are settled by testing their point pairs in bounded chunks.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .layout import GridLayout, cell_keys_numpy, fine_coords, radius_squared

_CHUNK = 1 << 22  # point pairs tested at once
_SPARSE_PAIRS_PER_POINT = 4  # sum of squared coarse cell sizes per point below which pairs are tested directly
_FORWARD_ROWS = ((0, 1), (1, -1), (1, 0), (1, 1))  # (dz, dy) of the coarse rows after a cell's own row


def _expand(lo: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each i the values lo[i] .. lo[i] + count[i] - 1: returns (i repeated, value), both int64.

    The output order is unspecified. Counts are mostly tiny here (points or fine cells per coarse cell),
    where a few shrinking passes beat np.repeat by far.
    """
    if len(count) and count.max() > 16:
        total = int(count.sum())
        which = np.repeat(np.arange(len(count)), count)
        return which, np.arange(total) + np.repeat(lo - (np.cumsum(count) - count), count)
    which_parts, value_parts = [], []
    which = np.flatnonzero(count > 0)
    k = 0
    while len(which):
        which_parts.append(which)
        value_parts.append(lo[which] + k)
        k += 1
        which = which[count[which] > k]
    if not which_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(which_parts), np.concatenate(value_parts)


def _components(n_nodes: int, a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    ea, eb = np.concatenate(a), np.concatenate(b)
    graph = coo_matrix((np.ones(len(ea), dtype=np.int8), (ea, eb)), shape=(n_nodes, n_nodes)).tocsr()
    return connected_components(graph, directed=False)[1]


def _runs(keys: np.ndarray, split: np.ndarray | None = None) -> np.ndarray:
    """Start positions of the runs of equal keys (sorted keys); `split` forces a new run where True."""
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    if split is not None:
        new |= split
    return np.flatnonzero(new)


def _coarse_pairs(ckey: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of coarse cells (indices into the sorted unique coarse keys ckey), b in the forward half
    of a's 3x3x3 neighbourhood: the next cell of a's row, and x - 1 .. x + 1 of the rows (dz, dy) in
    _FORWARD_ROWS. Cells at the edge of the key's range get no row that would wrap into another row or label.
    """
    n_cells = len(ckey)
    cells = np.arange(n_cells)
    cmax = (1 << bits) - 1
    cx, cy, cz = ckey & cmax, (ckey >> bits) & cmax, (ckey >> (2 * bits)) & cmax
    ca = [cells[:-1][ckey[1:] - ckey[:-1] == 1]]
    at_edge = cx.max() == cmax or cy.max() == cmax or cz.max() == cmax  # coarse 0 never occurs (layout)
    if at_edge:
        ca[0] = ca[0][cx[ca[0]] < cmax]
    cb = [ca[0] + 1]
    src_list, lo_list, hi_list = [], [], []
    for dz, dy in _FORWARD_ROWS:
        delta = (dz << (2 * bits)) + (dy << bits)
        if at_edge:
            inside = np.flatnonzero((cy + dy <= cmax) & (cz + dz <= cmax))
            row = ckey[inside] + delta
            lo_list.append(row - 1)
            hi_list.append(row + (cx[inside] < cmax))
        else:
            inside = cells
            lo_list.append(ckey + (delta - 1))
        src_list.append(inside)
    src, lo_key = np.concatenate(src_list), np.concatenate(lo_list)
    hi_key = np.concatenate(hi_list) if at_edge else lo_key + 2
    h = np.searchsorted(ckey, lo_key)
    last = n_cells - 1
    for step in range(3):  # at most three cells per row
        if step:
            h = h + 1  # (not in place: h was appended to cb)
        keep = np.flatnonzero((ckey[np.minimum(h, last)] <= hi_key) & (h <= last))
        ca.append(src[keep])
        h, hi_key, src = h[keep], hi_key[keep], src[keep]
        cb.append(h)
    return np.concatenate(ca), np.concatenate(cb)


def _member_pairs(start: np.ndarray, end: np.ndarray, a_cells: np.ndarray,
                  b_cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (member of a, member of b) for the cell pairs (a_cells, b_cells), and the pairs i < j within each
    cell; members of cell c are start[c] .. end[c] - 1."""
    size = end - start
    if size.max(initial=0) == 1:  # one member per cell: the pairs are the cell pairs
        return start[a_cells], start[b_cells]
    items = np.arange(end[-1] if len(end) else 0)
    cell_of = np.repeat(np.arange(len(start)), size)
    own_a, own_b = _expand(items + 1, end[cell_of] - items - 1)
    single = (size[a_cells] == 1) & (size[b_cells] == 1)  # most pairs on sparse scenes: no expansion
    a_parts, b_parts = [items[own_a], start[a_cells[single]]], [own_b, start[b_cells[single]]]
    a_cells, b_cells = a_cells[~single], b_cells[~single]
    which, a = _expand(start[a_cells], size[a_cells])
    b_cells = b_cells[which]
    which, b = _expand(start[b_cells], size[b_cells])
    a_parts.append(a[which])
    b_parts.append(b)
    return np.concatenate(a_parts), np.concatenate(b_parts)


class _Sorted:
    """Valid points sorted by grid key, and the neighbour test."""

    def __init__(self, pts: np.ndarray, lab: np.ndarray, order: np.ndarray, layout: GridLayout, r2: np.floating):
        key = cell_keys_numpy(pts, lab, layout)
        o = np.argsort(key, kind="stable")
        self.key = key[o]
        self.order = order[o]  # original index of each sorted point
        self.x = [np.ascontiguousarray(pts[o, axis]) for axis in range(3)]
        self.r2 = r2

    def near(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        """Neighbour test of sorted points ia, ib (the arithmetic contract of layout.py)."""
        x = self.x
        d = x[0][ia] - x[0][ib]
        d2 = d * d
        d = x[1][ia] - x[1][ib]
        d2 += d * d
        d = x[2][ia] - x[2][ib]
        d2 += d * d
        return d2 < self.r2


class _Groups:
    """The fine cells ("groups") of the sorted points; each is a clique of the neighbour graph."""

    def __init__(self, pts: _Sorted, layout: GridLayout):
        fx, fy, fz = fine_coords(pts.key, layout.bits)
        clamped = (fx == layout.top) | (fy == layout.top) | (fz == layout.top)
        self.start = _runs(pts.key, clamped)  # a clamped cell is no clique: one group per point
        n = len(pts.key)
        self.size = np.diff(np.append(self.start, n))
        self.key = pts.key[self.start]
        self.fine = [f[self.start].astype(np.int32) for f in (fx, fy, fz)]
        self.pts = pts


def _candidate_pairs(g: _Groups, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Group pairs (a before b in key order) in neighbouring coarse cells and within two fine cells per axis."""
    coarse = g.key >> 3
    cstart = _runs(coarse)
    a_cells, b_cells = _coarse_pairs(coarse[cstart], bits)
    a, b = _member_pairs(cstart, np.append(cstart[1:], len(g.key)), a_cells, b_cells)
    f = g.fine[0]
    ok = np.abs(f[a] - f[b]) <= 2
    for f in g.fine[1:]:
        ok &= np.abs(f[a] - f[b]) <= 2
    return a[ok], b[ok]


def _settle(g: _Groups, a: np.ndarray, b: np.ndarray, edges_a: list[np.ndarray], edges_b: list[np.ndarray],
            radius: float) -> None:
    """Test the point pairs of undecided group pairs (a, b); append the joined pairs to the edge lists."""
    if len(a) == 0:
        return
    pts = g.pts
    work = g.size[a] * g.size[b]
    if work.sum() > 4 * len(a) + (1 << 16):
        # Many points: drop pairs already connected through other edges, then far bounding boxes.
        comp = _components(len(g.start), edges_a, edges_b)
        keep = comp[a] != comp[b]
        a, b = a[keep], b[keep]
        lo = [np.minimum.reduceat(x, g.start) for x in pts.x]
        hi = [np.maximum.reduceat(x, g.start) for x in pts.x]
        gap2 = np.zeros(len(a))
        for axis in range(3):
            gap = np.maximum(np.maximum(lo[axis][b] - hi[axis][a], lo[axis][a] - hi[axis][b]), 0).astype(np.float64)
            gap2 += gap * gap
        keep = gap2 < radius * radius * (1 + 1e-4)  # a clear margin over any rounding of the exact test
        a, b = a[keep], b[keep]
        work = g.size[a] * g.size[b]
    # Chunks of about _CHUNK point pairs: all pairs of each group pair, a hit joins the groups.
    ends = np.cumsum(work)
    begin = 0
    while begin < len(a):
        stop = max(begin + 1, int(np.searchsorted(ends, (ends[begin - 1] if begin else 0) + _CHUNK, "right")))
        ca, cb = a[begin:stop], b[begin:stop]
        na, nb = g.size[ca], g.size[cb]
        pair, within = _expand(np.zeros(len(ca), dtype=np.int64), na * nb)
        nbp = nb[pair]
        hit = pts.near(g.start[ca][pair] + within // nbp, g.start[cb][pair] + within % nbp)
        joined = np.unique(pair[hit])
        edges_a.append(ca[joined])
        edges_b.append(cb[joined])
        begin = stop


def _group_components(pts: _Sorted, layout: GridLayout, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Dense mode: (component of each sorted point, start of each group) via the fine-cell cliques."""
    g = _Groups(pts, layout)
    a, b = _candidate_pairs(g, layout.bits)
    hit = pts.near(g.start[a], g.start[b])  # first point of each group: settles single-point pairs
    edges_a, edges_b = [a[hit]], [b[hit]]
    undecided = ~hit & ((g.size[a] > 1) | (g.size[b] > 1))
    _settle(g, a[undecided], b[undecided], edges_a, edges_b, radius)
    comp = _components(len(g.start), edges_a, edges_b)
    return np.repeat(comp, g.size), g.start


def _point_components(pts: _Sorted, cstart: np.ndarray, bits: int) -> np.ndarray:
    """Sparse mode: component of each sorted point from every point pair of neighbouring coarse cells."""
    a_cells, b_cells = _coarse_pairs(pts.key[cstart] >> 3, bits)
    a, b = _member_pairs(cstart, np.append(cstart[1:], len(pts.key)), a_cells, b_cells)
    hit = pts.near(a, b)
    return _components(len(pts.key), [a[hit]], [b[hit]])


def cluster_points_numpy(xyz: np.ndarray, labels: np.ndarray, radius: float, min_points: int,
                         ignore_labels: tuple[int, ...]) -> np.ndarray:
    """Cluster ids, int64 (N,), -1 = no kept cluster. xyz (N, 3) float32/float64, labels (N,) int64."""
    n = len(xyz)
    out = np.full(n, -1, dtype=np.int64)
    finite = np.isfinite(xyz)
    valid = finite[:, 0] & finite[:, 1] & finite[:, 2]
    for label in ignore_labels:
        valid &= labels != label
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return out
    xyz_valid, lab = xyz[idx], labels[idx]
    label_min, label_max = int(lab.min()), int(lab.max())
    if GridLayout.needs_label_ranks(label_min, label_max):
        uniq, lab = np.unique(lab, return_inverse=True)
        lab = lab.reshape(-1).astype(np.int64)
        label_min, label_max = 0, len(uniq) - 1
    layout = GridLayout.create(radius, xyz_valid.min(axis=0), label_min, label_max)
    pts = _Sorted(xyz_valid, lab, idx, layout, radius_squared(radius, np.dtype(xyz.dtype)))

    # Coarse cells (side 2 s > radius) hold few points on sparse scenes: test their point pairs directly.
    # Otherwise contract the fine-cell cliques first. Both give the exact components.
    cstart = _runs(pts.key >> 3)
    csize = np.diff(np.append(cstart, len(idx)))
    if int((csize * csize).sum()) <= _SPARSE_PAIRS_PER_POINT * len(idx):
        comp = _point_components(pts, cstart, layout.bits)
        run_start = np.arange(len(idx))
    else:
        comp, run_start = _group_components(pts, layout, radius)

    n_comp = int(comp.max()) + 1
    lowest = np.full(n_comp, n, dtype=np.int64)
    np.minimum.at(lowest, comp[run_start], np.minimum.reduceat(pts.order, run_start))
    size = np.bincount(comp, minlength=n_comp)
    kept = np.flatnonzero(size >= min_points)
    rank = np.full(n_comp, -1, dtype=np.int64)
    rank[kept[np.argsort(lowest[kept])]] = np.arange(len(kept))
    out[pts.order] = rank[comp]
    return out
