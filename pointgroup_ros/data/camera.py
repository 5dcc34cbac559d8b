"""Camera-like sequences: what a depth camera on a robot driving through a synthetic room sees, frame by frame.

A robot drives a closed loop (an ellipse) through the free floor of a room from `synthetic.generate_scene`,
tested against the room's samples (its base keeps 0.2 m from anything above the floor; 0.15 or 0.1 m in rooms too
crowded for that); a depth camera 1.2-1.5 m up on it, pitched 15-25 degrees down, faces the room's middle while
the robot turns it left and right, so the views sweep the room.
Each frame renders the room's surface samples through a pinhole camera with a depth buffer: every sample is
splatted over the pixels of its surface patch (about spacing * f / z pixels, on the sample's tangent plane), so
surfaces are closed and what is behind them is hidden. Range limits, depth noise growing with range
(sigma = noise_k * z^2, as structured-light and stereo sensors) and NaN holes follow a real driver; points are in
the camera's optical frame (REP 103: z forward, x right, y down), row-major, with the room's ground-truth class
and instance id per pixel (the room's instance ids: the same object keeps its id over the whole sequence).

Poses follow a robot's TF tree: odom (= the room frame) -> base_link on /tf at each frame's stamp; base_link ->
camera_link (pitched about y) -> camera_optical_frame on /tf_static. `write_sequence_bag` writes a rosbag2 (MCAP)
that plays like a recording, and the ground truth beside it (docs/CAMERA_SEQUENCES.md has the file format).

Seeds: sequence seed s uses room seed SEQUENCE_SEED_BASE + s, apart from the training (0..), held-out (1,000,000..)
and tuning (2,000,000..) rooms; the path and the noise come from their own streams of s. Sequences 0.. are the
held-out ones the figures are reported on; TUNING_SEQUENCE_SEED.. are for choosing thresholds.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..transforms import OPTICAL_IN_CAMERA_LINK, matrix_from_pose, transform_points
from .scene import IGNORE, DataError, Scene, read_npz_arrays
from .synthetic import SYNTHETIC_CLASSES, generate_scene

log = logging.getLogger(__name__)

__all__ = ["SEQUENCE_SEED_BASE", "TUNING_SEQUENCE_SEED", "CameraConfig", "CameraFrame", "Sequence", "Renderer", "View", "GroundTruth",
           "SequencePaths", "generate_sequence", "write_sequence_bag", "read_groundtruth", "groundtruth_path",
           "ODOM_FRAME", "BASE_FRAME", "CAMERA_FRAME", "OPTICAL_FRAME", "CLOUD_TOPIC", "START_NS"]

# Sequence rooms: a fourth seed range, after training (0..), held-out (1e6..) and tuning (2e6..) rooms.
SEQUENCE_SEED_BASE = 3_000_000
TUNING_SEQUENCE_SEED = 100_000  # tuning sequences 100,000.. (rooms 3,100,000..); held-out ones start at 0
ODOM_FRAME, BASE_FRAME, CAMERA_FRAME, OPTICAL_FRAME = "odom", "base_link", "camera_link", "camera_optical_frame"
CLOUD_TOPIC, TF_TOPIC, TF_STATIC_TOPIC = "/camera/depth/points", "/tf", "/tf_static"
START_NS = 1_700_000_000 * 1_000_000_000  # first frame's stamp: a fixed time, so bags are byte-identical per seed
GROUNDTRUTH_SUFFIX = ".groundtruth.npz"
GROUNDTRUTH_VERSION = 1
CAMERA_FORWARD = 0.05  # camera_link ahead of base_link's origin (m)

# Renderer. A sample's surface patch is a square of side 2 * SPLAT * spacing: the jittered grid of
# synthetic.py leaves samples up to 1.6 spacings apart, so 0.8 closes every surface without holes.
SPLAT = 0.8
MAX_SPLAT_PX = 24  # cap on a footprint's half-size; closer than ~0.2 m the room is below min_range anyway
NEAR_CLIP = 0.05  # samples closer than this (m) are not drawn (they would need huge footprints)
NORMAL_NEIGHBOURS = 8  # samples per tangent-plane fit
# On a tangent plane seen edge-on the depth runs away; a candidate pixel further than this (in spacings) in
# depth from its sample is left to other samples of the surface (which project densely there).
GRAZING_DEPTH = 1.0

# Path planning on the free floor (an occupancy grid of the room's samples above the floor).
GRID = 0.05  # occupancy cell (m)
OBSTACLE_HEIGHT = 0.05  # samples higher than this above the floor block the base (m)
ROBOT_RADII = (0.2, 0.15, 0.1)  # base clearance tried in turn until a loop of at least MIN_LOOP fits
MIN_LOOP = 0.2  # smallest semi-axis (m) accepted before trying a smaller robot
MAX_TURN = 0.5  # rad/s: facing the middle while driving turns the robot; it slows down to keep below this
SWEEP_DEG = (15.0, 35.0)  # amplitude of the left-right sweep on top of facing the middle
SWEEP_PERIOD = (4.0, 8.0)  # seconds


@dataclass(frozen=True)
class CameraConfig:
    """The depth camera and the robot carrying it.

    width, height: image size (pixels); hfov_deg: horizontal field of view (square pixels, principal point at
    the centre); min_range, max_range: valid depth z (m; outside: NaN, as a driver reports it); noise_k: depth
    noise sigma = noise_k * z^2 (m; 0.0015 is a Kinect-like structured-light sensor); fps: frame rate (Hz);
    organized: bag clouds as height x width images with NaN holes (True) or only the valid points (False).
    mount_height, pitch_deg: ranges the camera's height on the robot (m) and its downward pitch are drawn from
    per sequence; speed: the robot's speed along its loop (m/s).
    """

    width: int = 320
    height: int = 240
    hfov_deg: float = 75.0
    min_range: float = 0.3
    max_range: float = 6.0
    noise_k: float = 0.0015
    fps: float = 10.0
    organized: bool = True
    mount_height: tuple[float, float] = (1.2, 1.5)
    pitch_deg: tuple[float, float] = (15.0, 25.0)
    speed: float = 0.3

    def __post_init__(self) -> None:
        if not (8 <= self.width <= 4096 and 8 <= self.height <= 4096):
            raise ValueError(f"width and height must be 8..4096 pixels, got {self.width}x{self.height}")
        if not 10.0 <= self.hfov_deg <= 150.0:
            raise ValueError(f"hfov_deg must be in [10, 150], got {self.hfov_deg}")
        if not NEAR_CLIP <= self.min_range < self.max_range:
            raise ValueError(f"need {NEAR_CLIP} <= min_range < max_range, got {self.min_range}, {self.max_range}")
        if self.noise_k < 0 or self.fps <= 0 or self.speed <= 0:
            raise ValueError("noise_k must be >= 0, fps and speed > 0")
        if not 0.3 <= self.mount_height[0] <= self.mount_height[1]:
            raise ValueError(f"mount_height must satisfy 0.3 <= min <= max, got {self.mount_height}")
        if not -60.0 <= self.pitch_deg[0] <= self.pitch_deg[1] <= 80.0:
            raise ValueError(f"pitch_deg must satisfy -60 <= min <= max <= 80, got {self.pitch_deg}")

    @property
    def focal(self) -> float:
        """Focal length in pixels (fx = fy)."""
        return 0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) camera matrix K; pixel (row i, column j) has its centre at u = j, v = i."""
        f = self.focal
        return np.array([[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]])


