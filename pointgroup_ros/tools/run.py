"""`pointgroup-ros run INPUT --out OUT`: segment a recorded bag or one cloud file, without ROS.

INPUT is a rosbag2 folder, a rosbag2 storage file (.mcap / .db3), a ROS 1 .bag, or one .pcd / .ply / .npy /
.npz cloud. For a bag, OUT is a new rosbag2 bag (MCAP) holding every input topic (converted to ROS 2 for
ROS 1 bags, QoS profiles kept: /tf_static stays transient-local) plus, for each segmented
sensor_msgs/PointCloud2 topic, /pointgroup/labeled_points, detections, markers and instances at the input
message's time (for several cloud topics: /pointgroup/<topic>/...). By default every PointCloud2 topic is
segmented except earlier outputs under /pointgroup/, which are replaced. Every cloud gets an answer: an empty
cloud, or one without a valid point, is a frame with no instances (all four outputs written).
For one cloud, OUT is a labeled .ply or .npz, with a PNG view beside it (OUT with suffix .png).

Gravity: the network expects z-up rooms. --gravity-frame FRAME (bags) reads /tf_static and /tf from the bag
first and segments each cloud in FRAME (looked up at the cloud's header stamp, tf2 rules, no extrapolation):
detections, markers and instances are then in FRAME, the labeled cloud stays in the input frame; a cloud
without a transform is skipped and counted (the first few are named in the log). --gravity-transform
X,Y,Z,QX,QY,QZ,QW (one cloud file) gives the cloud frame's pose in a z-up frame; the PNG is drawn z-up.
--voxel-size / --min-range / --max-range set the preprocessing (downsampling and a range crop) of every cloud.

Tracking: --track --tracking-frame FRAME (bags; FRAME a fixed frame such as odom or map) looks up FRAME <- the
cloud's frame at each cloud's stamp in the same /tf_static and /tf buffer (with or without --gravity-frame) and
runs one pointgroup_ros.tracking.Tracker per cloud topic. The instance ids of all four outputs are then track
ids (labeled cloud 'instance' field, Detection3D.id, marker ids, Instance.id), colours follow the track id, and
tentative tracks are not published (instance -1 in the labeled cloud, absent from the other three). A cloud
without that transform is skipped like one without a gravity transform: nothing is written for it, it is
counted and the first few are named in the log, and the tracks live on unchanged (no miss is counted).
--set tracking.KEY=VALUE sets a TrackerConfig threshold (e.g. tracking.confirm_hits=2; values as YAML).

Cut-short recordings (pointgroup_ros.ros.bags): a bag that rosbags cannot open, e.g. an MCAP file without
summary or footer ending in a torn chunk, or a .db3 with missing pages (what a power loss leaves), is read
record by record: every complete message is segmented and copied, and the run says what was lost. A bag with
nothing readable is refused with one line saying why and what to try.
The input is only read. Output is written in a hidden temporary folder next to OUT and renamed at the end,
so an interrupted run leaves no half-written OUT; an existing OUT is refused unless --overwrite.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
    import numpy as np

    from ..config import PreprocessConfig
    from ..ros.bags import Bag
    from ..tracking import TrackerConfig
    from ..ros.processing import FrameResult, SegmentingPipeline
    from ..transforms import TransformBuffer

log = logging.getLogger(__name__)

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")  # ROS 2, ROS 1
TF_TOPICS = {"tf": False, "tf_static": True}  # topic without leading '/' -> static
OUTPUT_NAMESPACE = "/pointgroup"
BAG_VERSION: Literal[8] = 8  # rosbag2 metadata version 8 (Jazzy's; its QoS encoding is also what Humble reads)
ROSBAG2_FILES = (".mcap", ".db3")
LABELED_SUFFIXES = (".ply", ".npz")
LOGGED_SKIPS = 5  # clouds without a transform named one by one in the log; the rest are counted


class RunError(Exception):
    """The run cannot start or finish; the message says why (exit code 1)."""


EPILOG = """examples:
  pointgroup-ros run recording/ --out segmented/ --gravity-frame base_link
  pointgroup-ros run cut_short.mcap --out segmented/ --topic /camera/depth/points
  pointgroup-ros run scan.pcd --out scan_labeled.ply --gravity-transform 0,0,1.2,-0.5,0.5,-0.5,0.5
  pointgroup-ros run sequence/ --out tracked/ --gravity-frame base_link --track --tracking-frame odom

