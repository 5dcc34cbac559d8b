"""Synthetic indoor scenes, deterministic by seed: a room (floor and walls: stuff) with furniture (things).

Classes (config/synthetic.yaml, in this order): 0 floor, 1 wall (stuff), 2 chair, 3 table, 4 cabinet,
5 sofa, 6 bin. Objects are unions of solid parts (boxes, cylinders) whose visible surfaces are sampled on a
jittered grid (about `spacing` apart, like the vertices of a ScanNet mesh at the 2 cm voxel scale); surfaces
hidden inside another part (touching faces, floor under a cabinet, a cabinet's back against the wall) are
removed, then sensor-like Gaussian noise is added to positions and colours. Every scene has:
  - at least one row of same-class objects touching side by side (cabinets, chairs or sofas, gaps of
    0-4 mm; grouping on the original coordinates alone merges them),
  - objects against the walls (rows, bins), and, where it fits, a table group (one or two tables pushed
    together, chairs around).
Each object's surface is one connected piece at the 3 cm grouping radius (undersides of raised parts are
sampled, so legs join table tops and seats).
Coordinates are centred on the scene mean (as prepared ScanNet scenes), z up, metres.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .scene import IGNORE, Scene

SYNTHETIC_CLASSES: tuple[str, ...] = ("floor", "wall", "chair", "table", "cabinet", "sofa", "bin")
SYNTHETIC_STUFF: tuple[int, ...] = (0, 1)
FLOOR, WALL, CHAIR, TABLE, CABINET, SOFA, BIN = range(7)

# Base colours per class (several styles each); an object picks one and varies it.
_PALETTE: dict[int, list[tuple[int, int, int]]] = {
    FLOOR: [(150, 115, 80), (120, 120, 125), (170, 160, 140)],
    WALL: [(215, 210, 200), (200, 205, 212), (225, 215, 190)],
    CHAIR: [(45, 45, 50), (150, 45, 40), (50, 70, 140), (110, 80, 55)],
    TABLE: [(160, 120, 80), (228, 228, 222), (95, 65, 45)],
    CABINET: [(235, 235, 228), (170, 130, 90), (125, 125, 128)],
    SOFA: [(100, 112, 90), (140, 62, 52), (82, 82, 98), (170, 150, 120)],
    BIN: [(60, 60, 62), (40, 90, 160), (185, 185, 185)],
}
_LIGHT = np.array([0.3, 0.5, 0.81], dtype=np.float64) / np.linalg.norm([0.3, 0.5, 0.81])


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator. The defaults give rooms of 24k-45k points (mean 35k) whose nearest
    neighbours are 1.8 cm apart on average; a larger spacing or smaller rooms give fewer points."""

    room_size: tuple[float, float] = (2.3, 3.0)  # side lengths drawn uniformly (m)
    wall_height: float = 0.6  # scanned part of the walls (m)
    spacing: float = 0.025  # surface sample spacing (m); keep below the grouping radius (0.03)
    noise: float = 0.003  # position noise std (m)
    color_noise: float = 6.0  # per-point colour noise std (0..255 units)
    extra_groups: tuple[int, int] = (1, 3)  # furniture groups beyond the two every room has (inclusive)

    def __post_init__(self) -> None:
        if not 1.5 <= self.room_size[0] <= self.room_size[1]:
            raise ValueError(f"room_size must satisfy 1.5 <= min <= max, got {self.room_size}")
        if not 0 < self.spacing <= 0.1 or self.wall_height <= 0 or self.noise < 0 or self.color_noise < 0:
            raise ValueError("spacing must be in (0, 0.1], wall_height > 0, noise and color_noise >= 0")
        if not 0 <= self.extra_groups[0] <= self.extra_groups[1]:
            raise ValueError(f"extra_groups must satisfy 0 <= min <= max, got {self.extra_groups}")


