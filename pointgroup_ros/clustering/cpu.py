"""CPU grouping with numpy / scipy: the same clusters as the GPU kernels, vectorised over cells.

Points are sorted by the grid key of layout.py. Candidate neighbours come from the forward half of each
coarse cell's 3x3x3 neighbourhood (coarse side > radius; one searchsorted per forward row). Two strategies
give the same exact components; the cheaper one is picked from the coarse cells' occupancy:
- sparse scenes (few points per coarse cell, typical of P): every point pair of neighbouring coarse cells
  is tested, and csgraph takes the components of the point graph. With about one point per coarse cell the
  cell pairs are expanded to point pairs at once; with more, each point's candidates are a few contiguous
  ranges of sorted points, expanded and tested in chunks that stay in cache, in point order, so the hits
  make a CSR graph without sorting;
- dense scenes (typical of Q, where offsets pile points up): every fine cell (a "group") is a clique of
  the neighbour graph, so the graph is contracted to groups, two groups being joined when any pair of
  their points are neighbours. Most group pairs are settled by one test between the groups' first points;
  the rest are dropped when already connected or when their bounding boxes are too far apart, and the
  remaining ones are settled by testing their point pairs in bounded chunks.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from .layout import GridLayout, budget_chunks, cell_keys_numpy, clustered_indices, fine_coords, radius_squared

_CHUNK = 1 << 22  # point pairs tested at once
_POINT_CHUNK = 1 << 16  # sparse mode: point pairs expanded and tested at once, point by point
_POINT_MAJOR_SQUARES_PER_POINT = 1.5  # sparse mode: sum of squared coarse cell sizes per point from which
# candidate pairs are expanded point by point (about 4 candidate pairs per point on real scans)
_SPARSE_PAIRS_PER_POINT = 4  # sum of squared coarse cell sizes per point below which pairs are tested directly
_FORWARD_ROWS = ((0, 1), (1, -1), (1, 0), (1, 1))  # (dz, dy) of the coarse rows after a cell's own row


def _expand(lo: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each i the values lo[i] .. lo[i] + count[i] - 1: returns (i repeated, value), both int64, i-major
    (ascending i, then ascending value), which keeps later gathers close to sequential."""
    ends = np.cumsum(count)
    total = int(ends[-1]) if len(ends) else 0
    which = np.repeat(np.arange(len(count)), count)
    return which, np.arange(total) + (lo - (ends - count))[which]


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


class _Neighbours:
    """The forward half of each coarse cell's 3x3x3 neighbourhood (cells = indices into the sorted unique coarse
    keys ckey): the next cell of its row (where `nxt`), and for each row (dz, dy) of _FORWARD_ROWS the cells
    lo[r, c] .. hi[r, c] - 1 (coarse x from cx - 1 to cx + 1: at most three, contiguous in key order). Cells at
    the edge of the key's range get no row that would wrap into another row or label.
    Also as cell pairs (a, b), b after a: `pairs()`. lo and hi only with ranges=True.
    """

    def __init__(self, ckey: np.ndarray, bits: int, ranges: bool = False):
        n_cells = len(ckey)
        cmax = (1 << bits) - 1
        cx, cy, cz = ckey & cmax, (ckey >> bits) & cmax, (ckey >> (2 * bits)) & cmax
        at_edge = cx.max() == cmax or cy.max() == cmax or cz.max() == cmax  # coarse 0 never occurs (layout)
        self.nxt = np.zeros(n_cells, dtype=bool)
        np.equal(ckey[1:] - ckey[:-1], 1, out=self.nxt[:-1])
        if at_edge:
            self.nxt &= cx < cmax
        if ranges:
            self.lo = np.empty((len(_FORWARD_ROWS), n_cells), dtype=np.int64)
            self.hi = np.empty_like(self.lo)
        self.row_a: list[np.ndarray] = []  # the row pairs, one array per (row, step)
        self.row_b: list[np.ndarray] = []
        last = n_cells - 1
        for r, (dz, dy) in enumerate(_FORWARD_ROWS):
            lo_key = ckey + (((dz << (2 * bits)) + (dy << bits)) - 1)
            h = np.searchsorted(ckey, lo_key)
            if ranges:
                self.lo[r] = h
                self.hi[r] = h
            if at_edge:
                src = np.flatnonzero((cy + dy <= cmax) & (cz + dz <= cmax))
                span = np.where(cx[src] < cmax, 2, 1)  # hi key - lo key: x + 1 only below the edge
                h, lo_key = h[src], lo_key[src]
            else:
                src, span = np.arange(n_cells), np.int64(2)
            for step in range(3):  # the cells in range are a prefix of h, h + 1, h + 2 (sorted keys)
                if step:
                    h = h + 1
                keep = np.flatnonzero((h <= last) & (ckey[np.minimum(h, last)] - lo_key <= span))
                src, h = src[keep], h[keep]
                if ranges:
                    self.hi[r, src] += 1
                self.row_a.append(src)
                self.row_b.append(h)
                if step < 2:
                    lo_key = lo_key[keep]
                    if span.ndim:
                        span = span[keep]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        nxt = np.flatnonzero(self.nxt)
        return np.concatenate([nxt, *self.row_a]), np.concatenate([nxt + 1, *self.row_b])