A bag cut short (power loss: no MCAP footer, a torn last chunk, a .db3 with missing pages) is read record
by record; every complete message is segmented and the run says how much was lost."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("input", type=Path, help="rosbag2 folder or .mcap/.db3 file, ROS 1 .bag, or a "
                        ".pcd/.ply/.npy/.npz cloud")
    parser.add_argument("--out", type=Path, required=True, help="output: a new rosbag2 folder (MCAP) for a bag, "
                        "a .ply or .npz for one cloud (plus a .png view beside it)")
    parser.add_argument("--weights", default=None, help="model checkpoint (.pth); default: the pipeline's")
    parser.add_argument("--config", default=None, help="preset name (scannet, s3dis) or config YAML path")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--max-points", type=int, default=300_000, help="cap on the points the network sees "
                        "after voxel downsampling; more are subsampled at random (default 300000)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    bags = parser.add_argument_group("bags")
    bags.add_argument("--topic", action="append", default=None, help="PointCloud2 topic to segment "
                      "(repeatable; default: every PointCloud2 topic)")
    bags.add_argument("--gravity-frame", default=None, metavar="FRAME", help="segment each cloud in this z-up "
                      "frame (e.g. base_link), using the bag's /tf_static and /tf at the cloud's stamp; boxes, "
                      "markers and instances are written in FRAME; clouds without a transform are skipped")
    bags.add_argument("--track", action="store_true", help="track instances over the frames of each cloud "
                      "topic: published ids and colours are track ids (stable per object), tentative tracks "
                      "are not published; needs --tracking-frame")
    bags.add_argument("--tracking-frame", default=None, metavar="FRAME", help="fixed frame to track in (e.g. "
                      "odom or map), looked up in the bag's /tf_static and /tf at each cloud's stamp; clouds "
                      "without a transform are skipped")
    bags.add_argument("--set", action="append", default=[], metavar="tracking.KEY=VALUE", dest="set",
                      help="a tracker threshold (repeatable), e.g. tracking.confirm_hits=2, "
                      "tracking.min_iou=0.2 (see pointgroup_ros.tracking.TrackerConfig)")
    one = parser.add_argument_group("one cloud file")
    one.add_argument("--gravity-transform", default=None, metavar="X,Y,Z,QX,QY,QZ,QW", help="the cloud "
                     "frame's pose in a z-up frame (metres, quaternion x,y,z,w): the cloud is segmented and "
                     "drawn z-up; boxes are in that frame")
    pre = parser.add_argument_group("preprocessing (default: the model configuration's)")
    pre.add_argument("--voxel-size", type=float, default=None, metavar="M", help="average each cloud into voxels "
                     "of M metres first (0: off; default: the model's voxel)")
    pre.add_argument("--min-range", type=float, default=None, metavar="M", help="ignore points closer than M "
                     "metres to the cloud frame's origin (0: off)")
    pre.add_argument("--max-range", type=float, default=None, metavar="M", help="ignore points farther than M "
                     "metres from the cloud frame's origin (0: off)")


