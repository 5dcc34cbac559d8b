"""`pointgroup-ros run INPUT --out OUT`: segment a recorded bag or one cloud file, without ROS.

INPUT is a rosbag2 folder, a rosbag2 storage file (.mcap / .db3), a ROS 1 .bag, or one .pcd / .ply / .npy /
.npz cloud. For a bag, OUT is a new rosbag2 bag (MCAP) holding every input topic (converted to ROS 2 for
ROS 1 bags) plus, for each segmented sensor_msgs/PointCloud2 topic, /pointgroup/labeled_points, detections,
markers and instances at the input message's time (for several cloud topics: /pointgroup/<topic>/...).
By default every PointCloud2 topic is segmented except earlier outputs under /pointgroup/, which are replaced.
For one cloud, OUT is a labeled .ply or .npz, with a PNG view beside it (OUT with suffix .png).
The input is only read. Output is written in a hidden temporary folder next to OUT and renamed at the end,
so an interrupted run leaves no half-written OUT; an existing OUT is refused unless --overwrite.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

if TYPE_CHECKING:
    from ..ros.processing import FrameResult, SegmentingPipeline

log = logging.getLogger(__name__)

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
OUTPUT_NAMESPACE = "/pointgroup"
BAG_VERSION: Literal[8] = 8  # rosbag2 metadata version 8 (Jazzy's; its QoS encoding is also what Humble reads)
ROSBAG2_FILES = (".mcap", ".db3")
LABELED_SUFFIXES = (".ply", ".npz")


class RunError(Exception):
    """The run cannot start or finish; the message says why (exit code 1)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="rosbag2 folder or .mcap/.db3 file, ROS 1 .bag, or a "
                        ".pcd/.ply/.npy/.npz cloud")
    parser.add_argument("--out", type=Path, required=True, help="output: a new rosbag2 folder (MCAP) for a bag, "
                        "a .ply or .npz for one cloud (plus a .png view beside it)")
    parser.add_argument("--topic", action="append", default=None, help="PointCloud2 topic to segment "
                        "(repeatable; default: every PointCloud2 topic)")
    parser.add_argument("--weights", default=None, help="model checkpoint (.pth); default: the pipeline's")
    parser.add_argument("--config", default=None, help="preset name (scannet, s3dis) or config YAML path")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--max-points", type=int, default=300_000, help="subsample larger clouds to this many "
                        "valid points (default 300000)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, pipeline: "SegmentingPipeline | None" = None) -> int:
    """Command entry point; `pipeline` replaces the real Pipeline (tests)."""
    src, out = Path(args.input), Path(args.out)
    try:
        kind = input_kind(src)
        check_output(src, out, kind, args.overwrite)
        if pipeline is None:
            pipeline = _make_pipeline(args)
        if kind == "cloud":
            summary: RunSummary = process_cloud_file(src, out, pipeline, overwrite=args.overwrite)
        else:
            summary = process_bag(src, out, pipeline, topics=args.topic, overwrite=args.overwrite,
                                  progress=not args.no_progress)
    except (RunError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    log.info("%s", summary.describe())
    return 0


def _make_pipeline(args: argparse.Namespace) -> "SegmentingPipeline":
    from ..config import load_config
    from ..pipeline import Pipeline

    cfg = load_config(args.config) if args.config else None
    pipeline: SegmentingPipeline = Pipeline(cfg, weights=args.weights, device=args.device,
                                            max_points=args.max_points)
    return pipeline


def input_kind(src: Path) -> str:
    """'rosbag2', 'rosbag1' or 'cloud' for an existing input path; RunError otherwise."""
    from ..cloud_io import CLOUD_SUFFIXES

    if not src.exists():
        raise RunError(f"{src}: no such file or folder")
    if src.is_dir():
        if (src / "metadata.yaml").is_file():
            return "rosbag2"
        raise RunError(f"{src}: a folder but not a rosbag2 bag (no metadata.yaml)")
    suffix = src.suffix.lower()
    if suffix == ".bag":
        return "rosbag1"
    if suffix in ROSBAG2_FILES:
        return "rosbag2"
    if suffix in CLOUD_SUFFIXES:
        return "cloud"
    raise RunError(f"{src}: unknown input type {suffix!r} (bag folder, .mcap, .db3, .bag, "
                   f"{', '.join(CLOUD_SUFFIXES)})")


def check_output(src: Path, out: Path, kind: str, overwrite: bool) -> None:
    """Refuse an OUT that would clobber the input or an existing output, or has the wrong type."""
    s, o = src.resolve(), out.resolve()
    if o == s or s in o.parents or (src.is_file() and o == s.parent):
        raise RunError(f"--out {out} is the input or inside it; choose another path")
    if kind == "cloud":
        if out.suffix.lower() not in LABELED_SUFFIXES:
            raise RunError(f"--out {out}: for one cloud the output must end in .ply or .npz")
        targets = [out, out.with_suffix(".png")]
    else:
        if out.suffix.lower() in LABELED_SUFFIXES + (".png",):
            raise RunError(f"--out {out}: for a bag the output is a rosbag2 folder, not a {out.suffix} file")
        targets = [out]
    existing = [str(t) for t in targets if t.exists() or t.is_symlink()]
    if existing and not overwrite:
        raise RunError(f"{', '.join(existing)} exist(s); pass --overwrite to replace")


@contextmanager
def staged(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a path in a hidden temporary folder next to `out`; move it to `out` when the block succeeds.

    On an exception (or Ctrl-C) the temporary folder is removed and `out` is left as it was.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        path = tmpdir / out.name
        yield path
        if out.exists() or out.is_symlink():
            if not overwrite:
                raise RunError(f"{out} appeared while running; not overwriting")
            if out.is_dir() and not out.is_symlink():
                shutil.rmtree(out)
            else:
                out.unlink()
        os.replace(path, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@dataclass
class RunSummary:
    output: Path
    frames: int = 0
    rejected: int = 0
    instances: int = 0
    copied: int = 0
    topics: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"wrote {self.output}: {self.frames} cloud(s) segmented, {self.instances} instance(s)"
        if self.topics:
            text += f" on {', '.join(self.topics)}; {self.copied} input message(s) copied"
        if self.rejected:
            text += f"; {self.rejected} malformed cloud(s) skipped"
        return text


# ---------------------------------------------------------------------------------------------- one cloud

def process_cloud_file(src: Path, out: Path, pipeline: "SegmentingPipeline", overwrite: bool = False) -> RunSummary:
    """Segment one cloud file; write OUT (.ply or .npz) and OUT.png."""
    from ..cloud_io import read_cloud, render_png, write_labeled_npz, write_labeled_ply

    cloud = read_cloud(src)
    if cloud.rgb is None:
        log.warning("%s has no colour: the model gets a neutral grey", src)
    seg = pipeline.segment(cloud.xyz, cloud.rgb, cloud.valid)
    writer = write_labeled_ply if out.suffix.lower() == ".ply" else write_labeled_npz
    with staged(out, overwrite) as labeled, staged(out.with_suffix(".png"), overwrite) as png:
        writer(labeled, cloud, seg)
        render_png(png, cloud, seg.instance)
    return RunSummary(out, frames=1, instances=seg.num_instances)


# ---------------------------------------------------------------------------------------------- bags

def output_topics(cloud_topics: Sequence[str]) -> dict[str, str]:
    """Input cloud topic -> output namespace: /pointgroup for one topic, /pointgroup/<topic> for several."""
    if len(cloud_topics) == 1:
        return {cloud_topics[0]: OUTPUT_NAMESPACE}
    return {t: OUTPUT_NAMESPACE + (t if t.startswith("/") else "/" + t) for t in cloud_topics}


def process_bag(src: Path, out: Path, pipeline: "SegmentingPipeline", topics: Sequence[str] | None = None,
                overwrite: bool = False, progress: bool = True,
                on_frame: "Callable[[str, int, FrameResult], None] | None" = None) -> RunSummary:
    """Segment the PointCloud2 topics of a bag into a new MCAP rosbag2 bag at `out` (see the module doc).

    on_frame(topic, stamp_ns, result) is called after each segmented cloud (the demo's summary uses it).
    """
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    from ..ros.cloud import CloudFormatError
    from ..ros.kit import RosbagsKit
    from ..ros.processing import OUTPUTS, FrameProcessor
    from ..ros.typestore import OUTPUT_TYPES, make_typestore

    store = make_typestore("humble")
    kit = RosbagsKit(store)
    processor = FrameProcessor(pipeline, kit)
    with AnyReader([src], default_typestore=store) as reader:
        clouds = sorted({c.topic for c in reader.connections if c.msgtype == POINTCLOUD2})
        if not topics:  # our own earlier outputs are not inputs
            clouds = [t for t in clouds if not t.startswith(OUTPUT_NAMESPACE + "/")]
        else:
            missing = [t for t in topics if t not in clouds]
            if missing:
                raise RunError(f"{src}: no PointCloud2 topic {', '.join(missing)} (PointCloud2 topics: "
                               f"{', '.join(clouds) or 'none'})")
            clouds = sorted(set(topics))
        if not clouds:
            raise RunError(f"{src}: no sensor_msgs/PointCloud2 topic to segment")
        namespaces = output_topics(clouds)
        new_topics = {f"{ns}/{name}" for ns in namespaces.values() for name in OUTPUTS}
        if new_topics & set(clouds):
            raise RunError(f"cannot segment {', '.join(sorted(new_topics & set(clouds)))} into itself; "
                           "choose other --topic values")
        replaced = sorted({c.topic for c in reader.connections if c.topic in new_topics})
        if replaced:  # e.g. a bag written by an earlier run: its old outputs are replaced, not duplicated
            log.warning("%s already has %s: not copied, replaced by this run's output", src, ", ".join(replaced))
        copied = [c for c in reader.connections if c.topic not in new_topics]
        summary = RunSummary(out, topics=clouds)
        with staged(out, overwrite) as path:
            writer = Writer(path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
            with writer:
                connmap, convmap = _copy_connections(reader, copied, writer, store)
                outs = {(topic, name): writer.add_connection(f"{ns}/{name}", OUTPUT_TYPES[name], typestore=store)
                        for topic, ns in namespaces.items() for name in OUTPUTS}
                with tqdm(total=reader.message_count, unit="msg", disable=not progress, desc=src.name) as bar:
                    for conn, stamp, raw in reader.messages():
                        bar.update(1)
                        if conn.topic in new_topics:
                            continue
                        writer.write(connmap[(conn.id, conn.owner)], stamp, convmap[conn.msgtype](raw))
                        summary.copied += 1
                        if conn.topic not in namespaces or conn.msgtype != POINTCLOUD2:
                            continue
                        try:
                            result = processor.process(reader.deserialize(raw, conn.msgtype))
                        except CloudFormatError as exc:
                            summary.rejected += 1
                            log.warning("%s at %d ns: skipping malformed cloud: %s", conn.topic, stamp, exc)
                            continue
                        for name, message in result.messages.items():
                            data = store.serialize_cdr(message, OUTPUT_TYPES[name])
                            writer.write(outs[(conn.topic, name)], stamp, data)
                        summary.frames += 1
                        summary.instances += result.seg.num_instances
                        if on_frame is not None:
                            on_frame(conn.topic, stamp, result)
    return summary


def _copy_connections(reader: Any, connections: list[Any], writer: Any,
                      store: Any) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Output connections for every input connection, and a raw-message converter per input type (identity
    for ROS 2 input of the same wire format; ROS 1 -> CDR for ROS 1 bags), using rosbags' bag converter."""
    from rosbags.convert.converter import create_connections_converters

    chatter = io.StringIO()  # the converter prints notes ("Msgtype will be migrated"); send them to the log
    with contextlib.redirect_stdout(chatter):
        connmap, convmap = create_connections_converters(connections, store, reader, writer)
    for line in chatter.getvalue().splitlines():
        log.info("rosbags: %s", line)
    return connmap, convmap
