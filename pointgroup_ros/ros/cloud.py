"""sensor_msgs/PointCloud2 <-> arrays, for rclpy and rosbags messages alike, without per-point Python.

decode_cloud reads every layout drivers publish: fields in any order and offset, padding inside point_step
and at the end of rows (row_step), organized clouds (height > 1), NaN / Inf points (is_dense false),
big-endian data, x / y / z as FLOAT32 or FLOAT64, colour as a packed FLOAT32 'rgb', a UINT32 'rgba', separate
UINT8 'r', 'g', 'b' fields, or none. Fields are read through strided numpy views of the message buffer; xyz
and colours stay zero-copy views when they are native float32 / uint8 with no row padding, else they cost
one vectorised pass. encode_labeled_cloud builds the labeled output cloud through a MessageKit.
InstanceLabels says which instances of a frame are published and under which id (their rank by default, track
ids with tracking); the labeled cloud and the message builders (messages.py) all follow it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..cloud_io import CloudArrays, colours_to_uint8, instance_colours, pack_rgb
from .kit import MessageKit

if TYPE_CHECKING:  # the pipeline module imports torch; the converters only need the result's arrays
    from ..pipeline import Segmentation

# sensor_msgs/PointField datatypes -> numpy type codes (byte order added per message)
DATATYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
DATATYPE_NAMES: dict[int, str] = {1: "INT8", 2: "UINT8", 3: "INT16", 4: "UINT16", 5: "INT32", 6: "UINT32",
                                  7: "FLOAT32", 8: "FLOAT64"}
FLOAT32, FLOAT64, UINT32, INT32 = 7, 8, 6, 5
MAX_CLOUD_POINTS = 50_000_000  # anything bigger is a corrupt header, not a sensor
MAX_POINT_STEP = 65_536

# Labeled output cloud: 24 bytes per point, little-endian.
LABELED_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("rgb", 12, FLOAT32), ("label", 16, UINT32),
    ("instance", 20, INT32))
LABELED_POINT_STEP = 24
_LABELED_DTYPE = np.dtype({"names": [f[0] for f in LABELED_FIELDS],
                           "formats": ["<f4", "<f4", "<f4", "<u4", "<u4", "<i4"],
                           "offsets": [f[1] for f in LABELED_FIELDS], "itemsize": LABELED_POINT_STEP})


class CloudFormatError(ValueError):
    """A PointCloud2 cannot be decoded; the message says what is wrong with it."""


@dataclass(frozen=True)
class FieldInfo:
    name: str
    offset: int
    dtype: np.dtype  # with the message's byte order
    count: int


@dataclass(frozen=True)
class CloudLayout:
    """The checked memory layout of a PointCloud2."""

    height: int
    width: int
    point_step: int
    row_step: int
    bigendian: bool
    fields: dict[str, FieldInfo]

    @property
    def num_points(self) -> int:
        return self.height * self.width

    @property
    def colour_source(self) -> str:
        """'rgb', 'rgba', 'r,g,b' or 'none': where decode_cloud takes colours from."""
        for name in ("rgb", "rgba"):
            f = self.fields.get(name)
            if f is not None and f.dtype.itemsize == 4 and f.dtype.kind in "fui":
                return name
        if all(c in self.fields for c in "rgb"):
            return "r,g,b"
        return "none"

    def describe(self) -> str:
        f = self.fields
        xyz = "x/y/z " + ",".join(DATATYPE_NAMES_BY_CODE.get(f[c].dtype.str[1:], "?") for c in "xyz")
        return (f"{self.height}x{self.width} points, point_step {self.point_step}, row_step {self.row_step}, "
                f"{'big' if self.bigendian else 'little'}-endian, {xyz}, colour {self.colour_source}")


DATATYPE_NAMES_BY_CODE = {code: DATATYPE_NAMES[dt] for dt, code in DATATYPES.items()}


def buffer_of(data: Any) -> np.ndarray:
    """The message's data as a uint8 (K,) numpy array, without copying when it supports the buffer protocol.

    rclpy gives array.array('B'), rosbags a numpy uint8 array, hand-built messages bytes or a list.
    """
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(data, np.uint8)
    except TypeError:
        return np.asarray(data, np.uint8)  # a list of ints: one copy


def cloud_layout(msg: Any, max_points: int = MAX_CLOUD_POINTS) -> CloudLayout:
    """Check a PointCloud2's header fields against its data; raise CloudFormatError naming the problem."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    n = height * width
    if height < 0 or width < 0:
        raise CloudFormatError(f"negative cloud size {height} x {width}")
    if n > max_points:
        raise CloudFormatError(f"absurd cloud size {height} x {width} = {n} points (limit {max_points})")
    if not 0 < point_step <= MAX_POINT_STEP:
        raise CloudFormatError(f"point_step {point_step} is out of range (1..{MAX_POINT_STEP})")
    if row_step < width * point_step:
        raise CloudFormatError(f"row_step {row_step} is smaller than width * point_step = {width * point_step}")
    size = len(msg.data)
    if n == 0 and size != 0:  # an empty cloud is a frame (no points), but its data must be empty too
        raise CloudFormatError(f"empty cloud (height {height} x width {width}) with {size} bytes of data")
    if size != row_step * height:
        raise CloudFormatError(f"data has {size} bytes, expected row_step * height = {row_step * height}")
    order = ">" if msg.is_bigendian else "<"
    fields: dict[str, FieldInfo] = {}
    for f in msg.fields:
        code = DATATYPES.get(int(f.datatype))
        if code is None:
            if f.name in ("x", "y", "z", "rgb", "rgba", "r", "g", "b"):
                raise CloudFormatError(f"field {f.name!r} has unknown datatype {f.datatype} (known: 1..8)")
            continue  # an unknown field we do not read
        dtype = np.dtype(order + code)
        count = max(int(f.count), 1)
        if f.offset < 0 or f.offset + dtype.itemsize * count > point_step:
            raise CloudFormatError(f"field {f.name!r} (offset {f.offset}, {count} x {dtype.itemsize} bytes) does "
                                   f"not fit in point_step {point_step}")
        fields.setdefault(str(f.name), FieldInfo(str(f.name), int(f.offset), dtype, count))
    missing = [c for c in "xyz" if c not in fields]
    if missing:
        raise CloudFormatError(f"cloud has no {', '.join(missing)} field (fields: {', '.join(fields) or 'none'})")
    for c in "xyz":
        if fields[c].dtype.kind != "f":
            raise CloudFormatError(f"field {c!r} is {DATATYPE_NAMES_BY_CODE[fields[c].dtype.str[1:]]}; "
                                   "x, y, z must be FLOAT32 or FLOAT64")
    return CloudLayout(height, width, point_step, row_step, bool(msg.is_bigendian), fields)