@dataclass
class _Part:
    """A solid: a box (half extents hx, hy, hz) or a vertical cylinder (radius hx, half height hz)."""

    center: np.ndarray  # (3,)
    half: np.ndarray  # (3,)
    yaw: float = 0.0
    cylinder: bool = False
    open_top: bool = False

    def moved(self, rot: float, shift: np.ndarray) -> "_Part":
        c, s = np.cos(rot), np.sin(rot)
        x, y = self.center[0], self.center[1]
        center = np.array([c * x - s * y + shift[0], s * x + c * y + shift[1], self.center[2]])
        return _Part(center, self.half, self.yaw + rot, self.cylinder, self.open_top)

    def contains(self, pts: np.ndarray, margin: float) -> np.ndarray:
        """bool (M,): points inside the solid grown by `margin`."""
        d = pts - self.center
        if self.cylinder:
            return ((d[:, 0] ** 2 + d[:, 1] ** 2 < (self.half[0] + margin) ** 2)
                    & (np.abs(d[:, 2]) < self.half[2] + margin))
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
        h = self.half + margin
        return (np.abs(lx) < h[0]) & (np.abs(ly) < h[1]) & (np.abs(d[:, 2]) < h[2])

    def footprint(self) -> np.ndarray:
        """(4,) xmin, ymin, xmax, ymax of the part seen from above."""
        if self.cylinder:
            r = self.half[0]
            return np.array([self.center[0] - r, self.center[1] - r, self.center[0] + r, self.center[1] + r])
        c, s = abs(np.cos(self.yaw)), abs(np.sin(self.yaw))
        ex, ey = c * self.half[0] + s * self.half[1], s * self.half[0] + c * self.half[1]
        return np.array([self.center[0] - ex, self.center[1] - ey, self.center[0] + ex, self.center[1] + ey])


_Object = tuple[int, list[_Part]]  # (class index, parts)


def _grid(rng: np.random.Generator, a: float, b: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Jittered grid over [0, a] x [0, b] with spacing at most s: (u, v), float64 (M,) each."""
    nu, nv = max(1, int(np.ceil(a / s - 1e-9))), max(1, int(np.ceil(b / s - 1e-9)))
    iu, iv = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    m = nu * nv
    u = (iu.reshape(-1) + 0.5 + rng.uniform(-0.3, 0.3, m)) * (a / nu)
    v = (iv.reshape(-1) + 0.5 + rng.uniform(-0.3, 0.3, m)) * (b / nv)
    return u, v


def _sample_part(rng: np.random.Generator, p: _Part, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Surface points and unit normals of a part (bottom face only when raised): float64 (M, 3) each."""
    hx, hy, hz = p.half
    pts, nrm = [], []
    if p.cylinder:
        r = hx
        t, z = _grid(rng, 2 * np.pi * r, 2 * hz, s)
        ang = t / r
        n = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], 1)
        pts.append(np.stack([r * n[:, 0], r * n[:, 1], z - hz], 1))
        nrm.append(n)
        if not p.open_top:
            u, v = _grid(rng, 2 * r, 2 * r, s)
            keep = (u - r) ** 2 + (v - r) ** 2 < r * r
            pts.append(np.stack([u[keep] - r, v[keep] - r, np.full(keep.sum(), hz)], 1))
            nrm.append(np.tile([0.0, 0.0, 1.0], (int(keep.sum()), 1)))
    else:
        # (first axis, second axis, fixed axis, sign) for top, +-x and +-y faces, and the underside of a
        # raised part (a table top, a seat: scanners see it, and it joins the legs to the top)
        faces = [(0, 1, 2, 1.0), (1, 2, 0, 1.0), (1, 2, 0, -1.0), (0, 2, 1, 1.0), (0, 2, 1, -1.0)]
        if p.center[2] - hz > 0.05:
            faces.append((0, 1, 2, -1.0))
        for a0, a1, fixed, sign in faces:
            u, v = _grid(rng, 2 * p.half[a0], 2 * p.half[a1], s)
            q = np.empty((u.size, 3))
            q[:, a0], q[:, a1], q[:, fixed] = u - p.half[a0], v - p.half[a1], sign * p.half[fixed]
            n = np.zeros(3)
            n[fixed] = sign
            pts.append(q)
            nrm.append(np.tile(n, (u.size, 1)))
    q, n = np.concatenate(pts), np.concatenate(nrm)
    c, si = np.cos(p.yaw), np.sin(p.yaw)
    rot = np.array([[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]])
    return q @ rot.T + p.center, n @ rot.T