@dataclass
class CameraFrame:
    """One frame, organized: H*W pixels in row-major order (pixel k is row k // W, column k % W).

    xyz float32 (H*W, 3) in the optical frame, NaN where nothing valid is seen; rgb uint8 (H*W, 3), 0 at holes;
    semantic, instance int32 (H*W,), the room's class and instance id, -100 at holes (instance -100 also on
    stuff); odom_from_base (4, 4): the robot's pose in the room at stamp_ns.
    """

    stamp_ns: int
    xyz: np.ndarray
    rgb: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    odom_from_base: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """bool (H*W,): pixels with a point."""
        return np.isfinite(self.xyz[:, 0])

    def cloud(self, organized: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(xyz, rgb, semantic, instance) as the bag's cloud holds them: every pixel (organized) or the valid
        pixels in row-major order."""
        if organized:
            return self.xyz, self.rgb, self.semantic, self.instance
        keep = self.valid
        return self.xyz[keep], self.rgb[keep], self.semantic[keep], self.instance[keep]


@dataclass
class Sequence:
    """A camera sequence: the room, the camera's static mounting and the frames.

    base_from_camera: camera_link on base_link; camera_from_optical: the optical frame on camera_link (REP 103);
    room_seed: the synthetic room's seed (-1 when the room was given).
    """

    name: str
    seed: int
    room_seed: int
    scene: Scene
    config: CameraConfig
    base_from_camera: np.ndarray
    camera_from_optical: np.ndarray
    frames: list[CameraFrame] = field(default_factory=list)
    class_names: tuple[str, ...] = SYNTHETIC_CLASSES

    @property
    def base_from_optical(self) -> np.ndarray:
        """The cloud's gravity transform with base_link as the gravity frame."""
        return self.base_from_camera @ self.camera_from_optical

    def room_from_optical(self, index: int) -> np.ndarray:
        """Maps frame `index`'s points into the room (odom) frame."""
        return self.frames[index].odom_from_base @ self.base_from_optical

    @property
    def stamps_ns(self) -> np.ndarray:
        return np.array([f.stamp_ns for f in self.frames], dtype=np.int64)

    def points_in_room(self, index: int) -> np.ndarray:
        """Frame `index`'s valid points (float64 (M, 3), row-major pixel order) in the room (odom) frame."""
        xyz = self.frames[index].xyz
        return transform_points(self.room_from_optical(index), xyz[np.isfinite(xyz[:, 0])].astype(np.float64))


# ---- rendering -------------------------------------------------------------------------------------------------

def _normals(xyz: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) of the samples' tangent planes: the least-variance direction of each sample's
    neighbourhood (sign arbitrary: only the plane is used)."""
    from scipy.spatial import cKDTree

    k = min(NORMAL_NEIGHBOURS, len(xyz))
    if k < 3:
        return np.tile([0.0, 0.0, 1.0], (len(xyz), 1))
    _, nb = cKDTree(xyz).query(xyz, k=k)
    local = xyz[nb] - xyz[nb].mean(axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))
    normal: np.ndarray = vectors[:, :, 0]
    return normal


@dataclass
class View:
    """One rendered image, organized (H*W pixels, row-major), fields as in CameraFrame."""

    xyz: np.ndarray
    rgb: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray


class Renderer:
    """Renders a Scene's surface samples as the depth camera of `config` sees them from a pose.

    spacing: the scene's sample spacing (m; synthetic rooms: 0.025). The samples' tangent planes are fitted
    once here; render() is then one vectorised pass per frame.
    """

    def __init__(self, scene: Scene, config: CameraConfig | None = None, spacing: float = 0.025) -> None:
        self.config = config or CameraConfig()
        self.spacing = float(spacing)
        self.points = np.asarray(scene.xyz, np.float64)
        self.normals = _normals(self.points)
        self.rgb = np.asarray(scene.rgb).astype(np.uint8)
        n = len(self.points)
        self.semantic = (np.full(n, IGNORE, np.int32) if scene.semantic is None
                         else scene.semantic.astype(np.int32))
        self.instance = (np.full(n, IGNORE, np.int32) if scene.instance is None
                         else scene.instance.astype(np.int32))

    def render(self, optical_from_room: np.ndarray, rng: np.random.Generator | None = None) -> View:
        """The frame seen by a camera whose optical frame maps room points by `optical_from_room` (4, 4).
        rng draws the depth noise (None: no noise). Returns organized arrays as CameraFrame documents."""
        cfg = self.config
        w, h, f = cfg.width, cfg.height, cfg.focal
        cx, cy = (w - 1) / 2, (h - 1) / 2
        m = np.asarray(optical_from_room, np.float64)
        q = self.points @ m[:3, :3].T + m[:3, 3]
        z = q[:, 2]
        # samples that can be seen at all: in front, not beyond range (+ noise margin), footprint on the image
        margin = 1.0 + 6.0 * cfg.noise_k * cfg.max_range
        front = np.flatnonzero((z > NEAR_CLIP) & (z < cfg.max_range * margin + 2 * self.spacing))
        q, z = q[front], z[front]
        u, v = f * q[:, 0] / z + cx, f * q[:, 1] / z + cy
        r = np.clip(SPLAT * self.spacing * f / z, 0.5, MAX_SPLAT_PX)  # >= 0.5: every sample covers a pixel
        on = (u + r > -0.5) & (u - r < w - 0.5) & (v + r > -0.5) & (v - r < h - 0.5)
        front, q, z, u, v, r = front[on], q[on], z[on], u[on], v[on], r[on]
        nrm = self.normals[front] @ m[:3, :3].T
        plane = np.einsum("ij,ij->i", nrm, q)  # n . q: the tangent plane n . X = plane
        half = np.ceil(r - 1e-9).astype(np.int64)
        cand_pix, cand_depth, cand_src = [], [], []
        for k in np.unique(half):  # one pass per footprint size: fixed-shape (points, offsets) arrays
            sel = np.flatnonzero(half == k)
            off = np.arange(-k, k + 1)
            cols = np.rint(u[sel])[:, None].astype(np.int64) + off[None, :]  # (n, 2k+1)
            rows = np.rint(v[sel])[:, None].astype(np.int64) + off[None, :]
            col_ok = (np.abs(cols - u[sel, None]) <= r[sel, None]) & (cols >= 0) & (cols < w)
            row_ok = (np.abs(rows - v[sel, None]) <= r[sel, None]) & (rows >= 0) & (rows < h)
            ok = row_ok[:, :, None] & col_ok[:, None, :]  # (n, 2k+1, 2k+1)
            ray_x = (cols - cx) / f
            ray_y = (rows - cy) / f
            nx, ny, nz = nrm[sel, 0], nrm[sel, 1], nrm[sel, 2]
            # depth where the pixel's ray (x, y, 1) * t meets the sample's tangent plane
            denom = nx[:, None, None] * ray_x[:, None, :] + ny[:, None, None] * ray_y[:, :, None] + nz[:, None, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = plane[sel, None, None] / denom
            ok &= np.abs(t - z[sel, None, None]) <= GRAZING_DEPTH * self.spacing
            ok &= t > NEAR_CLIP
            pi, ri, ci = np.nonzero(ok)
            cand_pix.append(rows[pi, ri] * w + cols[pi, ci])
            cand_depth.append(t[pi, ri, ci])
            cand_src.append(sel[pi])
        n_pix = w * h
        xyz = np.full((n_pix, 3), np.nan, np.float32)
        rgb = np.zeros((n_pix, 3), np.uint8)
        semantic = np.full(n_pix, IGNORE, np.int32)
        instance = np.full(n_pix, IGNORE, np.int32)
        if not cand_pix:
            return View(xyz, rgb, semantic, instance)
        pix, depth, src = np.concatenate(cand_pix), np.concatenate(cand_depth), np.concatenate(cand_src)
        # depth buffer: the nearest candidate per pixel; ties go to the lowest sample index (deterministic)
        zbuf = np.full(n_pix, np.inf)
        np.minimum.at(zbuf, pix, depth)
        win = depth == zbuf[pix]
        owner = np.full(n_pix, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(owner, pix[win], src[win])
        seen = np.flatnonzero(np.isfinite(zbuf))
        d = zbuf[seen]
        if rng is not None and cfg.noise_k > 0:
            d = d + rng.standard_normal(d.shape) * (cfg.noise_k * d * d)
        # what a driver reports: depth within range only; nearer surfaces still hide what is behind them
        keep = (d >= cfg.min_range) & (d <= cfg.max_range)
        seen, d = seen[keep], d[keep]
        sample = front[owner[seen]]
        xyz[seen, 0] = ((seen % w - cx) / f * d).astype(np.float32)
        xyz[seen, 1] = ((seen // w - cy) / f * d).astype(np.float32)
        xyz[seen, 2] = d.astype(np.float32)
        rgb[seen] = self.rgb[sample]
        semantic[seen] = self.semantic[sample]
        instance[seen] = self.instance[sample]
        return View(xyz, rgb, semantic, instance)


# ---- the robot's path ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Loop:
    centre: np.ndarray  # (2,) room x, y
    axes: np.ndarray  # (2,) semi-axes along x and y (m)
    radius: float  # base clearance it was planned with (m)


def _clearance(xyz: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(clearance grid (m): distance from each cell to the nearest cell with a sample above the floor or
    outside the room, grid origin (2,) = the room x, y of cell [0, 0]'s centre)."""
    from scipy import ndimage

    lo, hi = xyz[:, :2].min(0), xyz[:, :2].max(0)
    shape = np.ceil((hi - lo) / GRID).astype(np.int64) + 3  # one blocked cell of border on each side
    blocked = np.zeros(tuple(shape), bool)
    blocked[[0, -1], :] = True
    blocked[:, [0, -1]] = True
    high = xyz[xyz[:, 2] > floor + OBSTACLE_HEIGHT, :2]
    ij = np.floor((high - lo) / GRID).astype(np.int64) + 1
    blocked[ij[:, 0], ij[:, 1]] = True
    origin = lo - GRID / 2  # centre of cell [0, 0]
    return ndimage.distance_transform_edt(~blocked) * GRID, origin


def _lookup(grid: np.ndarray, origin: np.ndarray, xy: np.ndarray) -> np.ndarray:
    ij = np.rint((xy - origin) / GRID).astype(np.int64)
    inside = (ij >= 0).all(-1) & (ij[..., 0] < grid.shape[0]) & (ij[..., 1] < grid.shape[1])
    out = np.zeros(xy.shape[:-1])
    out[inside] = grid[ij[inside][:, 0], ij[inside][:, 1]]
    return out


def _plan_loop(xyz: np.ndarray, floor: float, rng: np.random.Generator) -> _Loop:
    """An axis-aligned ellipse through free floor: every point of it at least the robot's radius from any
    sample above the floor. Large loops are preferred (one drawn among those at least half the largest)."""
    grid, origin = _clearance(xyz, floor)
    lo, hi = xyz[:, :2].min(0), xyz[:, :2].max(0)
    centres = np.stack(np.meshgrid(np.arange(lo[0] + 0.2, hi[0] - 0.2, 0.1), np.arange(lo[1] + 0.2, hi[1] - 0.2, 0.1),
                                   indexing="ij"), -1).reshape(-1, 2)
    theta = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)
    ring = np.stack([np.cos(theta), np.sin(theta)], 1)
    semi = np.arange(0.1, 1.31, 0.1)
    best: _Loop | None = None
    for radius in ROBOT_RADII:
        found: list[tuple[float, np.ndarray, np.ndarray]] = []
        for a in semi:
            for b in semi[(semi >= 0.4 * a - 1e-9) & (semi <= 2.5 * a + 1e-9)]:  # no needle-thin loops
                pts = centres[:, None, :] + ring[None, :, :] * np.array([a, b])
                ok = _lookup(grid, origin, pts).min(axis=1) >= radius
                found.extend((a * b, centres[i], np.array([a, b])) for i in np.flatnonzero(ok))
        if found:
            area = np.array([fa for fa, _, _ in found])
            pick = np.flatnonzero(area >= 0.5 * area.max())
            _, centre, axes = found[int(pick[rng.integers(len(pick))])]
            best = _Loop(centre, axes, radius)
            if axes.min() >= MIN_LOOP:
                return best
    if best is not None:
        return best
    # nothing fits even the smallest robot (a room full of furniture): turn on the spot where it is most free
    i = np.unravel_index(int(np.argmax(grid)), grid.shape)
    log.warning("no free loop on the floor: the robot turns on the spot with %.2f m clearance", grid[i])
    return _Loop(origin + np.array(i) * GRID, np.array([0.05, 0.05]), float(grid[i]))