def _view(buf: np.ndarray, layout: CloudLayout, dtype: npt.DTypeLike, offset: int,
          inner: tuple[int, int] | None = None) -> np.ndarray:
    """Read-only (H, W[, k]) view of one field (or k consecutive fields with `inner` = (k, stride))."""
    shape: tuple[int, ...] = (layout.height, layout.width)
    strides: tuple[int, ...] = (layout.row_step, layout.point_step)
    if inner is not None:
        shape, strides = shape + (inner[0],), strides + (inner[1],)
    v: np.ndarray = np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=offset, strides=strides)
    v.flags.writeable = False
    return v


def _flat(v: np.ndarray, k: int | None = None) -> np.ndarray:
    """(H, W[, k]) -> (N[, k]); a view when rows are not padded, else one copy."""
    return v.reshape(-1) if k is None else v.reshape(-1, k)


def decode_cloud(msg: Any, max_points: int = MAX_CLOUD_POINTS, layout: CloudLayout | None = None) -> CloudArrays:
    """PointCloud2 (rclpy or rosbags) -> CloudArrays: xyz float32 (N, 3), rgb uint8 (N, 3) or None, valid bool (N,).

    N = height * width in the message's row-major order (organized clouds keep their shape in height, width).
    The returned arrays may be read-only views of msg.data: keep msg alive while using them.
    Raises CloudFormatError for a malformed cloud. `layout`: cloud_layout(msg) if already computed.
    """
    layout = layout or cloud_layout(msg, max_points)
    if layout.num_points == 0:  # a valid empty cloud: no buffer to view
        rgb = None if layout.colour_source == "none" else np.zeros((0, 3), np.uint8)
        return CloudArrays(np.zeros((0, 3), np.float32), rgb, np.zeros(0, bool), layout.height, layout.width)
    buf = buffer_of(msg.data)
    f = layout.fields
    x, y, z = f["x"], f["y"], f["z"]
    native = (sys.byteorder == "big") == layout.bigendian
    same = x.dtype == y.dtype == z.dtype
    s = x.dtype.itemsize
    if same and y.offset == x.offset + s and z.offset == x.offset + 2 * s:
        xyz = _flat(_view(buf, layout, x.dtype, x.offset, (3, s)), 3)
    else:
        xyz = np.stack([_flat(_view(buf, layout, c.dtype, c.offset)) for c in (x, y, z)], axis=1)
    if xyz.dtype != np.float32 or not native:
        xyz = xyz.astype(np.float32)
    return CloudArrays(xyz, _decode_colour(buf, layout), np.isfinite(xyz).all(axis=1), layout.height, layout.width)


