"""One frame through the pipeline, shared by the node and the offline runner (no rclpy here).

FrameProcessor: PointCloud2 -> decode -> Pipeline.segment -> the requested output messages, with stage
timings; with a gravity frame (name and 4x4 transform from the input frame), the points are segmented in that
z-up frame and detections, markers and instances are stamped with it, while the labeled cloud keeps the input's
header (it is point-for-point the input cloud). An empty cloud, or one without a usable point, is still a
frame: a labeled cloud of the same shape, markers that only clear (DELETEALL), no detections, no instances.
With tracking (a TrackingInput: the topic's Tracker and the pose of the cloud's frame in the tracking frame at
its stamp), the instances get track ids after segmentation (cost in timings "tracking") and all four outputs
publish only confirmed tracks, under their track ids and colours (cloud.InstanceLabels); a frame the tracker
skips (no pose, bad pose) is published with no instance at all rather than with rank ids, and the result says
why (FrameResult.tracking.skipped_reason). Callers that cannot look the pose up are expected to skip the frame
before segmenting it, as for a missing gravity transform (the runner does).
InTurnMailbox: the node's one-slot-per-input hand-over from the subscription callbacks to the worker thread (a
newer frame replaces an unprocessed one of the same input, counted as dropped; inputs are served in turn).
FrameStats: what /diagnostics says. RateWindow and
Throughput: the node's input and output rates and how long no cloud came, on a monotonic clock (injectable for
tests), with the problems they show (throughput_problems).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, Sequence, TypeVar

import numpy as np

from ..cloud_io import CloudArrays
from ..config import GroupingConfig, PostprocessConfig, PreprocessConfig
from ..transforms import stamp_ns
from .cloud import CloudLayout, InstanceLabels, cloud_layout, decode_cloud, encode_labeled_cloud
from .kit import MessageKit
from .messages import build_detections, build_instances, build_markers

if TYPE_CHECKING:
    from ..pipeline import Segmentation
    from ..tracking import Tracker, TrackingResult

OUTPUTS = ("labeled_points", "detections", "markers", "instances")
RATE_WINDOW_S = 10.0  # the sliding window of the input / output rates in /diagnostics
MIN_INPUT_HZ = 1.0  # below this input rate, comparing the output rate with it says nothing
MIN_OUTPUT_SHARE = 0.5  # WARN when fewer than this share of the input frames are published (and frames drop)


class SegmentingPipeline(Protocol):
    """What the node and the runner use of pointgroup_ros.pipeline.Pipeline (tests pass a fake)."""

    max_points: int

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def segment(self, xyz: np.ndarray, rgb: np.ndarray | None = None, valid: np.ndarray | None = None,
                grouping: GroupingConfig | None = None, postprocess: PostprocessConfig | None = None,
                preprocess: PreprocessConfig | None = None,
                gravity_transform: np.ndarray | None = None) -> "Segmentation": ...


@dataclass
class FrameResult:
    """Outputs of one frame: messages (None where not requested), the arrays, and timings in ms."""

    cloud: CloudArrays
    layout: CloudLayout
    seg: "Segmentation"
    messages: dict[str, Any]
    timings_ms: dict[str, float]
    labels: InstanceLabels | None = None  # the published ids (None: ranks, every instance published)
    tracking: "TrackingResult | None" = None  # with tracking: this frame's result (skipped_reason when skipped)

    @property
    def published(self) -> InstanceLabels:
        """Which instances were published and under which id (ranks when no labels were given)."""
        return InstanceLabels.of(self.seg, self.labels)


@dataclass(frozen=True)
class TrackingInput:
    """What FrameProcessor.process needs to track a frame: the topic's tracker (one per input topic, it keeps
    state between frames) and fixed_from_input, the 4x4 pose of the cloud's frame in the tracking frame
    (odom, map) at the cloud's stamp, None when unknown (the tracker then skips the frame)."""

    tracker: "Tracker"
    fixed_from_input: np.ndarray | None


Gravity = tuple[str, np.ndarray]  # (gravity frame id, rigid 4x4 transform: input frame -> gravity frame)


