"""Point cloud files without ROS: read .pcd / .ply / .npy / .npz, write labeled .ply / .npz and a PNG view.

Readers return a CloudArrays (xyz float32 metres, optional uint8 colours, validity mask, organized shape).
Everything is vectorised numpy; PCD binary_compressed is decompressed with python-lzf (C).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:  # only for annotations: keep this module importable without the model stack
    from .pipeline import Segmentation

CLOUD_SUFFIXES = (".pcd", ".ply", ".npy", ".npz")
GREY = (128, 128, 128)  # colour of points that belong to no instance
_MAX_POINTS = 200_000_000  # refuse absurd headers before allocating


class CloudFileError(ValueError):
    """A cloud file is malformed or unsupported; the message names the file and what was wrong."""


@dataclass
class CloudArrays:
    """One point cloud as arrays. N = height * width points, in row-major order.

    xyz: float32 (N, 3) metres; NaN / Inf where the sensor had no return (organized clouds).
    rgb: uint8 (N, 3) colours, or None when the source has no colour.
    valid: bool (N,), True where all of x, y, z are finite.
    height, width: organized shape (height 1 for an unorganized cloud).
    extra: other per-point fields kept from the source (e.g. 'label'), each (N,) or (N, k).
    """

    xyz: np.ndarray
    rgb: np.ndarray | None
    valid: np.ndarray
    height: int
    width: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])


def make_cloud(xyz: np.ndarray, rgb: np.ndarray | None = None, height: int = 1, width: int | None = None,
               extra: Mapping[str, np.ndarray] | None = None) -> CloudArrays:
    """CloudArrays from arrays (xyz cast to float32, validity computed); checks shapes."""
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise CloudFileError(f"xyz must have shape (N, 3), got {xyz.shape}")
    xyz = xyz.astype(np.float32, copy=False)
    n = xyz.shape[0]
    width = n // max(height, 1) if width is None else width
    if height * width != n:
        raise CloudFileError(f"organized shape {height} x {width} does not match {n} points")
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (n, 3):
            raise CloudFileError(f"rgb must have shape ({n}, 3), got {rgb.shape}")
        rgb = colours_to_uint8(rgb)
    return CloudArrays(xyz, rgb, np.isfinite(xyz).all(axis=1), height, width, dict(extra or {}))


def colours_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """uint8 (N, 3) from uint8, 0-255 numbers or 0-1 floats (floats whose max <= 1 are taken as 0-1)."""
    if rgb.dtype == np.uint8:
        return rgb
    values = rgb.astype(np.float32)
    if np.issubdtype(rgb.dtype, np.floating) and values.size and np.nanmax(values) <= 1.0:
        values = values * 255.0
    return np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """uint8 (N, 3) from PCL-packed colours: uint32 (or float32 bit pattern) 0x??RRGGBB, (N,)."""
    v = np.ascontiguousarray(packed).view(np.uint32) if packed.dtype.itemsize == 4 else packed.astype(np.uint32)
    out = np.empty((v.shape[0], 3), np.uint8)
    out[:, 0] = v >> 16
    out[:, 1] = v >> 8
    out[:, 2] = v
    return out


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint32 (N,) 0x00RRGGBB from uint8 (N, 3) (alpha 0, so the float32 view is never NaN)."""
    c = rgb.astype(np.uint32)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


# ----------------------------------------------------------------------------------------------- readers