def run(args: argparse.Namespace, pipeline: "SegmentingPipeline | None" = None) -> int:
    """Command entry point; `pipeline` replaces the real Pipeline (tests)."""
    from ..ros.bags import BagOpenError

    src, out = Path(args.input), Path(args.out)
    gravity_frame: str | None = getattr(args, "gravity_frame", None)
    gravity_text: str | None = getattr(args, "gravity_transform", None)
    track: bool = bool(getattr(args, "track", False))
    tracking_frame: str | None = getattr(args, "tracking_frame", None)
    settings: list[str] = list(getattr(args, "set", None) or [])
    try:
        tracker_config = check_tracking_args(track, tracking_frame, settings)
        if track:
            from ..transforms import normalize_frame

            tracking_frame = normalize_frame(str(tracking_frame))
        kind = input_kind(src)
        if kind == "cloud" and track:
            raise RunError("--track needs a bag (a sequence of clouds with /tf); one cloud file has nothing to "
                           "track")
        if kind == "cloud" and gravity_frame is not None:
            raise RunError("--gravity-frame needs a bag (it reads /tf and /tf_static); for one cloud file give "
                           "the cloud frame's pose with --gravity-transform X,Y,Z,QX,QY,QZ,QW")
        if kind != "cloud" and gravity_text is not None:
            raise RunError("--gravity-transform is for one cloud file; for a bag name a z-up frame of its tf "
                           "tree with --gravity-frame FRAME (e.g. base_link)")
        gravity_matrix = None
        if gravity_text is not None:
            from ..transforms import parse_pose

            try:
                gravity_matrix = parse_pose(gravity_text)
            except ValueError as exc:
                raise RunError(f"--gravity-transform: {exc}") from None
        if gravity_frame is not None:
            from ..transforms import normalize_frame

            gravity_frame = normalize_frame(gravity_frame)
            if not gravity_frame:
                raise RunError("--gravity-frame: give a frame id (e.g. base_link)")
        check_output(src, out, kind, args.overwrite)
        if pipeline is None:
            pipeline = _make_pipeline(args)
        preprocess = preprocess_from_args(args, pipeline)
        if kind == "cloud":
            summary: RunSummary = process_cloud_file(src, out, pipeline, overwrite=args.overwrite,
                                                     preprocess=preprocess, gravity_transform=gravity_matrix)
        else:
            summary = process_bag(src, out, pipeline, topics=args.topic, overwrite=args.overwrite,
                                  progress=not args.no_progress, gravity_frame=gravity_frame,
                                  preprocess=preprocess, tracking_frame=tracking_frame if track else None,
                                  tracker_config=tracker_config)
    except (RunError, BagOpenError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    log.info("%s", summary.describe())
    return 0


def check_tracking_args(track: bool, tracking_frame: str | None,
                        settings: Sequence[str]) -> "TrackerConfig | None":
    """The TrackerConfig for --track (defaults with the --set tracking.KEY=VALUE values), None without
    --track; RunError for --track without --tracking-frame, tracking options without --track, or bad values."""
    if not track:
        if tracking_frame is not None:
            raise RunError("--tracking-frame is only used with --track (add --track to track instances)")
        if settings:
            raise RunError("--set tracking.KEY=VALUE is only used with --track")
        return None
    if tracking_frame is None or not str(tracking_frame).strip("/ "):
        raise RunError("--track needs --tracking-frame FRAME: a fixed frame of the bag's tf tree to track in "
                       "(e.g. odom or map)")
    import yaml

    from ..config import ConfigError
    from ..tracking import TrackerConfig

    fields = {f.name for f in dataclasses.fields(TrackerConfig)}
    changes: dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or section != "tracking" or not dot or name not in fields:
            raise RunError(f"--set {item!r}: expected tracking.KEY=VALUE with KEY one of "
                           f"{', '.join(sorted(fields))}")
        try:
            changes[name] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise RunError(f"--set {item!r}: cannot read the value: {exc}") from None
    try:
        return TrackerConfig().replace(**changes)
    except ConfigError as exc:
        raise RunError(f"--set: {exc}") from None


def preprocess_from_args(args: argparse.Namespace, pipeline: Any) -> "PreprocessConfig | None":
    """A PreprocessConfig from --voxel-size / --min-range / --max-range over the pipeline configuration's
    (None when none is given: the pipeline uses its own). ConfigError (a ValueError) for bad values."""
    given: dict[str, Any] = {name: float(value) for name in ("voxel_size", "min_range", "max_range")
                               if (value := getattr(args, name, None)) is not None}
    if not given:
        return None
    from ..config import PreprocessConfig

    base = getattr(getattr(pipeline, "cfg", None), "preprocess", None)
    pre = dataclasses.replace(base if isinstance(base, PreprocessConfig) else PreprocessConfig(), **given)
    pre.validate()
    return pre


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
        if any(p.suffix in ROSBAG2_FILES and p.is_file() for p in src.iterdir()):
            return "rosbag2"  # a recording that was never closed: rosbag2 writes metadata.yaml at the end
        raise RunError(f"{src}: a folder but not a rosbag2 bag (no metadata.yaml, no .mcap or .db3 file)")
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
    skipped_no_tf: int = 0  # clouds without a transform to the gravity frame
    gravity_frame: str | None = None
    tracking_frame: str | None = None  # with --track
    skipped_no_tracking_tf: int = 0  # clouds without a transform to the tracking frame
    tracks: int = 0  # distinct track ids published (per topic, summed over topics)
    lost: str = ""  # what a cut-short input lost (bags.Loss.describe()), "" when the input was read whole

    def describe(self) -> str:
        text = f"wrote {self.output}: {self.frames} cloud(s) segmented, {self.instances} instance(s)"
        if self.topics:
            text += f" on {', '.join(self.topics)}; {self.copied} input message(s) copied"
        if self.gravity_frame:
            text += f"; boxes in frame '{self.gravity_frame}'"
        if self.tracking_frame:
            text += f"; {self.tracks} track(s) published, tracked in frame '{self.tracking_frame}'"
        if self.skipped_no_tf:
            text += f"; {self.skipped_no_tf} cloud(s) skipped: no transform to '{self.gravity_frame}'"
        if self.skipped_no_tracking_tf:
            text += (f"; {self.skipped_no_tracking_tf} cloud(s) skipped: no transform to the tracking frame "
                     f"'{self.tracking_frame}'")
        if self.rejected:
            text += f"; {self.rejected} malformed cloud(s) skipped"
        if self.lost:
            text += f"; input incomplete: {self.lost}"
        return text


# ---------------------------------------------------------------------------------------------- one cloud

def process_cloud_file(src: Path, out: Path, pipeline: "SegmentingPipeline", overwrite: bool = False,
                       preprocess: "PreprocessConfig | None" = None,
                       gravity_transform: "np.ndarray | None" = None) -> RunSummary:
    """Segment one cloud file; write OUT (.ply or .npz, input coordinates) and OUT.png (drawn in the z-up frame
    when gravity_transform is given)."""
    from ..cloud_io import read_cloud, render_png, write_labeled_npz, write_labeled_ply

    cloud = read_cloud(src)
    if cloud.rgb is None:
        log.warning("%s has no colour: the model gets a neutral grey", src)
    extra: dict[str, Any] = {}  # only what is set: pipelines without these arguments still work
    if preprocess is not None:
        extra["preprocess"] = preprocess
    if gravity_transform is not None:
        extra["gravity_transform"] = gravity_transform
    seg = pipeline.segment(cloud.xyz, cloud.rgb, cloud.valid, **extra)
    view = cloud
    if gravity_transform is not None:
        from ..transforms import transform_points

        view = dataclasses.replace(cloud, xyz=transform_points(gravity_transform, cloud.xyz))
    writer = write_labeled_ply if out.suffix.lower() == ".ply" else write_labeled_npz
    with staged(out, overwrite) as labeled, staged(out.with_suffix(".png"), overwrite) as png:
        writer(labeled, cloud, seg)
        render_png(png, view, seg.instance, view="oblique" if gravity_transform is not None else "auto")
    return RunSummary(out, frames=1, instances=seg.num_instances)


# ---------------------------------------------------------------------------------------------- bags

def output_topics(cloud_topics: Sequence[str]) -> dict[str, str]:
    """Input cloud topic -> output namespace: /pointgroup for one topic, /pointgroup/<topic> for several."""
    if len(cloud_topics) == 1:
        return {cloud_topics[0]: OUTPUT_NAMESPACE}
    return {t: OUTPUT_NAMESPACE + (t if t.startswith("/") else "/" + t) for t in cloud_topics}


def load_transforms(bag: "Bag") -> "TransformBuffer":
    """Every transform of the bag's /tf_static (static) and /tf (tf2_msgs/TFMessage, or ROS 1's tfMessage), in
    one pass over those connections only. A message that cannot be used is logged and left out."""
    from ..transforms import TransformBuffer, normalize_frame

    buffer = TransformBuffer()
    conns = [c for c in bag.connections if normalize_frame(c.topic) in TF_TOPICS and c.msgtype in TF_TYPES]
    if not conns:
        log.warning("%s has no /tf or /tf_static (tf2_msgs/msg/TFMessage): only clouds already in the gravity "
                    "frame can be segmented", bag.path)
        return buffer
    count = bad = 0
    for conn, stamp, raw in bag.messages(conns):
        try:
            count += buffer.add_tf_message(bag.deserialize(raw, conn.msgtype),
                                           static=TF_TOPICS[normalize_frame(conn.topic)])
        except Exception as exc:  # a malformed or inconsistent transform: keep the others
            bad += 1
            if bad <= LOGGED_SKIPS:
                log.warning("%s at %d ns: transform message not used: %s", conn.topic, stamp, exc)
    if bad > LOGGED_SKIPS:
        log.warning("%d transform message(s) not used in all", bad)
    log.info("read %d transform(s) between %d frame(s) from %s", count, len(buffer.frames),
             ", ".join(sorted({c.topic for c in conns})))
    return buffer


def process_bag(src: Path, out: Path, pipeline: "SegmentingPipeline", topics: Sequence[str] | None = None,
                overwrite: bool = False, progress: bool = True,
                on_frame: "Callable[[str, int, FrameResult], None] | None" = None,
                gravity_frame: str | None = None, preprocess: "PreprocessConfig | None" = None,
                tracking_frame: str | None = None, tracker_config: "TrackerConfig | None" = None) -> RunSummary:
    """Segment the PointCloud2 topics of a bag into a new MCAP rosbag2 bag at `out` (see the module doc).

    gravity_frame: segment each cloud in this frame (transform from the bag's /tf_static and /tf at the cloud's
    header stamp); clouds without one are skipped and counted. preprocess: per-cloud preprocessing (None: the
    pipeline's). tracking_frame: track the instances of each cloud topic in this fixed frame (one Tracker per
    topic with tracker_config, default TrackerConfig()): outputs carry confirmed track ids only; clouds without
    a transform to it are skipped and counted. on_frame(topic, stamp_ns, result) is called after each segmented
    cloud (the demo's summary uses it). Raises bags.BagOpenError when nothing of the bag can be read.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    from ..ros.bags import open_bag
    from ..ros.cloud import CloudFormatError
    from ..ros.kit import RosbagsKit
    from ..ros.processing import OUTPUTS, FrameProcessor, TrackingInput
    from ..ros.typestore import OUTPUT_TYPES, make_typestore
    store = make_typestore("humble")
    kit = RosbagsKit(store)
    processor = FrameProcessor(pipeline, kit)
    with open_bag(src, store) as bag:
        clouds = sorted({c.topic for c in bag.connections if c.msgtype == POINTCLOUD2})
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
        replaced = sorted({c.topic for c in bag.connections if c.topic in new_topics})
        if replaced:  # e.g. a bag written by an earlier run: its old outputs are replaced, not duplicated
            log.warning("%s already has %s: not copied, replaced by this run's output", src, ", ".join(replaced))
        copied = [c for c in bag.connections if c.topic not in new_topics]
        tf = load_transforms(bag) if gravity_frame or tracking_frame else None
        summary = RunSummary(out, topics=clouds, gravity_frame=gravity_frame, tracking_frame=tracking_frame)
        trackers: dict[str, Tracker] = {}
        published: dict[str, set[int]] = {}
        if tracking_frame is not None:
            from ..tracking import Tracker, TrackerConfig

            trackers = {t: Tracker(tracker_config or TrackerConfig()) for t in clouds}
            published = {t: set() for t in clouds}
        with staged(out, overwrite) as path:
            writer = Writer(path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
            with writer:
                connmap, convmap = _copy_connections(bag, copied, writer, store)
                outs = {(topic, ns_name): writer.add_connection(f"{ns}/{ns_name}", OUTPUT_TYPES[ns_name],
                                                                typestore=store)
                        for topic, ns in namespaces.items() for ns_name in OUTPUTS}
                with tqdm(total=bag.message_count, unit="msg", disable=not progress, desc=src.name) as bar:
                    for conn, stamp, raw in bag.messages():
                        bar.update(1)
                        if conn.topic in new_topics:
                            continue
                        writer.write(connmap[(conn.id, conn.owner)], stamp, convmap[conn.msgtype](raw))
                        summary.copied += 1
                        if conn.topic not in namespaces or conn.msgtype != POINTCLOUD2:
                            continue
                        try:
                            msg = bag.deserialize(raw, conn.msgtype)
                        except Exception as exc:  # rosbags' deserializers raise several types on bad bytes
                            summary.rejected += 1
                            log.warning("%s at %d ns: skipping undecodable message: %s", conn.topic, stamp, exc)
                            continue
                        gravity: tuple[str, np.ndarray] | None = None
                        if tf is not None and gravity_frame is not None:
                            matrix = _pose_or_skip(tf, gravity_frame, msg, conn.topic, stamp, summary,
                                                   "skipped_no_tf", "", "a transform")
                            if matrix is None:
                                continue
                            gravity = (gravity_frame, matrix)
                        tracking: TrackingInput | None = None
                        if tf is not None and tracking_frame is not None:
                            pose = _pose_or_skip(tf, tracking_frame, msg, conn.topic, stamp, summary,
                                                 "skipped_no_tracking_tf", "no tracking pose: ", "a tracking transform")
                            if pose is None:
                                continue
                            tracking = TrackingInput(trackers[conn.topic], pose)
                        try:
                            result = processor.process(msg, preprocess=preprocess, gravity=gravity,
                                                       tracking=tracking)
                        except CloudFormatError as exc:
                            summary.rejected += 1
                            log.warning("%s at %d ns: skipping malformed cloud: %s", conn.topic, stamp, exc)
                            continue
                        for name, message in result.messages.items():
                            data = store.serialize_cdr(message, OUTPUT_TYPES[name])
                            writer.write(outs[(conn.topic, name)], stamp, data)
                        summary.frames += 1
                        labels = result.published
                        summary.instances += labels.num_published
                        if result.tracking is not None:
                            if result.tracking.skipped:  # a pose TF gave but the tracker refused (not rigid)
                                log.warning("%s at %d ns: not tracked, published without instances: %s",
                                            conn.topic, stamp, result.tracking.skipped_reason)
                            published[conn.topic].update(labels.ids[labels.publish].tolist())
                        if on_frame is not None:
                            on_frame(conn.topic, stamp, result)
        if bag.loss is not None:
            summary.lost = bag.loss.describe()
            log.warning("%s was not read whole: %s", src, summary.lost)
    if summary.skipped_no_tf:
        log.warning("%d cloud(s) skipped: no transform to '%s' at their stamp", summary.skipped_no_tf,
                    gravity_frame)
    if summary.skipped_no_tracking_tf:
        log.warning("%d cloud(s) skipped: no transform to the tracking frame '%s' at their stamp",
                    summary.skipped_no_tracking_tf, tracking_frame)
    summary.tracks = sum(len(ids) for ids in published.values())
    return summary


def _pose_or_skip(tf: "TransformBuffer", target: str, msg: Any, topic: str, stamp: int, summary: RunSummary,
                  counter: str, reason: str, what: str) -> "np.ndarray | None":
    """target <- the cloud's frame at its header stamp, or None: the cloud is to be skipped; it is counted in
    summary.<counter>, and the first LOGGED_SKIPS of a kind are named in the log."""
    from ..transforms import TransformError, normalize_frame, stamp_ns

    try:
        return tf.lookup(target, str(msg.header.frame_id), stamp_ns(msg.header.stamp))
    except TransformError as exc:
        count = getattr(summary, counter) + 1
        setattr(summary, counter, count)
        if count <= LOGGED_SKIPS:
            log.warning("%s at %d ns: cloud in '%s' skipped: %s%s%s", topic, stamp,
                        normalize_frame(str(msg.header.frame_id)), reason, exc,
                        "" if count < LOGGED_SKIPS else f" (further clouds without {what} are only counted)")
        return None


def _copy_connections(reader: Any, connections: list[Any], writer: Any,
                      store: Any) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Output connections for every input connection (same QoS profiles; ROS 1 latched topics become
    transient-local), and a raw-message converter per input type (identity for ROS 2 input of the same wire
    format; ROS 1 -> CDR for ROS 1 bags), using rosbags' bag converter. `reader` is a bags.Bag (it has the
    `is2` and `typestore` the converter reads)."""
    from rosbags.convert.converter import create_connections_converters

    chatter = io.StringIO()  # the converter prints notes ("Msgtype will be migrated"); send them to the log
    with contextlib.redirect_stdout(chatter):
        connmap, convmap = create_connections_converters(connections, store, reader, writer)
    for line in chatter.getvalue().splitlines():
        log.info("rosbags: %s", line)
    return connmap, convmap