def _member_pairs(start: np.ndarray, end: np.ndarray, a_cells: np.ndarray,
                  b_cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (member of a, member of b) for the cell pairs (a_cells, b_cells), and the pairs i < j within each
    cell; members of cell c are start[c] .. end[c] - 1."""
    size = end - start
    if size.max(initial=0) == 1:  # one member per cell: the pairs are the cell pairs
        return start[a_cells], start[b_cells]
    items = np.arange(end[-1] if len(end) else 0)
    own_a, own_b = _expand(items + 1, np.repeat(end, size) - items - 1)
    single = np.flatnonzero((size[a_cells] == 1) & (size[b_cells] == 1))  # most pairs on sparse scenes
    several = np.flatnonzero((size[a_cells] > 1) | (size[b_cells] > 1))
    a_parts, b_parts = [own_a, start[a_cells.take(single)]], [own_b, start[b_cells.take(single)]]
    a_cells, b_cells = a_cells.take(several), b_cells.take(several)
    which, a = _expand(start[a_cells], size[a_cells])  # each member of each a cell ...
    b_cells = b_cells[which]
    which, b = _expand(start[b_cells], size[b_cells])  # ... with each member of its b cell
    a_parts.append(a[which])
    b_parts.append(b)
    return np.concatenate(a_parts), np.concatenate(b_parts)


class _Sorted:
    """Valid points sorted by grid key, and the neighbour test."""

    def __init__(self, columns: list[np.ndarray], lab: np.ndarray, order: np.ndarray, layout: GridLayout,
                 r2: np.floating):
        key = cell_keys_numpy(columns, lab, layout)
        o = np.argsort(key)  # (any order of equal keys gives the same components)
        self.key = key[o]
        self.order = order[o]  # original index of each sorted point
        self.x = [c[o] for c in columns]
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
    a_cells, b_cells = _Neighbours(coarse[cstart], bits).pairs()
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
    """Sparse mode: component of each sorted point from every point pair of neighbouring coarse cells.

    A point's forward candidates are the later points of its own cell and the points of its cell's forward
    neighbours (_Neighbours). With few candidates per point, the cell pairs are expanded to point pairs at
    once (_member_pairs). Otherwise each point's candidates are contiguous ranges of sorted points, "entries"
    of its cell: its own entry (the later points of its cell and those of the next cell of its row) and one
    entry per non-empty forward row; these are expanded and tested point by point in chunks of about
    _POINT_CHUNK pairs (small temporaries, reused from chunk to chunk), so the hits come out sorted by their
    first point and make a CSR graph as they are.
    """
    n, n_cells = len(pts.key), len(cstart)
    bounds = np.append(cstart, n)  # first point of each cell, then n
    size = np.diff(bounds)
    point_major = int((size * size).sum()) >= _POINT_MAJOR_SQUARES_PER_POINT * n  # many candidates per point
    nb = _Neighbours(pts.key[cstart] >> 3, bits, ranges=point_major)
    if not point_major:
        a, b = _member_pairs(cstart, bounds[1:], *nb.pairs())
        hit = np.flatnonzero(pts.near(a, b))
        return _components(n, [a.take(hit)], [b.take(hit)])
    row_first, row_end = bounds[nb.lo], bounds[nb.hi]  # (4, C) points of each row's cells
    own_end = bounds[np.arange(1, n_cells + 1) + nb.nxt]  # end of the own cell, or of the next one
    pairs_of_cell = (row_end - row_first).sum(axis=0) + own_end - cstart - 1  # for each cell's first point

    nonempty = row_end > row_first
    per_cell = 1 + nonempty.sum(axis=0)  # entries of each cell: own, then its non-empty rows
    entry_start = np.cumsum(per_cell) - per_cell
    entry_first = np.empty(int(per_cell.sum()), dtype=np.int64)
    entry_end = np.empty_like(entry_first)
    is_own = np.zeros(len(entry_first), dtype=bool)
    entry_first[entry_start] = cstart + 1  # own entry: + the point's rank in its cell
    entry_end[entry_start] = own_end
    is_own[entry_start] = True
    at = entry_start.copy()
    for r in range(len(_FORWARD_ROWS)):
        cell = np.flatnonzero(nonempty[r])
        at[cell] += 1
        entry_first[at[cell]] = row_first[r, cell]
        entry_end[at[cell]] = row_end[r, cell]

    cell_of = np.repeat(np.arange(n_cells), size)
    rank = np.arange(n) - cstart[cell_of]  # of each point in its cell
    ends = np.cumsum(pairs_of_cell[cell_of] - rank)  # pairs up to each point
    edges_a, edges_b = [], []
    for begin, stop in budget_chunks(ends, _POINT_CHUNK):
        cells = cell_of[begin:stop]
        point, entry = _expand(entry_start[cells], per_cell[cells])  # (point in chunk, entry), point-major
        first = entry_first[entry]
        first += is_own[entry] * rank[begin:stop][point]
        which, b = _expand(first, entry_end[entry] - first)
        a = point.take(which)
        a += begin
        hit = np.flatnonzero(pts.near(a, b))
        edges_a.append(a.take(hit))
        edges_b.append(b.take(hit))
    ea, eb = np.concatenate(edges_a), np.concatenate(edges_b)  # ea ascending
    index = np.int32 if len(ea) < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=index)
    np.cumsum(np.bincount(ea, minlength=n), out=indptr[1:])
    graph = csr_matrix((np.ones(len(ea)), eb.astype(index), indptr), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def cluster_points_numpy(xyz: np.ndarray, labels: np.ndarray, radius: float, min_points: int,
                         ignore_labels: tuple[int, ...]) -> np.ndarray:
    """Cluster ids, int64 (N,), -1 = no kept cluster. xyz (N, 3) float32/float64, labels (N,) int64."""
    n = len(xyz)
    out = np.full(n, -1, dtype=np.int64)
    idx = clustered_indices(xyz, labels, ignore_labels)
    if len(idx) == 0:
        return out
    columns, lab = [xyz[idx, axis] for axis in range(3)], labels[idx]  # contiguous x, y, z of the valid points
    label_min, label_max = int(lab.min()), int(lab.max())
    if GridLayout.needs_label_ranks(label_min, label_max):
        uniq, lab = np.unique(lab, return_inverse=True)
        lab = lab.reshape(-1).astype(np.int64)
        label_min, label_max = 0, len(uniq) - 1
    layout = GridLayout.create(radius, [c.min() for c in columns], label_min, label_max)
    pts = _Sorted(columns, lab, idx, layout, radius_squared(radius, np.dtype(xyz.dtype)))

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
