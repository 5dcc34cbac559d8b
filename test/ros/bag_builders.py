"""Small bags for the offline runner's tests: PointCloud2, /tf and /tf_static messages written with rosbags'
Writer (MCAP, optionally zstd chunks, or sqlite3) or with Foxglove's mcap Writer (lz4 chunks with CRCs, as the
C++ writer of rosbag2 does), and ways to cut them like a power loss would."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from pointgroup_ros.ros.cloud import encode_cloud
from pointgroup_ros.ros.kit import RosbagsKit
from pointgroup_ros.ros.typestore import make_typestore

STORE = make_typestore("humble")
KIT = RosbagsKit(STORE)
CLOUD = "sensor_msgs/msg/PointCloud2"
TF = "tf2_msgs/msg/TFMessage"


def transient_local() -> list[Any]:
    """The QoS profile /tf_static is offered with (rosbag2 records it so)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, zero, zero,
                QosLiveliness.AUTOMATIC, zero, False)]


def header(frame: str, ns: int) -> Any:
    stamp = KIT.make("builtin_interfaces/msg/Time", sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return KIT.make("std_msgs/msg/Header", stamp=stamp, frame_id=frame)


def cloud(frame: str, ns: int, n: int = 2000, seed: int = 0, invalid: bool = False) -> Any:
    """A PointCloud2 of n points in a 1 m cube 2 m in front of an optical frame (z forward), with colours;
    all points NaN when invalid; n = 0 gives an empty cloud (width 0)."""
    rng = np.random.default_rng(seed)
    xyz = (rng.uniform(-0.5, 0.5, (n, 3)) + (0.0, 0.0, 2.0)).astype(np.float32)
    if invalid:
        xyz[:] = np.nan
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return encode_cloud(KIT, header(frame, ns), xyz, rgb)


def transform(parent: str, child: str, ns: int, t: Sequence[float], q: Sequence[float]) -> Any:
    vec = KIT.make("geometry_msgs/msg/Vector3", x=float(t[0]), y=float(t[1]), z=float(t[2]))
    rot = KIT.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
    return KIT.make("geometry_msgs/msg/TransformStamped", header=header(parent, ns), child_frame_id=child,
                    transform=KIT.make("geometry_msgs/msg/Transform", translation=vec, rotation=rot))


def tf_message(*transforms: Any) -> Any:
    return KIT.make(TF, transforms=list(transforms))


def matrix(t: Sequence[float], q: Sequence[float]) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(q).as_matrix()
    m[:3, 3] = t
    return m


@dataclass
class Item:
    topic: str
    msgtype: str
    ns: int
    msg: Any


def write_bag(path: Path, items: Sequence[Item], storage: str = "mcap", zstd_chunks: bool = False,
              qos: dict[str, list[Any]] | None = None) -> Path:
    """A rosbag2 folder written by rosbags' Writer (MCAP chunks close past 1 MiB); returns its storage file."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=8, storage_plugin=plugin)
    if zstd_chunks:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    conns: dict[str, Any] = {}
    with writer:
        for item in items:
            if item.topic not in conns:
                conns[item.topic] = writer.add_connection(item.topic, item.msgtype, typestore=STORE,
                                                          offered_qos_profiles=(qos or {}).get(item.topic, []))
            writer.write(conns[item.topic], item.ns, STORE.serialize_cdr(item.msg, item.msgtype))
    (storage_file,) = [p for p in path.iterdir() if p.suffix in (".mcap", ".db3")]
    return storage_file


def write_mcap_lz4(path: Path, items: Sequence[Item], chunk_size: int = 600_000,
                   qos_text: dict[str, str] | None = None) -> Path:
    """A bare .mcap written by Foxglove's mcap Writer: lz4 chunks with CRCs, ros2msg schemas, QoS in channel
    metadata (as rosbag2's C++ writer stores it)."""
    from mcap.writer import CompressionType, Writer

    with path.open("wb") as f:
        writer = Writer(f, chunk_size=chunk_size, compression=CompressionType.LZ4)
        writer.start(profile="ros2", library="test")
        schemas: dict[str, int] = {}
        channels: dict[str, int] = {}
        for item in items:
            if item.msgtype not in schemas:
                text, _ = STORE.generate_msgdef(item.msgtype, ros_version=2)
                schemas[item.msgtype] = writer.register_schema(item.msgtype, "ros2msg", text.encode())
            if item.topic not in channels:
                channels[item.topic] = writer.register_channel(
                    item.topic, "cdr", schemas[item.msgtype],
                    {"offered_qos_profiles": (qos_text or {}).get(item.topic, "")})
            writer.add_message(channels[item.topic], item.ns, bytes(STORE.serialize_cdr(item.msg, item.msgtype)),
                               item.ns)
        writer.finish()
    return path


def chunk_spans(path: Path) -> tuple[list[tuple[int, int]], int]:
    """(start, length) of each chunk record of an intact MCAP file, from its summary, and where the summary
    starts (the end of the data section)."""
    from mcap.reader import make_reader

    with path.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        spans = sorted((c.chunk_start_offset, c.chunk_length) for c in summary.chunk_indexes)
        f.seek(-(8 + 9 + 20), 2)  # footer record: opcode, length, summary_start, summary_offset_start, crc; magic
        footer = f.read(9 + 20)
    assert footer[0] == 0x02
    return spans, int.from_bytes(footer[9:17], "little")


def cut_copy(src: Path, dst: Path, size: int) -> Path:
    """dst = the first `size` bytes of src (what is on disk after a power loss while recording)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as f:
        dst.write_bytes(f.read(size))
    return dst


def digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def read_output(out: Path) -> dict[str, list[tuple[int, Any]]]:
    """topic -> [(log time, message)] of a runner's output bag (typed from the bag's own definitions)."""
    from rosbags.highlevel import AnyReader

    got: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([out]) as reader:
        for conn, stamp, raw in reader.messages():
            got.setdefault(conn.topic, []).append((stamp, reader.deserialize(raw, conn.msgtype)))
    return got


def output_qos(out: Path) -> dict[str, list[Any]]:
    from rosbags.rosbag2 import Reader

    with Reader(out) as bag:
        return {c.topic: list(c.ext.offered_qos_profiles) for c in bag.connections}
