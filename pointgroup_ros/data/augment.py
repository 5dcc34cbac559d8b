"""Training augmentation and crop (the authors' ScanNet loader), vectorised numpy.

Training: xyz' = xyz @ M with M = (I + N(0, jitter) 3x3) with x randomly flipped, times a rotation about z by
U[0, 2pi). Voxel coordinates = xyz' * scale, then elastic distortions (granularity, magnitude in voxels at
scale 50, scaled by scale / 50) that move only the voxel coordinates; xyz' (undistorted, metres) stays the
coordinate feature and the frame of the offset targets. Then the voxel coordinates are shifted so their
minimum is 0 and cropped to at most max_npoint points by a window that starts at full_scale[1] voxels and
shrinks by 32 in x and y at a random offset; instances are relabelled 0..I-1. Colours: rgb / 127.5 - 1 plus
one N(0, color_noise) 3-vector per scene.
Validation / test: no augmentation, no crop, voxel coordinates = xyz * scale, colours without noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .scene import Scene, relabel_contiguous


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation strengths; the defaults are the authors'."""

    jitter: float = 0.1  # std of the 3x3 matrix noise
    flip: bool = True  # random sign of x
    rotate: bool = True  # rotation about z by U[0, 2pi)
    # (granularity, magnitude) pairs, in voxels at scale 50
    elastic: tuple[tuple[float, float], ...] = ((6.0, 40.0), (20.0, 160.0))
    color_noise: float = 0.1  # std of the per-scene colour shift (in the [-1, 1] colour scale)


@dataclass
class Sample:
    """One scene ready for collation (all numpy).

    xyz: float32 (N, 3) metres (augmented, undistorted); rgb: float32 (N, 3) about [-1, 1];
    voxel_xyz: float32 (N, 3) voxel units (distorted and shifted in training); semantic / instance: int64 (N,)
    or None, instance ids 0..num_instances-1 or -100; point_idx: int64 (N,) the kept points' indices in the
    scene (the crop); name: the scene name.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    voxel_xyz: np.ndarray
    semantic: np.ndarray | None
    instance: np.ndarray | None
    num_instances: int
    point_idx: np.ndarray
    name: str = ""


def random_transform(rng: np.random.Generator, jitter: float = 0.1, flip: bool = True,
                     rotate: bool = True) -> np.ndarray:
    """float64 (3, 3) M for row vectors (xyz @ M): jitter, then x flip, then rotation about z."""
    m = np.eye(3)
    if jitter:
        m += rng.standard_normal((3, 3)) * jitter
    if flip and rng.random() < 0.5:
        m[0, 0] = -m[0, 0]
    if rotate:
        t = rng.random() * 2 * np.pi
        c, s = np.cos(t), np.sin(t)
        m = m @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return m


def elastic_distortion(coords: np.ndarray, granularity: float, magnitude: float,
                       rng: np.random.Generator) -> np.ndarray:
    """coords + magnitude * a smooth random field: float (N, 3) voxel units -> float32 (N, 3).

    The field is Gaussian noise on a lattice over [-(b-1)g, (b-1)g] per axis (b = max|coord| // g + 3 nodes,
    so nodes are 2g apart, as in the authors' code), blurred twice by a 3-tap box filter per axis, and
    interpolated trilinearly at each point.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if not len(coords):
        return coords.astype(np.float32)
    g = float(granularity)
    b = (np.abs(coords).max(0) // g).astype(np.int64) + 3
    noise = rng.standard_normal((3, *b.tolist())).astype(np.float32)
    for _ in range(2):
        noise = ndimage.uniform_filter(noise, size=(1, 3, 3, 3), mode="constant", cval=0.0)
    # lattice index of each point: node i sits at -(b-1)g + 2g i
    idx = ((coords + (b - 1) * g) / (2 * g)).T
    disp = np.stack([ndimage.map_coordinates(noise[k], idx, order=1, mode="nearest") for k in range(3)], 1)
    return (coords + disp * magnitude).astype(np.float32)


def crop(voxel_xyz: np.ndarray, max_npoint: int, full_scale: int, rng: np.random.Generator,
         step: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Shift so the minimum is 0 and keep at most max_npoint points inside a window.

    voxel_xyz: float (N, 3). Returns (float32 (N, 3) shifted coordinates, bool (N,) kept). The window starts
    at full_scale voxels per axis and shrinks by `step` in x and y, each time at a random offset, while it
    holds more than max_npoint points (the authors' crop). In the degenerate case where no window of at least
    `step` voxels fits, a random subset of max_npoint points is kept.
    """
    v = np.asarray(voxel_xyz, dtype=np.float32)
    v = v - v.min(0) if len(v) else v
    keep = np.ones(len(v), dtype=bool)
    if len(v) <= max_npoint:
        return v, keep
    room = v.max(0)
    window = np.full(3, float(full_scale), dtype=np.float32)
    shifted = v
    while keep.sum() > max_npoint and window[0] > 0:
        offset = np.minimum(window - room + 0.001, 0.0) * rng.random(3).astype(np.float32)
        shifted = v + offset
        keep = (shifted >= 0).all(1) & (shifted < window).all(1)
        window[:2] -= step
    if keep.sum() > max_npoint:  # windows ran out: subsample the last one
        idx = rng.choice(np.flatnonzero(keep), max_npoint, replace=False)
        keep = np.zeros(len(v), dtype=bool)
        keep[idx] = True
    return shifted, keep


def scale_rgb(rgb: np.ndarray) -> np.ndarray:
    """0..255 colours -> float32 [-1, 1] (rgb / 127.5 - 1)."""
    return np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0


def augment_scene(scene: Scene, rng: np.random.Generator, scale: float, train: bool,
                  cfg: AugmentConfig | None = None, max_npoint: int = 250_000, full_scale: int = 512) -> Sample:
    """Scene -> Sample: training augmentation + crop when `train`, else the plain validation/test input."""
    cfg = cfg or AugmentConfig()
    xyz = scene.xyz.astype(np.float64)
    if not train:
        return Sample(scene.xyz, scale_rgb(scene.rgb), (xyz * scale).astype(np.float32), scene.semantic,
                      scene.instance, scene.num_instances, np.arange(scene.num_points, dtype=np.int64), scene.name)
    xyz = xyz @ random_transform(rng, cfg.jitter, cfg.flip, cfg.rotate)
    vox = xyz * scale
    for gran, mag in cfg.elastic:
        vox = elastic_distortion(vox, gran * scale / 50.0, mag * scale / 50.0, rng)
    vox, keep = crop(vox, max_npoint, full_scale, rng)
    point_idx = np.flatnonzero(keep)
    full = len(point_idx) == scene.num_points
    rgb = scale_rgb(scene.rgb if full else scene.rgb[point_idx])
    if cfg.color_noise:
        rgb += (rng.standard_normal(3) * cfg.color_noise).astype(np.float32)
    semantic = instance = None
    n_inst = 0
    if scene.semantic is not None and scene.instance is not None:
        semantic = scene.semantic if full else scene.semantic[point_idx]
        instance, n_inst = relabel_contiguous(scene.instance if full else scene.instance[point_idx])
    xyz32 = xyz.astype(np.float32) if full else xyz[point_idx].astype(np.float32)
    return Sample(xyz32, rgb, vox if full else vox[point_idx], semantic, instance, n_inst, point_idx, scene.name)