def read_cloud(path: str | Path) -> CloudArrays:
    """Read a .pcd (ascii / binary / binary_compressed), .ply (ascii / binary), .npy or .npz cloud."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CLOUD_SUFFIXES:
        raise CloudFileError(f"{path}: unsupported cloud file type {suffix!r} (supported: {', '.join(CLOUD_SUFFIXES)})")
    if not path.is_file():
        raise CloudFileError(f"{path}: no such file")
    reader = {".pcd": _read_pcd, ".ply": _read_ply, ".npy": _read_npy, ".npz": _read_npz}[suffix]
    try:
        return reader(path)
    except CloudFileError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise CloudFileError(f"{path}: {exc}") from None


_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
              ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}


def _read_pcd(path: Path) -> CloudArrays:
    raw = path.read_bytes()
    header: dict[str, list[str]] = {}
    pos = 0
    while True:  # header lines up to and including DATA
        end = raw.find(b"\n", pos)
        if end < 0:
            raise CloudFileError("PCD header has no DATA line")
        line = raw[pos:end].decode("ascii", "replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    try:
        names = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        types = [t.upper() for t in header["TYPE"]]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(names))]
        width, height = int(header["WIDTH"][0]), int(header.get("HEIGHT", ["1"])[0])
        n = int(header.get("POINTS", [str(width * height)])[0])
        data_kind = header["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as exc:
        raise CloudFileError(f"PCD header is incomplete or malformed ({exc})") from None
    if not (len(names) == len(sizes) == len(types) == len(counts)):
        raise CloudFileError("PCD header FIELDS / SIZE / TYPE / COUNT have different lengths")
    if not 0 <= n <= _MAX_POINTS or width * height != n:
        raise CloudFileError(f"PCD WIDTH x HEIGHT = {width} x {height} does not match POINTS {n}")
    try:
        formats = [np.dtype(_PCD_TYPES[(t, s)]) for t, s in zip(types, sizes)]
    except KeyError as exc:
        raise CloudFileError(f"PCD field type/size {exc.args[0]} is not supported") from None
    # unnamed padding fields are called '_' in PCL; make names unique
    uniq = [f"{name}__{i}" if names.count(name) > 1 else name for i, name in enumerate(names)]
    dtype = np.dtype({"names": uniq, "formats": [(f, (c,)) if c > 1 else f for f, c in zip(formats, counts)]})
    body = raw[pos:]
    points: Mapping[str, np.ndarray] | np.ndarray
    if data_kind == "ascii":
        table = np.loadtxt(body.decode("ascii").splitlines(), dtype=np.float64, ndmin=2) if n else \
            np.zeros((0, sum(counts)))
        if table.shape != (n, sum(counts)):
            raise CloudFileError(f"PCD ascii body has shape {table.shape}, expected ({n}, {sum(counts)})")
        columns, col = {}, 0
        for name, fmt, c in zip(uniq, formats, counts):
            block = table[:, col:col + c]
            columns[name] = (block[:, 0] if c == 1 else block).astype(fmt)
            col += c
        points = columns
    elif data_kind == "binary":
        if len(body) < n * dtype.itemsize:
            raise CloudFileError(f"PCD binary body has {len(body)} bytes, expected {n * dtype.itemsize}")
        points = np.frombuffer(body, dtype, count=n)
    elif data_kind == "binary_compressed":
        points = _pcd_decompress(body, n, uniq, formats, counts)
    else:
        raise CloudFileError(f"PCD DATA {data_kind!r} is not supported (ascii, binary, binary_compressed)")
    return _cloud_from_fields(points, height, width)


def _pcd_decompress(body: bytes, n: int, names: list[str], formats: list[np.dtype],
                    counts: list[int]) -> dict[str, np.ndarray]:
    """binary_compressed: uint32 compressed size, uint32 raw size, LZF data holding each field's column in turn."""
    import lzf

    if len(body) < 8:
        raise CloudFileError("PCD binary_compressed body is truncated")
    csize, usize = (int(v) for v in np.frombuffer(body[:8], "<u4"))
    expected = n * sum(f.itemsize * c for f, c in zip(formats, counts))
    if usize != expected or csize > len(body) - 8:
        raise CloudFileError(f"PCD binary_compressed sizes are inconsistent (compressed {csize} of "
                             f"{len(body) - 8} bytes, raw {usize}, expected raw {expected})")
    try:
        raw = lzf.decompress(body[8:8 + csize], usize) if usize else b""
    except ValueError:
        raw = None
    if raw is None or len(raw) != usize:
        raise CloudFileError("PCD binary_compressed data does not decompress (corrupt LZF stream)")
    columns: dict[str, np.ndarray] = {}
    offset = 0
    for name, fmt, c in zip(names, formats, counts):
        size = n * fmt.itemsize * c
        col = np.frombuffer(raw, fmt, count=n * c, offset=offset)
        columns[name] = col.reshape(n, c) if c > 1 else col
        offset += size
    return columns


def _cloud_from_fields(points: Mapping[str, np.ndarray] | np.ndarray, height: int, width: int) -> CloudArrays:
    names = list(points.dtype.names or ()) if isinstance(points, np.ndarray) else list(points)
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise CloudFileError(f"no {', '.join(missing)} field(s) (fields: {', '.join(names)})")
    xyz = np.stack([np.asarray(points[c], np.float32) for c in "xyz"], axis=1)
    rgb = None
    if "rgb" in names or "rgba" in names:
        rgb = unpack_rgb(np.asarray(points["rgb" if "rgb" in names else "rgba"]))
    elif all(c in names for c in ("r", "g", "b")):
        rgb = colours_to_uint8(np.stack([np.asarray(points[c]) for c in ("r", "g", "b")], axis=1))
    extra: dict[str, np.ndarray] = {k: np.array(points[k]) for k in ("label", "intensity", "instance")
                                    if k in names}
    return make_cloud(xyz, rgb, height, width, extra)