def _path(loop: _Loop, target: np.ndarray, times: np.ndarray, speed: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions (F, 2) and yaws (F,) at `times` (s): along the loop at `speed`, looking at `target` (the
    room's middle: views across the room, whichever part of it the loop is in) with a left-right sweep on top;
    slower where the view would otherwise turn faster than MAX_TURN."""
    start, direction = rng.uniform(0.0, 2 * np.pi), (1.0 if rng.random() < 0.5 else -1.0)
    amplitude = np.radians(rng.uniform(*SWEEP_DEG))
    period, phase = rng.uniform(*SWEEP_PERIOD), rng.uniform(0.0, 2 * np.pi)

    def along(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = start + direction * phi
        xy = loop.centre + np.stack([np.cos(theta), np.sin(theta)], 1) * loop.axes
        return xy, np.arctan2(target[1] - xy[:, 1], target[0] - xy[:, 0])

    # one lap, densely: time per step from the distance travelled and the turn of the viewing direction
    phi = np.linspace(0.0, 2 * np.pi, 4097)  # angle travelled along the loop
    xy, bearing = along(phi)
    step = np.maximum(np.linalg.norm(np.diff(xy, axis=0), axis=1) / speed,
                      np.abs(np.diff(np.unwrap(bearing))) / MAX_TURN)
    lap_time = np.concatenate([[0.0], np.cumsum(step)])
    laps, within = np.divmod(times, lap_time[-1])
    positions, look = along(2 * np.pi * laps + np.interp(within, lap_time, phi))
    return positions, look + amplitude * np.sin(2 * np.pi * times / period + phase)


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


# ---- sequences -------------------------------------------------------------------------------------------------

def generate_sequence(seed: int, frames: int = 60, config: CameraConfig | None = None, scene: Scene | None = None,
                      on_frame: Callable[[int], None] | None = None) -> Sequence:
    """A camera sequence, deterministic in `seed` (>= 0).

    The room is generate_scene(SEQUENCE_SEED_BASE + seed) unless `scene` is given (z up, metres, labelled;
    e.g. a training room to draw views of). The camera's height and pitch, the loop, the start, direction and
    sweep come from the seed's path stream; the depth noise from its noise stream. on_frame(i) is called after
    each frame (progress bars).
    """
    if seed < 0 or frames < 1:
        raise ValueError(f"seed must be >= 0 and frames >= 1, got {seed} and {frames}")
    cfg = config or CameraConfig()
    room_seed = SEQUENCE_SEED_BASE + seed if scene is None else -1
    if scene is None:
        scene = generate_scene(room_seed)
    path_rng = np.random.default_rng([seed, 1])
    xyz = np.asarray(scene.xyz, np.float64)
    floor = float(np.percentile(xyz[:, 2], 5))  # the floor is most of the lowest samples
    height, pitch = path_rng.uniform(*cfg.mount_height), math.radians(path_rng.uniform(*cfg.pitch_deg))
    # positive pitch about y tilts camera_link's x (forward) down, as evaluation/views.py's camera rig
    base_from_camera = matrix_from_pose((CAMERA_FORWARD, 0.0, height), (0.0, math.sin(pitch / 2), 0.0,
                                                                        math.cos(pitch / 2)))
    camera_from_optical = matrix_from_pose(np.zeros(3), OPTICAL_IN_CAMERA_LINK)
    base_from_optical = base_from_camera @ camera_from_optical
    loop = _plan_loop(xyz, floor, path_rng)
    stamps = START_NS + np.rint(np.arange(frames) * (1e9 / cfg.fps)).astype(np.int64)
    middle = (xyz[:, :2].min(0) + xyz[:, :2].max(0)) / 2
    positions, yaws = _path(loop, middle, (stamps - START_NS) / 1e9, cfg.speed, path_rng)
    renderer = Renderer(scene, cfg)
    seq = Sequence(f"sequence_{seed:06d}", int(seed), room_seed, scene, cfg, base_from_camera, camera_from_optical)
    for i in range(frames):
        odom_from_base = matrix_from_pose((positions[i, 0], positions[i, 1], floor), _yaw_quaternion(yaws[i]))
        optical_from_room = np.linalg.inv(odom_from_base @ base_from_optical)
        view = renderer.render(optical_from_room, np.random.default_rng([seed, 2, i]))
        seq.frames.append(CameraFrame(int(stamps[i]), view.xyz, view.rgb, view.semantic, view.instance,
                                      odom_from_base))
        if on_frame is not None:
            on_frame(i)
    return seq


# ---- bag and ground truth --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SequencePaths:
    bag: Path  # the rosbag2 folder (metadata.yaml + one .mcap)
    groundtruth: Path  # <bag>.groundtruth.npz beside it


def groundtruth_path(bag: str | Path) -> Path:
    """Where a sequence bag's ground truth lies: OUT/<name>.groundtruth.npz beside the bag folder OUT/<name>."""
    bag = Path(bag)
    return bag.with_name(bag.name + GROUNDTRUTH_SUFFIX)


def _transient_local() -> list[Any]:
    """The QoS /tf_static is offered with (latched: a late subscriber still gets the static transforms)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, zero, zero,
                QosLiveliness.AUTOMATIC, zero, False)]


def _replace(tmp: Path, final: Path, overwrite: bool) -> None:
    if final.exists() or final.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{final} exists (pass overwrite=True to replace it)")
        if final.is_dir():
            if not (final / "metadata.yaml").is_file():  # never remove a folder that is not a bag
                raise FileExistsError(f"{final} exists and is not a rosbag2 folder; not replacing it")
            shutil.rmtree(final)
        else:
            final.unlink()
    os.replace(tmp, final)


def write_sequence_bag(sequence: Sequence, out_dir: str | Path, overwrite: bool = False,
                       compress: bool = False) -> SequencePaths:
    """Write OUT_DIR/<name>/ (rosbag2, MCAP: /camera/depth/points, /tf, /tf_static) and
    OUT_DIR/<name>.groundtruth.npz. compress: zstd chunks (smaller; `ros2 bag play` reads them too).
    Both are written under temporary names and renamed at the end. Returns their paths."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    from ..ros.cloud import encode_cloud
    from ..ros.kit import RosbagsKit
    from ..ros.typestore import make_typestore

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bag, gt = out_dir / sequence.name, groundtruth_path(out_dir / sequence.name)
    if not overwrite:
        for path in (bag, gt):
            if path.exists():
                raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    store = make_typestore("humble")
    kit = RosbagsKit(store)
    cloud_type, tf_type = "sensor_msgs/msg/PointCloud2", "tf2_msgs/msg/TFMessage"

    def header(frame: str, ns: int) -> Any:
        stamp = kit.make("builtin_interfaces/msg/Time", sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        return kit.make("std_msgs/msg/Header", stamp=stamp, frame_id=frame)

    def transform(parent: str, child: str, ns: int, matrix: np.ndarray) -> Any:
        from scipy.spatial.transform import Rotation

        t, q = matrix[:3, 3], Rotation.from_matrix(matrix[:3, :3]).as_quat()
        return kit.make("geometry_msgs/msg/TransformStamped", header=header(parent, ns), child_frame_id=child,
                        transform=kit.make(
                            "geometry_msgs/msg/Transform",
                            translation=kit.make("geometry_msgs/msg/Vector3", x=float(t[0]), y=float(t[1]),
                                                 z=float(t[2])),
                            rotation=kit.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]),
                                              z=float(q[2]), w=float(q[3]))))

    organized = sequence.config.organized
    h = sequence.config.height
    # staged in a hidden sibling folder under the final names (rosbags names the .mcap after its folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{sequence.name}.", dir=out_dir))
    tmp_bag, tmp_gt = staging / bag.name, staging / gt.name
    try:
        writer = Writer(tmp_bag, version=8, storage_plugin=StoragePlugin.MCAP)
        if compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        with writer:
            static = writer.add_connection(TF_STATIC_TOPIC, tf_type, typestore=store,
                                           offered_qos_profiles=_transient_local())
            tf = writer.add_connection(TF_TOPIC, tf_type, typestore=store)
            points = writer.add_connection(CLOUD_TOPIC, cloud_type, typestore=store)
            first = sequence.frames[0].stamp_ns if sequence.frames else START_NS
            msg = kit.make(tf_type, transforms=[
                transform(BASE_FRAME, CAMERA_FRAME, first, sequence.base_from_camera),
                transform(CAMERA_FRAME, OPTICAL_FRAME, first, sequence.camera_from_optical)])
            writer.write(static, first, store.serialize_cdr(msg, tf_type))
            for frame in sequence.frames:
                ns = frame.stamp_ns
                msg = kit.make(tf_type, transforms=[transform(ODOM_FRAME, BASE_FRAME, ns, frame.odom_from_base)])
                writer.write(tf, ns, store.serialize_cdr(msg, tf_type))
                xyz, rgb, _, _ = frame.cloud(organized)
                cloud = encode_cloud(kit, header(OPTICAL_FRAME, ns), xyz, rgb, height=h if organized else 1)
                writer.write(points, ns, store.serialize_cdr(cloud, cloud_type))
        _save_groundtruth(sequence, tmp_gt)
        _replace(tmp_bag, bag, overwrite)
        _replace(tmp_gt, gt, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SequencePaths(bag, gt)


def _save_groundtruth(sequence: Sequence, path: Path) -> None:
    cfg = sequence.config
    shape = (len(sequence.frames), cfg.height, cfg.width)

    def stack(key: str) -> np.ndarray:
        return np.stack([getattr(f, key) for f in sequence.frames]).reshape(shape).astype(np.int16)

    arrays: dict[str, Any] = {  # Any: numpy's stubs misread savez's **kwargs
        "version": np.array(GROUNDTRUTH_VERSION),
        "name": np.array(sequence.name),
        "seed": np.array(sequence.seed, np.int64),
        "room_seed": np.array(sequence.room_seed, np.int64),
        "room": np.array(sequence.scene.name),
        "class_names": np.array(sequence.class_names),
        "stamps_ns": sequence.stamps_ns,
        "valid": np.stack([f.valid for f in sequence.frames]).reshape(shape),
        "semantic": stack("semantic"),
        "instance": stack("instance"),
        "odom_from_base": np.stack([f.odom_from_base for f in sequence.frames]).astype(np.float64),
        "base_from_camera": sequence.base_from_camera,
        "camera_from_optical": sequence.camera_from_optical,
        "intrinsics": cfg.intrinsics,
        "organized": np.array(cfg.organized),
        "config": np.array(repr(asdict(cfg))),
        "frame_ids": np.array([ODOM_FRAME, BASE_FRAME, CAMERA_FRAME, OPTICAL_FRAME]),
        "cloud_topic": np.array(CLOUD_TOPIC),
    }
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)