def _box(x0: float, y0: float, z0: float, x1: float, y1: float, z1: float) -> _Part:
    return _Part(np.array([(x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2]),
                 np.array([(x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2]))


# ---- furniture, each in its own frame: footprint centred on x = 0, front facing +y ----

def _chair(rng: np.random.Generator, cs: float | None = None) -> list[_Part]:
    cs = cs if cs is not None else rng.uniform(0.42, 0.5)
    hs, tb, leg = rng.uniform(0.42, 0.48), rng.uniform(0.04, 0.06), rng.uniform(0.03, 0.04)
    hb, h = rng.uniform(0.35, 0.5), cs / 2
    parts = [_box(-h, -h, hs - 0.05, h, h, hs), _box(-h, -h, hs, h, -h + tb, hs + hb)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (h - 0.02 - leg / 2), sy * (h - 0.02 - leg / 2)
            parts.append(_box(cx - leg / 2, cy - leg / 2, 0.0, cx + leg / 2, cy + leg / 2, hs - 0.05))
    return parts


def _table(rng: np.random.Generator, tw: float, td: float, th: float) -> list[_Part]:
    thick, leg, inset = rng.uniform(0.03, 0.05), 0.05, 0.05
    parts = [_box(-tw / 2, -td / 2, th - thick, tw / 2, td / 2, th)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (tw / 2 - inset - leg / 2), sy * (td / 2 - inset - leg / 2)
            parts.append(_box(cx - leg / 2, cy - leg / 2, 0.0, cx + leg / 2, cy + leg / 2, th - thick))
    return parts


def _sofa(rng: np.random.Generator, w: float) -> list[_Part]:
    d, hs, a = rng.uniform(0.8, 0.95), rng.uniform(0.4, 0.46), rng.uniform(0.12, 0.2)
    ha, tb, hb = rng.uniform(0.55, 0.65), rng.uniform(0.15, 0.22), rng.uniform(0.75, 0.9)
    return [_box(-w / 2, 0.0, 0.0, w / 2, d, hs), _box(-w / 2, 0.0, 0.0, w / 2, tb, hb),
            _box(-w / 2, 0.0, 0.0, -w / 2 + a, d, ha), _box(w / 2 - a, 0.0, 0.0, w / 2, d, ha)]


def _bin(rng: np.random.Generator) -> list[_Part]:
    r, h = rng.uniform(0.12, 0.2), rng.uniform(0.3, 0.55)
    return [_Part(np.array([0.0, r, h / 2]), np.array([r, r, h / 2]), cylinder=True, open_top=rng.random() < 0.5)]


def _shift(parts: list[_Part], dx: float, dy: float = 0.0, rot: float = 0.0) -> list[_Part]:
    return [p.moved(rot, np.array([dx, dy])) for p in parts]


# ---- groups: lists of objects in a frame whose x is along the wall (wall at y = 0, room at y > 0) ----

def _row(rng: np.random.Generator, cls: int, n: int, max_len: float) -> list[_Object]:
    """n objects of one class side by side, touching (gaps 0-4 mm), backs against the wall."""
    objs: list[_Object] = []
    x, wall_gap = 0.0, rng.uniform(0.0, 0.004)
    depth, height = rng.uniform(0.4, 0.55), rng.uniform(0.7, 1.1)
    same_height = rng.random() < 0.5
    chair_size = rng.uniform(0.42, 0.5)
    for _ in range(n):
        if cls == CABINET:
            w = rng.uniform(0.4, 0.8)
            h = height if same_height else rng.uniform(0.7, 1.1)
            parts = [_box(0.0, wall_gap, 0.0, w, wall_gap + depth, h)]
        elif cls == SOFA:
            w = rng.uniform(1.0, 1.6) if n > 1 else rng.uniform(1.4, 2.0)
            parts = _shift(_sofa(rng, w), w / 2, wall_gap)
        else:  # chairs facing the room, backs near the wall
            w = chair_size
            parts = _shift(_chair(rng, w), w / 2, wall_gap + w / 2 + rng.uniform(0.0, 0.04))
        if x + w > max_len and objs:
            break
        objs.append((cls, _shift(parts, x)))
        x += w + rng.uniform(0.0, 0.004)
    return objs


def _touching_row(rng: np.random.Generator, cls: int, max_len: float) -> list[_Object]:
    """A row of at least two touching objects (falls back to cabinets, the narrowest, if needed)."""
    for _ in range(5):
        objs = _row(rng, cls, int(rng.integers(2, 4)), max_len)
        if len(objs) >= 2:
            return objs
    return _row(rng, CABINET, 2, max_len)


def _table_group(rng: np.random.Generator, max_len: float) -> list[_Object]:
    """One table, or two pushed together (touching), with chairs around; centred at x = 0, y = 0."""
    td, th = rng.uniform(0.6, 0.9), rng.uniform(0.72, 0.78)
    two = rng.random() < 0.5 and max_len > 2.4
    widths = [rng.uniform(0.8, 1.1), rng.uniform(0.8, 1.1)] if two else [rng.uniform(0.9, min(1.5, max_len - 0.6))]
    gap = rng.uniform(0.0, 0.004)
    total = sum(widths) + gap * (len(widths) - 1)
    objs: list[_Object] = []
    x = -total / 2
    for w in widths:
        objs.append((TABLE, _shift(_table(rng, w, td, th), x + w / 2)))
        x += w + gap
    cs = rng.uniform(0.42, 0.5)
    x = -total / 2
    for w in widths:  # 0-2 chairs per table side, between the table's legs
        for side in (-1.0, 1.0):
            k = int(rng.integers(0, 3))
            touching = rng.random() < 0.5
            step = cs + (rng.uniform(0.0, 0.004) if touching else rng.uniform(0.05, 0.2))
            while k > 0 and k * step - (step - cs) > w - 0.3:
                k -= 1
            for i in range(k):
                push = rng.uniform(0.0, 0.25)  # how far the chair is pulled out from under the table
                yc = side * (td / 2 - cs / 2 + 0.06 + push)  # keeps the backrest clear of the table top
                rot = (0.0 if side < 0 else np.pi) + (0.0 if touching else rng.uniform(-0.08, 0.08))
                cx = x + w / 2 + (i - (k - 1) / 2) * step
                objs.append((CHAIR, _shift(_chair(rng, cs), cx, yc, rot)))
        x += w + gap
    return objs


def _footprint(objs: list[_Object]) -> np.ndarray:
    f = np.stack([p.footprint() for _, parts in objs for p in parts])
    return np.array([f[:, 0].min(), f[:, 1].min(), f[:, 2].max(), f[:, 3].max()])


def _place(rng: np.random.Generator, objs: list[_Object], size: tuple[float, float], on_wall: bool,
           taken: list[np.ndarray]) -> list[_Object] | None:
    """Move a group into the room without overlapping `taken` footprints; None when it does not fit."""
    wx, wy = size
    for _ in range(40):
        if on_wall:
            side = int(rng.integers(4))
            rot = side * np.pi / 2
            fp = _footprint(objs)
            length = wx if side % 2 == 0 else wy
            if fp[2] - fp[0] > length:
                continue
            t = rng.uniform(0.0, length - (fp[2] - fp[0])) - fp[0]
            # wall frame -> room: side 0 y=0 wall, 1 x=wx wall, 2 y=wy wall, 3 x=0 wall
            origin = [(t, 0.0), (wx, t), (wx - t, wy), (0.0, wy - t)][side]
            moved = [(c, _shift(parts, origin[0], origin[1], rot)) for c, parts in objs]
        else:
            rot = float(rng.integers(2)) * np.pi / 2 + rng.normal(0.0, 0.05)
            moved = [(c, _shift(parts, 0.0, 0.0, rot)) for c, parts in objs]
            fp = _footprint(moved)
            lo, hi = 0.25 - fp[:2], np.array([wx, wy]) - 0.25 - fp[2:]
            if (lo > hi).any():
                continue
            d = rng.uniform(lo, hi)
            moved = [(c, _shift(parts, d[0], d[1])) for c, parts in moved]
        fp = _footprint(moved)
        if fp[0] < -0.02 or fp[1] < -0.02 or fp[2] > wx + 0.02 or fp[3] > wy + 0.02:
            continue
        if all(fp[0] > o[2] + 0.12 or fp[2] < o[0] - 0.12 or fp[1] > o[3] + 0.12 or fp[3] < o[1] - 0.12
               for o in taken):  # 12 cm between groups
            taken.append(fp)
            return moved
    return None


def _furniture(rng: np.random.Generator, size: tuple[float, float], cfg: SyntheticConfig) -> list[_Object]:
    taken: list[np.ndarray] = []
    objs: list[_Object] = []
    long_side = max(size)
    # every room: a touching same-class row against a wall, then a table group in the free space
    row_cls = int(rng.choice([CABINET, CABINET, CHAIR, SOFA]))
    mandatory: list[tuple[Callable[[], list[_Object]], bool]] = [
        (lambda: _touching_row(rng, row_cls, long_side - 0.1), True),
        (lambda: _table_group(rng, min(size) - 0.5), False),
    ]
    extra_kinds: list[tuple[Callable[[], list[_Object]], bool]] = [
        (lambda: _row(rng, CABINET, int(rng.integers(1, 3)), long_side - 0.1), True),
        (lambda: _row(rng, SOFA, 1, long_side - 0.1), True),
        (lambda: _row(rng, CHAIR, int(rng.integers(1, 4)), long_side - 0.1), True),
        (lambda: [(BIN, _bin(rng))], True),
        (lambda: [(BIN, _bin(rng))], False),
        (lambda: [(CHAIR, _chair(rng))], False),
    ]
    n_extra = int(rng.integers(cfg.extra_groups[0], cfg.extra_groups[1] + 1))
    picks = [extra_kinds[int(i)] for i in rng.integers(0, len(extra_kinds), n_extra)]
    for i, (build, on_wall) in enumerate(mandatory + picks):
        for _ in range(3 if i < len(mandatory) else 1):  # rebuild (smaller draws) if it did not fit
            placed = _place(rng, build(), size, on_wall, taken)
            if placed is not None:
                objs.extend(placed)
                break
    return objs


def generate_scene(seed: int, config: SyntheticConfig | None = None, name: str | None = None) -> Scene:
    """One synthetic room, deterministic in `seed` (numpy Generator). Classes: SYNTHETIC_CLASSES.

    Returns a Scene: xyz float32 (N, 3) centred on the mean, rgb uint8 (N, 3), semantic int64 (N,)
    (every point labelled), instance int64 (N,) 0..I-1 for furniture, -100 on floor and walls.
    """
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    size = (float(rng.uniform(*cfg.room_size)), float(rng.uniform(*cfg.room_size)))
    wx, wy, hw = size[0], size[1], cfg.wall_height
    objects = _furniture(rng, size, cfg)

    # stuff: floor and four walls, as parts (walls are slabs behind their planes) for hiding object faces
    stuff_parts = [(FLOOR, _box(0.0, 0.0, -0.1, wx, wy, 0.0)),
                   (WALL, _box(0.0, -0.1, 0.0, wx, 0.0, hw)), (WALL, _box(wx, 0.0, 0.0, wx + 0.1, wy, hw)),
                   (WALL, _box(0.0, wy, 0.0, wx, wy + 0.1, hw)), (WALL, _box(-0.1, 0.0, 0.0, 0.0, wy, hw))]
    pts, nrm, part_of, obj_of, cls_of = [], [], [], [], []
    stuff_faces = [(FLOOR, np.array([0.0, 0.0, 0.0]), (0, 1), (wx, wy), np.array([0.0, 0.0, 1.0])),
                   (WALL, np.array([0.0, 0.0, 0.0]), (0, 2), (wx, hw), np.array([0.0, 1.0, 0.0])),
                   (WALL, np.array([0.0, wy, 0.0]), (0, 2), (wx, hw), np.array([0.0, -1.0, 0.0])),
                   (WALL, np.array([0.0, 0.0, 0.0]), (1, 2), (wy, hw), np.array([1.0, 0.0, 0.0])),
                   (WALL, np.array([wx, 0.0, 0.0]), (1, 2), (wy, hw), np.array([-1.0, 0.0, 0.0]))]
    for cls, origin, axes, (a, b), n in stuff_faces:
        u, v = _grid(rng, a, b, cfg.spacing)
        q = np.tile(origin, (u.size, 1))
        q[:, axes[0]] += u
        q[:, axes[1]] += v
        pts.append(q)
        nrm.append(np.tile(n, (u.size, 1)))
        part_of.append(np.full(u.size, -1))
        obj_of.append(np.full(u.size, -1))
        cls_of.append(np.full(u.size, cls))
    parts: list[_Part] = []
    for k, (cls, obj_parts) in enumerate(objects):
        for p in obj_parts:
            q, n = _sample_part(rng, p, cfg.spacing)
            pts.append(q)
            nrm.append(n)
            part_of.append(np.full(len(q), len(parts)))
            obj_of.append(np.full(len(q), k))
            cls_of.append(np.full(len(q), cls))
            parts.append(p)
    xyz, normal = np.concatenate(pts), np.concatenate(nrm)
    part_idx, obj_idx, semantic = np.concatenate(part_of), np.concatenate(obj_of), np.concatenate(cls_of)

    # hide surfaces inside other solids (touching faces, under furniture, against walls)
    margin = 0.005  # hides faces within 5 mm of another solid: touching gaps are 0-4 mm
    hidden = np.zeros(len(xyz), dtype=bool)
    for i, p in enumerate(parts):
        hidden |= p.contains(xyz, margin) & (part_idx != i)
    things = obj_idx >= 0
    for _, p in stuff_parts:
        hidden |= things & p.contains(xyz, margin)
    keep = ~hidden
    xyz, normal, obj_idx, semantic = xyz[keep], normal[keep], obj_idx[keep], semantic[keep]

    # colours: per-object base colour, simple shading, per-point noise
    n_obj = len(objects)
    base = np.empty((n_obj + 5, 3))
    floor_rgb, wall_rgb = (np.array(_PALETTE[c][int(rng.integers(len(_PALETTE[c])))], float) for c in (FLOOR, WALL))
    base[0], base[1] = floor_rgb + rng.normal(0, 8, 3), wall_rgb + rng.normal(0, 6, 3)
    for k, (cls, _) in enumerate(objects):
        style = _PALETTE[cls][int(rng.integers(len(_PALETTE[cls])))]
        base[k + 2] = np.array(style, float) + rng.normal(0, 12, 3)
    colour_idx = np.where(obj_idx >= 0, obj_idx + 2, np.where(semantic == FLOOR, 0, 1))
    shade = 0.78 + 0.22 * np.abs(normal @ _LIGHT)
    rgb = base[colour_idx] * shade[:, None] + rng.normal(0, cfg.color_noise, (len(xyz), 3))
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    xyz = xyz + rng.normal(0.0, cfg.noise, xyz.shape)
    order = rng.permutation(len(xyz))  # no ordering cue by class or object
    xyz, rgb, semantic, obj_idx = xyz[order], rgb[order], semantic[order], obj_idx[order]
    xyz = (xyz - xyz.mean(0)).astype(np.float32)
    # objects entirely hidden would leave gaps: relabel the surviving ones contiguously in object order
    present = np.unique(obj_idx[obj_idx >= 0])
    lookup = np.full(n_obj + 1, IGNORE, dtype=np.int64)
    lookup[present] = np.arange(present.size)
    instance = np.where(obj_idx >= 0, lookup[obj_idx], IGNORE)
    return Scene(xyz, rgb, semantic.astype(np.int64), instance.astype(np.int64),
                 name if name is not None else f"synthetic_{seed:06d}")


def generate_scenes(seeds: Iterable[int], config: SyntheticConfig | None = None) -> list[Scene]:
    """generate_scene for each seed."""
    return [generate_scene(int(s), config) for s in seeds]