class FrameProcessor:
    """Turns PointCloud2 messages into output messages with one pipeline and one message kit.

    marker_lifetime: seconds the box and label markers live (0: until replaced); the node updates it live.
    """

    def __init__(self, pipeline: SegmentingPipeline, kit: MessageKit, marker_lifetime: float = 0.0) -> None:
        self.pipeline = pipeline
        self.kit = kit
        self.marker_lifetime = marker_lifetime

    def process(self, msg: Any, outputs: tuple[str, ...] = OUTPUTS, grouping: GroupingConfig | None = None,
                postprocess: PostprocessConfig | None = None, preprocess: PreprocessConfig | None = None,
                gravity: Gravity | None = None, tracking: TrackingInput | None = None) -> FrameResult:
        """Segment `msg` and build the messages named in `outputs` (a subset of OUTPUTS).

        grouping / postprocess / preprocess: per-frame settings (None: the pipeline's configuration).
        gravity: None (the input frame is z-up), or (gravity frame id, 4x4 matrix taking input points into it):
        the pipeline segments in that frame, and detections, markers and instances get header.frame_id = the
        gravity frame (same stamp); the labeled cloud keeps the input header.
        tracking: None (instances published under their rank m), or the topic's tracker and the pose of the
        cloud's frame in the tracking frame: the instances get track ids (timings "tracking"), only confirmed
        tracks are published, under their track ids; a frame the tracker skips publishes no instance.
        Raises cloud.CloudFormatError for a malformed cloud (nothing is built then).
        """
        unknown = set(outputs) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown output(s) {', '.join(sorted(unknown))} (known: {', '.join(OUTPUTS)})")
        t0 = time.perf_counter()
        layout = cloud_layout(msg)
        cloud = decode_cloud(msg, layout=layout)
        t1 = time.perf_counter()
        extra: dict[str, Any] = {}  # only what is set: a pipeline without these arguments still works without them
        if preprocess is not None:
            extra["preprocess"] = preprocess
        if gravity is not None:
            extra["gravity_transform"] = np.asarray(gravity[1], np.float64)
        seg = self.pipeline.segment(cloud.xyz, cloud.rgb, cloud.valid, grouping=grouping, postprocess=postprocess,
                                    **extra)
        t2 = time.perf_counter()
        if seg.semantic.shape[0] != cloud.num_points:
            raise RuntimeError(f"pipeline returned {seg.semantic.shape[0]} labels for {cloud.num_points} points")
        if gravity is not None and getattr(seg, "frame", "gravity") != "gravity":
            raise RuntimeError(f"pipeline returned boxes in the {seg.frame!r} frame although a gravity transform "
                               "was given")
        timings = {"decode": (t1 - t0) * 1e3, **{f"pipeline/{k}": v for k, v in seg.timings_ms.items()},
                   "pipeline": (t2 - t1) * 1e3}
        header = msg.header
        labels: InstanceLabels | None = None
        tracked: TrackingResult | None = None
        if tracking is not None:
            tracked = tracking.tracker.update(seg, cloud.xyz, tracking.fixed_from_input, stamp_ns(header.stamp))
            timings["tracking"] = tracked.update_ms
            labels = (InstanceLabels.hidden(seg.num_instances) if tracked.skipped
                      else InstanceLabels(tracked.track_ids, tracked.confirmed & (tracked.track_ids >= 0)))
        # boxes and instances live where the pipeline put them: the gravity frame when one was given
        box_header = header if gravity is None else _Header(header.stamp, gravity[0])
        messages: dict[str, Any] = {}
        for name in OUTPUTS:
            if name not in outputs:
                continue
            t = time.perf_counter()
            if name == "labeled_points":
                messages[name] = encode_labeled_cloud(self.kit, header, cloud, seg, labels)
            elif name == "detections":
                messages[name] = build_detections(self.kit, box_header, seg, labels)
            elif name == "markers":
                messages[name] = build_markers(self.kit, box_header, seg, lifetime=self.marker_lifetime,
                                               labels=labels)
            else:
                messages[name] = build_instances(self.kit, box_header, seg, cloud.height, cloud.width, labels)
            timings[f"build/{name}"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return FrameResult(cloud, layout, seg, messages, timings, labels, tracked)


@dataclass(frozen=True)
class _Header:
    """A header-like (stamp, frame_id) pair: header_of() copies it into each output's own header."""

    stamp: Any
    frame_id: str


T = TypeVar("T")


class InTurnMailbox(Generic[T]):
    """One-slot mailboxes, one per input, emptied by one worker in turn.

    put() never blocks and replaces the input's item not yet taken (counted in dropped[input]); take() gives the
    newest item of the next input, round robin from the one after the input last served, so a camera that sends
    fast cannot starve a slower one: with k inputs busy, each gets every k-th frame the worker segments.
    """

    def __init__(self, inputs: Sequence[str] = ("",)) -> None:
        self._cond = threading.Condition()
        self._inputs = tuple(inputs)
        self._items: dict[str, T] = {}
        self._next = 0  # index of the input served first at the next take()
        self._closed = False
        self.dropped = dict.fromkeys(self._inputs, 0)
        self.received = dict.fromkeys(self._inputs, 0)

    def put(self, name: str, item: T) -> bool:
        """Leave `item` of input `name` for the worker; True when it replaced (dropped) an older one."""
        with self._cond:
            replaced = name in self._items
            self.dropped[name] += int(replaced)
            self.received[name] += 1
            self._items[name] = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> tuple[str, T] | None:
        """(input, its newest item) of the next input in turn that has one, waiting up to `timeout` seconds;
        None on timeout or after close()."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._closed or not self._items:
                return None
            count = len(self._inputs)
            for step in range(count):
                index = (self._next + step) % count
                name = self._inputs[index]
                if name in self._items:
                    self._next = (index + 1) % count
                    return name, self._items.pop(name)
            return None  # pragma: no cover - every key of _items is an input

    def clear(self) -> None:
        """Forget the items not yet taken (the input stopped: they are not worth segmenting any more)."""
        with self._cond:
            self._items.clear()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass
class FrameStats:
    """Counters and the latest timings, read by the diagnostics timer (under `lock`)."""

    frames_processed: int = 0
    frames_rejected: int = 0  # malformed input
    frames_failed: int = 0  # exceptions in the pipeline or the builders
    frames_skipped_no_tf: int = 0  # no gravity_frame <- input frame transform at the cloud's stamp
    last_points: int = 0
    last_instances: int = 0
    last_network_points: int = 0
    last_input_age_ms: float = float("nan")
    last_timings_ms: dict[str, float] = field(default_factory=dict)
    last_error: str = ""
    last_frame_ok: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, result: FrameResult, input_age_ms: float) -> None:
        with self.lock:
            self.frames_processed += 1
            self.last_points = result.cloud.num_points
            self.last_instances = result.published.num_published
            self.last_network_points = int(getattr(result.seg, "network_points", 0))
            self.last_input_age_ms = input_age_ms
            self.last_timings_ms = dict(result.timings_ms)
            self.last_frame_ok = True

    def record_error(self, rejected: bool, error: str) -> None:
        with self.lock:
            if rejected:
                self.frames_rejected += 1
            else:
                self.frames_failed += 1
            self.last_error = error
            self.last_frame_ok = False

    def record_skip(self, error: str) -> None:
        """A frame skipped because its transform to the gravity frame is not available."""
        with self.lock:
            self.frames_skipped_no_tf += 1
            self.last_error = error
            self.last_frame_ok = False

    def key_values(self, dropped: int, received: int) -> list[tuple[str, str]]:
        """(key, value) strings for a diagnostic_msgs/DiagnosticStatus."""
        with self.lock:
            values = [("frames received", str(received)), ("frames processed", str(self.frames_processed)),
                      ("frames dropped (newer frame arrived)", str(dropped)),
                      ("frames rejected (bad input)", str(self.frames_rejected)),
                      ("frames skipped (no transform)", str(self.frames_skipped_no_tf)),
                      ("frames failed", str(self.frames_failed)), ("points in last frame", str(self.last_points)),
                      ("points seen by the network in last frame", str(self.last_network_points)),
                      ("instances in last frame", str(self.last_instances)),
                      ("input age ms (last frame, at publish)", f"{self.last_input_age_ms:.1f}")]
            values += [(f"time ms: {k}", f"{v:.2f}") for k, v in self.last_timings_ms.items()]
            if self.last_error:
                values.append(("last error", self.last_error))
            return values


@dataclass(frozen=True)
class WindowReading:
    """One RateWindow at one instant."""

    count: int  # events in the window
    rate_hz: float  # count / the window (or / the time since restart, while that is shorter)
    since_last_s: float | None  # seconds since the last event, restarts included; None: none ever
    silent_s: float  # seconds without an event, counted from the (re)start while none came since


class RateWindow:
    """Times of events (clock() seconds) over the last `window_s` seconds: their rate, and how long none came.

    Thread-safe: the subscription callback, the worker and the diagnostics timer each use one. clock: a monotonic
    clock (time.monotonic; tests pass a fake), never the ROS clock, which stops with a paused bag's /clock.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self._start = clock()
        self._last: float | None = None

    def restart(self) -> None:
        """Count from now (e.g. the model is ready): earlier events leave the rate; the last one's time is kept."""
        with self._lock:
            self._times.clear()
            self._start = self._clock()

    def tick(self) -> None:
        """One event, now."""
        with self._lock:
            now = self._clock()
            self._times.append(now)
            self._last = now
            self._trim(now)

    def read(self) -> WindowReading:
        with self._lock:
            now = self._clock()
            self._trim(now)
            count = len(self._times)
            # while the window is not yet full since the (re)start, the rate is over the time that passed
            span = min(self.window_s, now - self._start)
            last = self._last
            silent_since = self._start if last is None else max(last, self._start)
        return WindowReading(count=count, rate_hz=count / span if span > 0 else 0.0,
                             since_last_s=None if last is None else now - last, silent_s=now - silent_since)

    def _trim(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()


@dataclass(frozen=True)
class ThroughputReading:
    """Clouds received, frames published and frames dropped (replaced in the mailbox) over the window."""

    window_s: float
    clouds: WindowReading
    published: WindowReading
    dropped: WindowReading

    def key_values(self) -> list[tuple[str, str]]:
        """(key, value) strings for a diagnostic_msgs/DiagnosticStatus."""
        window = f"last {self.window_s:g} s"
        since = self.clouds.since_last_s
        return [(f"input rate Hz ({window})", f"{self.clouds.rate_hz:.2f}"),
                (f"output rate Hz ({window}, frames published)", f"{self.published.rate_hz:.2f}"),
                (f"frames dropped ({window})", str(self.dropped.count)),
                ("seconds since last cloud", "never" if since is None else f"{since:.1f}")]


def throughput_problems(reading: ThroughputReading, topic: str, stale_s: float, listened: bool,
                        dropped_total: int) -> list[str]:
    """What is wrong with the node's input and output, in plain words (empty: nothing).

    No cloud for stale_s seconds (0: never warned), counted from the (re)start while none came; and, while
    someone listens, frames dropped because processing is slower than the input: fewer than MIN_OUTPUT_SHARE of
    an input over MIN_INPUT_HZ published, with drops in the window (an output below the input without drops has
    another cause: skipped or bad frames, which /diagnostics reports by themselves, or subscribers that just came).
    """
    problems = []
    clouds, published = reading.clouds, reading.published
    if stale_s > 0 and clouds.silent_s >= stale_s:
        never = " (none yet)" if clouds.since_last_s is None else ""
        problems.append(f"no cloud on {topic} for {clouds.silent_s:.1f} s{never}")
    if (listened and clouds.rate_hz > MIN_INPUT_HZ and published.rate_hz < MIN_OUTPUT_SHARE * clouds.rate_hz
            and reading.dropped.count > 0):
        problems.append(f"frames are dropped: processing is slower than the input (output "
                        f"{published.rate_hz:.1f} Hz, input {clouds.rate_hz:.1f} Hz; frames dropped (newer frame "
                        f"arrived): {reading.dropped.count} in the last {reading.window_s:g} s, {dropped_total} "
                        "in all)")
    return problems


class Throughput:
    """The node's rate bookkeeping: clouds received (subscription callback), frames published (worker), frames
    dropped (a newer cloud replaced one in the mailbox), each a RateWindow on the same clock."""

    def __init__(self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clouds = RateWindow(window_s, clock)
        self.published = RateWindow(window_s, clock)
        self.dropped = RateWindow(window_s, clock)

    def restart(self) -> None:
        """Count from now: the node is ready (frames received or dropped while loading say nothing of its speed,
        and a silent input is counted from here)."""
        for window in (self.clouds, self.published, self.dropped):
            window.restart()

    def cloud_received(self, replaced: bool) -> None:
        """A cloud arrived; replaced: it dropped an unprocessed one (InTurnMailbox.put's answer)."""
        self.clouds.tick()
        if replaced:
            self.dropped.tick()

    def frame_published(self) -> None:
        self.published.tick()

    def read(self) -> ThroughputReading:
        return ThroughputReading(self.window_s, self.clouds.read(), self.published.read(), self.dropped.read())


def diagnostic_status(kit: MessageKit, name: str, hardware_id: str, level: int, message: str,
                      values: list[tuple[str, str]]) -> Any:
    """diagnostic_msgs/DiagnosticStatus (level 0 OK, 1 WARN, 2 ERROR)."""
    return kit.make("diagnostic_msgs/msg/DiagnosticStatus", level=kit.byte(level), name=name, message=message,
                    hardware_id=hardware_id,
                    values=[kit.make("diagnostic_msgs/msg/KeyValue", key=k, value=v) for k, v in values])


def diagnostic_array(kit: MessageKit, stamp: Any, statuses: list[Any]) -> Any:
    header = kit.make("std_msgs/msg/Header", stamp=stamp, frame_id="")
    return kit.make("diagnostic_msgs/msg/DiagnosticArray", header=header, status=statuses)


def build_diagnostics(kit: MessageKit, stamp: Any, name: str, hardware_id: str, level: int, message: str,
                      values: list[tuple[str, str]]) -> Any:
    """diagnostic_msgs/DiagnosticArray with one status."""
    return diagnostic_array(kit, stamp, [diagnostic_status(kit, name, hardware_id, level, message, values)])