@dataclass
class GroundTruth:
    """A sequence's ground truth as read back (keys in docs/CAMERA_SEQUENCES.md).

    semantic, instance int16 (F, H, W), -100 = none; valid bool (F, H, W): pixels with a point in the bag's
    cloud; stamps_ns int64 (F,): each frame's cloud stamp; odom_from_base (F, 4, 4); intrinsics (3, 3).
    """

    name: str
    seed: int
    room_seed: int
    room: str
    class_names: tuple[str, ...]
    stamps_ns: np.ndarray
    valid: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    odom_from_base: np.ndarray
    base_from_camera: np.ndarray
    camera_from_optical: np.ndarray
    intrinsics: np.ndarray
    organized: bool

    @property
    def num_frames(self) -> int:
        return int(self.stamps_ns.shape[0])

    def frame_index(self, stamp_ns: int) -> int:
        """The frame whose cloud has this header stamp; KeyError if none."""
        i = int(np.searchsorted(self.stamps_ns, stamp_ns))
        if i >= self.num_frames or int(self.stamps_ns[i]) != int(stamp_ns):
            raise KeyError(f"{self.name}: no frame at {stamp_ns} ns")
        return i

    def labels(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(semantic, instance) int64 aligned with frame `index`'s cloud in the bag: one per pixel (organized)
        or per valid pixel in row-major order."""
        sem, inst = self.semantic[index].reshape(-1), self.instance[index].reshape(-1)
        if not self.organized:
            keep = self.valid[index].reshape(-1)
            sem, inst = sem[keep], inst[keep]
        return sem.astype(np.int64), inst.astype(np.int64)


def read_groundtruth(path: str | Path) -> GroundTruth:
    """Read <name>.groundtruth.npz (or find it beside a sequence's bag folder). DataError if malformed."""
    path = Path(path)
    if path.is_dir():
        path = groundtruth_path(path)
    arrays = read_npz_arrays(path, "ground-truth file")
    need = ("version", "name", "seed", "room_seed", "room", "class_names", "stamps_ns", "valid", "semantic",
            "instance", "odom_from_base", "base_from_camera", "camera_from_optical", "intrinsics", "organized")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    if int(arrays["version"]) != GROUNDTRUTH_VERSION:
        raise DataError(f"{path}: ground-truth version {int(arrays['version'])}, expected {GROUNDTRUTH_VERSION}")
    f = arrays["stamps_ns"].shape[0]
    grid = arrays["valid"].shape
    for key in ("valid", "semantic", "instance"):
        if arrays[key].ndim != 3 or arrays[key].shape != grid or grid[0] != f:
            raise DataError(f"{path}: {key} must have shape (frames, height, width) = ({f}, H, W), "
                            f"got {arrays[key].shape}")
    if arrays["odom_from_base"].shape != (f, 4, 4):
        raise DataError(f"{path}: odom_from_base must have shape ({f}, 4, 4), got {arrays['odom_from_base'].shape}")
    return GroundTruth(
        name=str(arrays["name"]), seed=int(arrays["seed"]), room_seed=int(arrays["room_seed"]),
        room=str(arrays["room"]), class_names=tuple(str(c) for c in arrays["class_names"]),
        stamps_ns=arrays["stamps_ns"].astype(np.int64), valid=arrays["valid"].astype(bool),
        semantic=arrays["semantic"], instance=arrays["instance"], odom_from_base=arrays["odom_from_base"],
        base_from_camera=arrays["base_from_camera"], camera_from_optical=arrays["camera_from_optical"],
        intrinsics=arrays["intrinsics"], organized=bool(arrays["organized"]))