def _decode_colour(buf: np.ndarray, layout: CloudLayout) -> np.ndarray | None:
    source = layout.colour_source
    if source in ("rgb", "rgba"):
        f = layout.fields[source]
        # 0x??RRGGBB in 4 bytes: little-endian stores B, G, R, A, big-endian A, R, G, B
        if layout.bigendian:
            return _flat(_view(buf, layout, np.uint8, f.offset + 1, (3, 1)), 3)
        return _flat(_view(buf, layout, np.uint8, f.offset + 2, (3, -1)), 3)
    if source == "r,g,b":
        r, g, b = (layout.fields[c] for c in "rgb")
        if r.dtype.itemsize == 1 and r.dtype.kind == "u" and g.offset == r.offset + 1 and b.offset == r.offset + 2 \
                and g.dtype == b.dtype == r.dtype:
            return _flat(_view(buf, layout, np.uint8, r.offset, (3, 1)), 3)
        cols = [_flat(_view(buf, layout, c.dtype, c.offset)) for c in (r, g, b)]
        return colours_to_uint8(np.stack(cols, axis=1))
    return None


def header_of(kit: MessageKit, header: Any) -> Any:
    """A std_msgs/Header for the kit's backend with the stamp and frame of `header` (any backend; ROS 1's seq
    is dropped)."""
    stamp = kit.make("builtin_interfaces/msg/Time", sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec))
    return kit.make("std_msgs/msg/Header", stamp=stamp, frame_id=str(header.frame_id))