def _read_ply(path: Path) -> CloudArrays:
    from .data.ply import read_ply
    from .data.scene import DataError

    try:
        points = read_ply(path)
    except DataError as exc:
        raise CloudFileError(str(exc)) from None
    n = len(next(iter(points.values()))) if points else 0
    if not 0 <= n <= _MAX_POINTS:
        raise CloudFileError(f"PLY vertex count {n} is absurd")
    for src, dst in (("red", "r"), ("green", "g"), ("blue", "b")):
        if src in points:
            points[dst] = points.pop(src)
    return _cloud_from_fields(points, 1, n)


def _read_npy(path: Path) -> CloudArrays:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise CloudFileError(f"not a plain numpy array ({exc})") from None
    if arr.dtype.names:
        return _cloud_from_fields(arr.reshape(-1), 1, arr.size)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise CloudFileError(f".npy cloud must have shape (N, 3) xyz or (N, 6) xyz + rgb, got {arr.shape}")
    rgb = arr[:, 3:6] if arr.shape[1] >= 6 else None
    return make_cloud(arr[:, :3], rgb)


def _read_npz(path: Path) -> CloudArrays:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise CloudFileError(f"not a plain numpy archive ({exc})") from None
    key = next((k for k in ("xyz", "points", "coords", "pos") if k in data), None)
    if key is None:
        raise CloudFileError(f".npz cloud needs an 'xyz' (or 'points') array; it has {', '.join(data) or 'none'}")
    pts = data[key]
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise CloudFileError(f"'{key}' must have shape (N, 3) or (N, 6), got {pts.shape}")
    rgb = next((data[k] for k in ("rgb", "colors", "colours", "color") if k in data), None)
    if rgb is None and pts.shape[1] >= 6:
        rgb = pts[:, 3:6]
    height = int(data["height"]) if "height" in data else 1
    width = int(data["width"]) if "width" in data else None
    return make_cloud(pts[:, :3], rgb, height, width)


# ----------------------------------------------------------------------------------------------- writers

def instance_palette(count: int) -> np.ndarray:
    """uint8 (count, 3): well-separated, saturated colours (golden-ratio hue steps), fixed for a given index."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    values = np.where(np.arange(count) % 2 == 0, 0.95, 0.75)
    rgb = [colorsys.hsv_to_rgb(h, 0.85, v) for h, v in zip(hues, values)]
    return (np.asarray(rgb, np.float64).reshape(count, 3) * 255).round().astype(np.uint8)


_PALETTE = instance_palette(64)


def instance_colours(instance: np.ndarray) -> np.ndarray:
    """uint8 (N, 3): the palette colour of each point's instance (index modulo 64), grey for -1."""
    out = _PALETTE[np.maximum(instance, 0) % len(_PALETTE)]
    out[instance < 0] = GREY
    return out


def write_labeled_ply(path: str | Path, cloud: CloudArrays, seg: "Segmentation") -> None:
    """Binary PLY: x, y, z float; red, green, blue uchar (instance colour, grey for none); label int (semantic
    class index, -1 none); instance int (-1 none); one vertex per input point in input order."""
    from .data.ply import write_ply

    _check_seg(cloud, seg)
    colours = instance_colours(seg.instance)
    write_ply(path, {"x": cloud.xyz[:, 0], "y": cloud.xyz[:, 1], "z": cloud.xyz[:, 2],
                     "red": colours[:, 0], "green": colours[:, 1], "blue": colours[:, 2],
                     "label": seg.semantic.astype(np.int32), "instance": seg.instance.astype(np.int32)},
              comments=("pointgroup_ros labeled cloud", f"class_names {'|'.join(seg.class_names)}"))


def write_labeled_npz(path: str | Path, cloud: CloudArrays, seg: "Segmentation") -> None:
    """.npz with xyz, rgb (input colours, if any), semantic, instance, height, width, class_names and the
    per-instance arrays of Segmentation (instance_class, instance_score, instance_point_idx, instance_offsets,
    box_min, box_max). Loads with numpy.load(allow_pickle=False)."""
    _check_seg(cloud, seg)
    arrays: dict[str, np.ndarray] = {
        "xyz": cloud.xyz, "semantic": seg.semantic.astype(np.int32), "instance": seg.instance.astype(np.int32),
        "height": np.asarray(cloud.height, np.int64), "width": np.asarray(cloud.width, np.int64),
        "class_names": np.asarray(seg.class_names, dtype=str),
        "instance_class": seg.instance_class, "instance_score": seg.instance_score,
        "instance_point_idx": seg.instance_point_idx, "instance_offsets": seg.instance_offsets,
        "box_min": seg.box_min, "box_max": seg.box_max,
    }
    if cloud.rgb is not None:
        arrays["rgb"] = cloud.rgb
    with open(path, "wb") as f:  # a file object keeps numpy from appending '.npz' to temporary names
        savez: Any = np.savez  # numpy 2's stub types **kwds like allow_pickle (bool); 1.x's does not
        savez(f, **arrays)