@dataclass(frozen=True)
class InstanceLabels:
    """The published identity of a frame's M instances: all four outputs use it instead of the rank m.

    ids: int64 (M,), the id instance m is published under (its rank m by default; a track id with tracking).
    publish: bool (M,), whether instance m is published at all (tentative tracks are not): an unpublished
        instance's points get instance -1 (and grey) in the labeled cloud, and it is absent from detections,
        markers and instances. Published ids are >= 0 and distinct (checked). Colours follow the id
        (cloud_io.instance_colours), so an object published under one id over a sequence keeps its colour.
    """

    ids: np.ndarray
    publish: np.ndarray

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, np.int64).reshape(-1)
        publish = np.asarray(self.publish, bool).reshape(-1)
        if publish.shape != ids.shape:
            raise ValueError(f"InstanceLabels: {ids.shape[0]} ids but {publish.shape[0]} publish flags")
        shown = ids[publish]
        if shown.size and (int(shown.min()) < 0 or int(shown.max()) > np.iinfo(np.int32).max):
            raise ValueError("InstanceLabels: published ids must be in [0, 2**31 - 1]")
        if np.unique(shown).shape[0] != shown.shape[0]:
            raise ValueError("InstanceLabels: published ids must be distinct")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "publish", publish)

    @classmethod
    def ranks(cls, num_instances: int) -> "InstanceLabels":
        """Every instance published under its rank m (what a frame without tracking publishes)."""
        return cls(np.arange(num_instances, dtype=np.int64), np.ones(num_instances, bool))

    @classmethod
    def hidden(cls, num_instances: int) -> "InstanceLabels":
        """No instance published (a tracked frame the tracker skipped: rank ids would break the track ids)."""
        return cls(np.full(num_instances, -1, np.int64), np.zeros(num_instances, bool))

    @classmethod
    def of(cls, seg: Segmentation, labels: "InstanceLabels | None") -> "InstanceLabels":
        """`labels` checked against seg (M instances), or the ranks when None."""
        if labels is None:
            return cls.ranks(seg.num_instances)
        if labels.ids.shape[0] != seg.num_instances:
            raise ValueError(f"InstanceLabels for {labels.ids.shape[0]} instances, the segmentation has "
                             f"{seg.num_instances}")
        return labels

    @property
    def num_published(self) -> int:
        return int(self.publish.sum())

    def point_ids(self, instance: np.ndarray) -> np.ndarray:
        """int32 (N,): each point's published id from its instance index (-1: none or not published)."""
        table = np.where(self.publish, self.ids, -1).astype(np.int32)
        inst = np.asarray(instance)
        out = np.full(inst.shape, -1, np.int32)
        has = inst >= 0
        out[has] = table[inst[has]]
        return out


def label_none(seg: Segmentation) -> int:
    """The 'label' value of points without a class: len(class_names), one past the last class index."""
    return len(seg.class_names)


def labeled_points(cloud: CloudArrays, seg: Segmentation, labels: InstanceLabels | None = None) -> np.ndarray:
    """The labeled cloud's records: structured (N,) array with the LABELED_FIELDS layout.

    rgb: instance colour (fixed palette by published id, grey for none); label: semantic class index,
    label_none(seg) where the point has no class (invalid points); instance: the published id of the point's
    instance (labels; default its index m), -1 for none or an unpublished instance.
    """
    n = cloud.num_points
    if seg.semantic.shape != (n,) or seg.instance.shape != (n,):
        raise ValueError(f"segmentation has {seg.semantic.shape[0]} points, the cloud {n}")
    ids = seg.instance if labels is None else InstanceLabels.of(seg, labels).point_ids(seg.instance)
    rec = np.empty(n, _LABELED_DTYPE)
    rec["x"], rec["y"], rec["z"] = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
    rec["rgb"] = pack_rgb(instance_colours(ids))
    rec["label"] = np.where(seg.semantic < 0, label_none(seg), seg.semantic)
    rec["instance"] = ids
    return rec


def encode_labeled_cloud(kit: MessageKit, header: Any, cloud: CloudArrays, seg: Segmentation,
                         labels: InstanceLabels | None = None) -> Any:
    """sensor_msgs/PointCloud2 with x, y, z, rgb (FLOAT32), label (UINT32), instance (INT32); the input's
    height, width and point order, so point i of the output is point i of the input; `header` copied.
    labels: the published ids (None: ranks), see labeled_points."""
    rec = labeled_points(cloud, seg, labels)
    fields = [kit.make("sensor_msgs/msg/PointField", name=name, offset=offset, datatype=datatype, count=1)
              for name, offset, datatype in LABELED_FIELDS]
    return kit.make(
        "sensor_msgs/msg/PointCloud2", header=header_of(kit, header), height=cloud.height, width=cloud.width,
        fields=fields, is_bigendian=False, point_step=LABELED_POINT_STEP,
        row_step=LABELED_POINT_STEP * cloud.width, data=kit.uint8_seq(rec.view(np.uint8)),
        is_dense=bool(cloud.valid.all()))