def _check_seg(cloud: CloudArrays, seg: "Segmentation") -> None:
    if seg.semantic.shape[0] != cloud.num_points or seg.instance.shape[0] != cloud.num_points:
        raise ValueError(f"segmentation has {seg.semantic.shape[0]} points, the cloud {cloud.num_points}")


def render_png(path: str | Path, cloud: CloudArrays, instance: np.ndarray, *, view: str = "auto",
               size: int = 640, point_size: int = 2) -> None:
    """PNG with two panels: the input colours (height-shaded grey without colour) and the instance colours.

    view: 'grid' draws an organized cloud pixel by pixel (the sensor's own view); 'oblique' projects the
    points (z up) from above at 45 degrees; 'top' looks straight down; 'auto' is 'grid' for organized
    clouds, else 'oblique'. Projections use a z-buffer (nearest point wins), fully vectorised.
    """
    from PIL import Image

    Image.fromarray(render_panels(cloud, instance, view=view, size=size, point_size=point_size)).save(path, format="PNG")


def render_panels(cloud: CloudArrays, instance: np.ndarray, *, view: str = "auto", size: int = 640,
                  point_size: int = 2) -> np.ndarray:
    """uint8 (H, W, 3): render_png's picture as an array (the input colours beside the instance colours)."""
    if view == "auto":
        view = "grid" if cloud.height > 1 else "oblique"
    if view not in ("grid", "oblique", "top"):
        raise ValueError(f"view must be 'auto', 'grid', 'oblique' or 'top', got {view!r}")
    base = cloud.rgb if cloud.rgb is not None else _height_shade(cloud)
    inst = instance_colours(np.asarray(instance))
    if view == "grid":
        bg = np.full((cloud.num_points, 3), 24, np.uint8)
        panels = [np.where(cloud.valid[:, None], c, bg).reshape(cloud.height, cloud.width, 3) for c in (base, inst)]
    else:
        panels = _project(cloud.xyz[cloud.valid], [base[cloud.valid], inst[cloud.valid]], view, size, point_size)
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)


def _height_shade(cloud: CloudArrays) -> np.ndarray:
    z = cloud.xyz[:, 2]
    finite = z[cloud.valid]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    shade = 60 + 170 * np.clip((np.nan_to_num(z) - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.repeat(shade.astype(np.uint8)[:, None], 3, axis=1)


def _project(xyz: np.ndarray, colours: list[np.ndarray], view: str, size: int, point_size: int) -> list[np.ndarray]:
    """Orthographic projection of (N, 3) points into size x size panels, nearest point per pixel."""
    panels = [np.full((size, size, 3), 24, np.uint8) for _ in colours]
    if xyz.shape[0] == 0:
        return panels
    p = xyz.astype(np.float64) - xyz.mean(axis=0)
    if view == "oblique":  # turn 30 degrees about z, then tilt the view 45 degrees down
        a, t = np.radians(30.0), np.radians(45.0)
        p = p @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).T
        u, v = p[:, 0], p[:, 1] * np.sin(t) + p[:, 2] * np.cos(t)
        depth = p[:, 1] * np.cos(t) - p[:, 2] * np.sin(t)  # larger = farther from the viewer
    else:
        u, v, depth = p[:, 0], p[:, 1], -p[:, 2]
    span = max(np.ptp(u), np.ptp(v), 1e-6)
    margin = 4 + point_size
    scale = (size - 2 * margin) / span
    col = ((u - u.min()) * scale + margin + (size - 2 * margin - np.ptp(u) * scale) / 2).astype(np.int64)
    row = (size - 1 - ((v - v.min()) * scale + margin + (size - 2 * margin - np.ptp(v) * scale) / 2)).astype(np.int64)
    # splat each point into a point_size x point_size square
    d = np.arange(point_size)
    dr, dc = np.meshgrid(d, d, indexing="ij")
    rows = np.clip(row[:, None] + dr.ravel()[None, :], 0, size - 1).ravel()
    cols = np.clip(col[:, None] + dc.ravel()[None, :], 0, size - 1).ravel()
    src = np.repeat(np.arange(xyz.shape[0]), point_size * point_size)
    pix = rows * size + cols
    order = np.lexsort((np.repeat(depth, point_size * point_size), pix))  # by pixel, nearest first
    first = np.ones(order.shape[0], bool)
    first[1:] = pix[order[1:]] != pix[order[:-1]]
    winner_pix, winner_src = pix[order[first]], src[order[first]]
    for panel, c in zip(panels, colours):
        panel.reshape(-1, 3)[winner_pix] = c[winner_src]
    return panels