# ------------------------------------------------------------------ building input clouds (tests, tools)

def encode_cloud(kit: MessageKit, header: Any, xyz: np.ndarray, rgb: np.ndarray | None = None, *,
                 height: int = 1, xyz_type: int = FLOAT32, colour: str = "rgb", bigendian: bool = False,
                 point_step: int | None = None, row_padding: int = 0, field_order: tuple[str, ...] | None = None,
                 extra: dict[str, np.ndarray] | None = None) -> Any:
    """Build a PointCloud2 in a chosen layout (the layouts decode_cloud must read).

    xyz: (N, 3); rgb: uint8 (N, 3) or None; colour: 'rgb' (packed FLOAT32), 'rgba' (UINT32, alpha 255),
    'r,g,b' (three UINT8) or 'none'; xyz_type FLOAT32 or FLOAT64; point_step: at least the packed size (the
    rest is padding); row_padding: bytes after each row; field_order: order of the fields in memory
    (default x, y, z, colour..., extras); extra: more (N,) numeric fields.
    """
    n = xyz.shape[0]
    width = n // height
    if width * height != n:
        raise ValueError(f"{n} points do not make {height} rows")
    order = ">" if bigendian else "<"
    columns: dict[str, tuple[np.ndarray, int]] = {}
    ftype = "f4" if xyz_type == FLOAT32 else "f8"
    for i, c in enumerate("xyz"):
        columns[c] = (xyz[:, i].astype(order + ftype), xyz_type)
    if colour != "none":
        if rgb is None:
            raise ValueError(f"colour {colour!r} needs rgb")
        packed = pack_rgb(rgb)
        if colour == "rgb":
            columns["rgb"] = (packed.astype(order + "u4").view(order + "f4"), FLOAT32)
        elif colour == "rgba":
            columns["rgba"] = ((packed | np.uint32(0xFF000000)).astype(order + "u4"), UINT32)
        elif colour == "r,g,b":
            for i, c in enumerate("rgb"):
                columns[c] = (rgb[:, i].astype(np.uint8), 2)
        else:
            raise ValueError(f"unknown colour layout {colour!r}")
    for name, values in (extra or {}).items():
        code = {v: k for k, v in DATATYPES.items()}[np.dtype(values.dtype).str[1:]]
        columns[name] = (values.astype(order + np.dtype(values.dtype).str[1:]), code)
    names = list(field_order) if field_order else list(columns)
    if sorted(names) != sorted(columns):
        raise ValueError(f"field_order {names} must list exactly {list(columns)}")
    offsets, pos = {}, 0
    for name in names:  # naturally aligned, packed in the given order
        size = columns[name][0].dtype.itemsize
        pos = -(-pos // size) * size
        offsets[name] = pos
        pos += size
    step = point_step or pos
    if step < pos:
        raise ValueError(f"point_step {step} is smaller than the fields ({pos} bytes)")
    row_step = step * width + row_padding
    data = np.zeros(row_step * height, np.uint8)
    rows = data.reshape(height, row_step)[:, :step * width].reshape(height, width, step)
    for name in names:
        values = columns[name][0]
        size = values.dtype.itemsize
        rows[:, :, offsets[name]:offsets[name] + size] = values.view(np.uint8).reshape(height, width, size)
    fields = [kit.make("sensor_msgs/msg/PointField", name=name, offset=offsets[name], datatype=columns[name][1],
                       count=1) for name in names]
    return kit.make("sensor_msgs/msg/PointCloud2", header=header, height=height, width=width, fields=fields,
                    is_bigendian=bigendian, point_step=step, row_step=row_step, data=kit.uint8_seq(data),
                    is_dense=bool(np.isfinite(xyz).all()))
