"""The `pointgroup` rclpy node: a thin lifecycle shell around FrameProcessor (processing.py).

A managed node: configure loads and warms the model and starts a worker thread, activate subscribes (raw) to each
input's ~/[k/]input/points and enables the lifecycle publishers, deactivate stops taking frames, cleanup frees
the model. The worker segments each input's newest frame in turn (InTurnMailbox: one slot per input, so the
executor never blocks and frames that arrive meanwhile are dropped and counted) and publishes ~/[k/]labeled_points,
detections, markers, instances (those enabled and subscribed to); /diagnostics has one status per input.
With `gravity_frame` set, each cloud is rotated into that z-up frame (tf2 lookup at the cloud's stamp, in the
worker) and detections, markers and instances are published in it. With `tracking` on, one
pointgroup_ros.tracking.Tracker per input gives the instances track ids in `tracking_frame` (tf2 lookup
tracking_frame <- input frame at the cloud's stamp; a frame without it is skipped, the tracks kept), and all four
outputs publish the confirmed tracks under their ids. /diagnostics: statuses named after the node's fully
qualified name (two namespaced nodes stay apart), with input / output rates and how long no cloud came, on a
monotonic clock (processing.Throughput). Parameters: params.py (validated in an on-set callback,
applied from the next frame; config, weights and device at the next configure; turning tracking off, or changing
tracking_frame, forgets the tracks). The core's Python logging ("pointgroup_ros") is forwarded to the node's
logger. A node that cannot be built, or whose autostart configure fails, ends the process with exit code 1
(main). Ctrl-C at any moment (configuring, mid-frame, idle) ends it with code 0 within ~3 s: the worker (a daemon
thread) neither publishes nor logs once shutdown began, and is waited for at most WORKER_JOIN_S. Needs ROS 2.
"""
from __future__ import annotations

import functools
import importlib
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

try:
    import rclpy
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.duration import Duration
    from rclpy.executors import ExternalShutdownException
    from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
    from rclpy.logging import get_logger
    from rclpy.parameter import Parameter
    from rclpy.publisher import Publisher
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from rclpy.time import Time
except ImportError as exc:  # pragma: no cover - exercised only where ROS 2 is missing
    raise ImportError(f"pointgroup_ros.ros.node needs ROS 2 (rclpy; {exc}). Source your ROS 2 setup "
                      "(e.g. /opt/ros/humble/setup.bash) and the workspace's install/setup.bash first.") from exc

import numpy as np

from ..config import Config
from ..tracking import Tracker, TrackingResult
from ..transforms import TransformError, matrix_from_transform_msg, normalize_frame
from .cloud import CloudFormatError
from .kit import RclpyKit
from .params import (FROM_MODEL, NodeSettings, ParameterError, ParamSpec, apply_changes, input_names, param_specs,
                     to_descriptor)
from .processing import (OUTPUTS, FrameProcessor, FrameStats, Gravity, InTurnMailbox, SegmentingPipeline,
                         Throughput, TrackingInput, diagnostic_array, diagnostic_status, throughput_problems)
from .typestore import OUTPUT_TYPES

PipelineFactory = Callable[[Config, str, str, int], SegmentingPipeline]
ModelResolver = Callable[[str, str], Config]  # (config, weights) -> the configuration to run
WARN_THROTTLE_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0
OK, WARN, ERROR = 0, 1, 2
CORE_LOGGER = "pointgroup_ros"  # the Python logger of the ROS-free core (pipeline, model, ...)
OPTICAL_SUFFIX = "_optical_frame"
# destroy_node waits this long for the worker (a frame in progress may finish; a longer one is not waited for):
# Ctrl-C ends the process within ~3 s whatever the worker is doing (it is a daemon thread)
WORKER_JOIN_S = 1.0
# what the node is doing, as /diagnostics says it (the lifecycle state, and a failed configure's reason)
UNCONFIGURED = "unconfigured (no model loaded)"
INACTIVE = "inactive (model loaded, not taking clouds)"
READY = "ready"
CONFIGURING = "configuring: loading the model"
MODEL_FAILED = "model failed to load"  # followed by ": reason"


def default_resolver(config: str, weights: str) -> Config:
    """The configuration to run (pipeline.resolve_model: reads the checkpoint, builds nothing; imports torch)."""
    from ..pipeline import resolve_model

    resolved: tuple[Config, Any] = resolve_model(config or None, weights or None)
    return resolved[0]


def default_pipeline(cfg: Config, weights: str, device: str, max_points: int) -> SegmentingPipeline:
    """The real pipeline (imports torch); loads and warms up the model."""
    from ..pipeline import Pipeline

    pipeline: SegmentingPipeline = Pipeline(cfg, weights=weights or None, device=device, max_points=max_points)
    return pipeline


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy,
                      durability=DurabilityPolicy.VOLATILE)


class ModelLoadError(RuntimeError):
    """The model (configuration or weights) cannot be loaded; the message says why."""


class RosLogHandler(logging.Handler):
    """Forwards Python log records (the core's "pointgroup_ros" loggers) to an rclpy logger.

    Severity is kept (DEBUG, INFO, WARNING, ERROR, CRITICAL -> debug, info, warning, error, fatal). Records from
    one call site are throttled to one per `throttle_s` seconds, so a warning the core gives for every frame
    (e.g. a cloud over max_points) does not flood the console. Records are dropped while `enabled()` is False
    (the node is shutting down: its logger's /rosout publisher may already be on a dead context).
    """

    _METHODS = ((logging.CRITICAL, "fatal"), (logging.ERROR, "error"), (logging.WARNING, "warning"),
                (logging.INFO, "info"))

    def __init__(self, ros_logger: Any, throttle_s: float = WARN_THROTTLE_S,
                 enabled: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self._ros = ros_logger
        self._enabled = enabled  # False once shutdown began: rclpy's logger would publish on a dead context
        self._throttle_s = throttle_s
        self._last: dict[tuple[str, int], float] = {}
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self._enabled():
                return
            now = time.monotonic()
            site = (record.pathname, record.lineno)
            last = self._last.get(site)
            if last is not None and now - last < self._throttle_s:
                return
            self._last[site] = now
            method = next((name for level, name in self._METHODS if record.levelno >= level), "debug")
            getattr(self._ros, method)(f"[{record.name}] {self.format(record)}")
        except Exception:  # a logging problem must never break the caller
            self.handleError(record)


def input_prefix(name: str) -> str:
    """Where input `name`'s topics live, relative to the node ('' = the single default input: ~/)."""
    return f"~/{name}/" if name else "~/"


@dataclass
class _Input:
    """One camera / lidar the node serves: its topics, counters and tracker ('' = the single default input,
    with the topics of a one-input node: ~/input/points, ~/labeled_points, ...)."""

    name: str
    topic: str  # the resolved input topic
    pubs: dict[str, Publisher]  # output name -> lifecycle publisher
    stats: FrameStats
    throughput: Throughput
    subscription: Any = None
    tracker: Tracker | None = None  # built by the worker on the input's first tracked frame
    tracker_epoch: int = -1
    tracks_confirmed: int = 0
    skipped_no_tracking_tf: int = 0
    tracking_advice: str = ""  # why the tracker skipped the latest frame (bad pose), shown in /diagnostics
    frame_advice: str = ""  # a warning about the input frame, shown in /diagnostics while it applies
    warned_no_colour: bool = False
    warned_optical: bool = False

    @property
    def prefix(self) -> str:
        return input_prefix(self.name)

    def forget_tracks(self) -> None:
        self.tracker = None
        self.tracks_confirmed = 0
        self.tracking_advice = ""


class PointGroupNode(LifecycleNode):
    """PointGroup instance segmentation of PointCloud2 frames, as a managed (lifecycle) node.

    unconfigured -> configure (load and warm up the model, start the worker) -> inactive -> activate (subscribe,
    publish) -> active; deactivate stops taking frames, cleanup frees the model and its GPU memory, shutdown
    works from any state. config, weights and device are read at each configure.

    pipeline_factory builds the (warm) pipeline at configure; model_resolver gives the configuration (from
    `config` and `weights`, cheap) at construction, for the parameters, and again at a configure after either
    changed. Tests pass fakes of both. monotonic: the clock of the rates and of the no-cloud warning in
    /diagnostics (tests pass a fake one).
    """

    def __init__(self, pipeline_factory: PipelineFactory = default_pipeline,
                 model_resolver: ModelResolver = default_resolver, monotonic: Callable[[], float] = time.monotonic,
                 **node_kwargs: Any) -> None:
        super().__init__("pointgroup", **node_kwargs)
        # set when shutdown begins (destroy_node); with the context's ok() it keeps the worker from publishing or
        # logging through rclpy afterwards (_publish_lock: destroy_node never tears publishers down mid-publish)
        self._closing = threading.Event()
        self._publish_lock = threading.Lock()
        self._kit = RclpyKit()
        self._factory = pipeline_factory
        self._resolver = model_resolver
        self._log_handler = self._install_log_handler()
        try:
            self._setup(monotonic)
        except BaseException:
            self._remove_log_handler()
            raise

    def _setup(self, monotonic: Callable[[], float]) -> None:
        first = {s.name: s for s in param_specs()}
        for name in ("autostart", "config", "weights", "device"):
            self._declare(first[name])
        self.autostart = bool(self.get_parameter("autostart").value)
        self._model_source = (self._str("config"), self._str("weights"))
        cfg = self._resolve(*self._model_source)
        self._specs = {s.name: s for s in param_specs(cfg)}
        for spec in self._specs.values():
            if spec.name not in ("autostart", "config", "weights", "device"):
                self._declare(spec)
        values = {name: self.get_parameter(name).value for name in NodeSettings().values()}
        try:
            self._settings = apply_changes(NodeSettings(), values, self._specs)
        except ParameterError as exc:
            raise ValueError(f"invalid parameter at start-up: {exc}") from None
        self._cfg = cfg
        self._tf_buffer: Any = None
        self._tf_listener: Any = None
        self._tf_error: type[BaseException] = Exception
        if self._settings.gravity_frame or self._settings.tracking:
            self._ensure_tf()
        # tracking: the settings and the tracking epoch change together (under this lock); a new epoch (tracking
        # turned off, or tracking_frame changed) makes the worker forget the tracks before its next frame
        self._settings_lock = threading.Lock()
        self._tracking_epoch = 0
        self._reporting = False  # True while the node itself sets a reported parameter (class_names)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        try:
            names = input_names(self._str("inputs"))
        except ParameterError as exc:
            raise ValueError(f"invalid parameter at start-up: {exc}") from None
        out_qos = qos_profile(self._str("output_reliability"), self._int("output_depth"))
        self._inputs: list[_Input] = []
        for name in names:
            prefix = input_prefix(name)
            self._inputs.append(_Input(
                name=name, topic=self.resolve_topic_name(f"{prefix}input/points"),
                # lifecycle publishers: they publish only while the node is active
                pubs={out: self.create_lifecycle_publisher(self._kit.cls(OUTPUT_TYPES[out]), f"{prefix}{out}",
                                                           out_qos) for out in OUTPUTS},
                # the ROS clock may be sim time, which stops with the bag: rates and silence are measured on a
                # monotonic one
                stats=FrameStats(), throughput=Throughput(clock=monotonic)))
        self._by_name = {inp.name: inp for inp in self._inputs}
        self._diag_pub = self.create_publisher(self._kit.cls("diagnostic_msgs/msg/DiagnosticArray"),
                                               "/diagnostics", 10)
        self._cloud_type = self._kit.cls("sensor_msgs/msg/PointCloud2")
        self._mailbox: InTurnMailbox[bytes] = InTurnMailbox(names)
        self._mailbox.close()  # a new one at each configure
        self._device = self._str("device")  # the pipeline's own once loaded (diagnostics' hardware_id)
        self._state = UNCONFIGURED
        self._active = False  # frames are published only while active (checked by the worker)
        self._pipeline: SegmentingPipeline | None = None
        self._worker: threading.Thread | None = None
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if not self.autostart:
            self.get_logger().info(f"unconfigured: `ros2 lifecycle set {self.get_fully_qualified_name()} configure` "
                                   "loads the model, `... activate` starts taking clouds (or start with "
                                   "autostart:=true)")

    def _resolve(self, config: str, weights: str) -> Config:
        """The configuration to run, from `config` and `weights` (ModelLoadError with the reason)."""
        try:
            return self._resolver(config, weights)
        except Exception as exc:
            raise ModelLoadError(f"cannot load the model (config {config!r}, weights {weights!r}): {exc}") from exc

    # ------------------------------------------------------------------ lifecycle transitions
    def start(self) -> bool:
        """configure, then activate (autostart); False when either failed (the reason is logged)."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return bool(self.trigger_activate() == TransitionCallbackReturn.SUCCESS)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm up the model (config, weights and device as they are now), start the worker."""
        self._state = CONFIGURING
        try:
            cfg = self._adopt_model()
            pipeline = self._factory(cfg, self._str("weights"), self._str("device"), self._settings.max_points)
        except Exception as exc:
            self._state = f"{MODEL_FAILED}: {exc}"
            if self._alive():
                self.get_logger().error(self._state)
            return TransitionCallbackReturn.FAILURE
        if not self._alive():  # shutdown began while loading
            return TransitionCallbackReturn.FAILURE
        self._pipeline = pipeline
        self._device = str(getattr(pipeline, "device", self._device))
        self._mailbox = InTurnMailbox([inp.name for inp in self._inputs])
        self._worker = threading.Thread(target=self._work, args=(pipeline, self._mailbox), name="pointgroup-worker",
                                        daemon=True)
        self._worker.start()
        self._state = INACTIVE
        self.get_logger().info(f"configured: config {self._model_source[0] or '(from the weights)'}, device "
                               f"{self._device}, {len(pipeline.class_names)} classes")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the inputs; the outputs publish from now on."""
        qos = qos_profile(self._str("input_reliability"), self._int("input_depth"))
        for inp in self._inputs:
            # raw: the executor hands over the serialized cloud; only the frames the worker takes are deserialized
            # (at 30 Hz most are replaced unread, and a 320x240 cloud costs milliseconds to deserialize)
            inp.subscription = self.create_subscription(
                self._cloud_type, f"{inp.prefix}input/points",
                functools.partial(self._on_cloud, inp.name), qos, raw=True)
            inp.throughput.restart()  # a silent input is counted from here
        self._active = True
        self._state = READY
        settings = self._settings
        tracking = f"tracking in {settings.tracking_frame}" if settings.tracking else "tracking off"
        self.get_logger().info(f"ready: gravity frame {settings.gravity_frame or '(the input frame)'}, {tracking}; "
                               f"waiting for clouds on {', '.join(inp.topic for inp in self._inputs)}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking frames (the subscription goes; a frame in progress is not published)."""
        self._stop_input()
        self._state = INACTIVE
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model and its GPU memory; configure loads it again."""
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._release()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured

    def _stop_input(self) -> None:
        self._active = False
        for inp in self._inputs:
            if inp.subscription is not None:
                self.destroy_subscription(inp.subscription)
                inp.subscription = None
        self._mailbox.clear()

    def _release(self, wait_s: float | None = None) -> None:
        """Stop the worker (waiting up to wait_s for a frame in progress; None: until it ends), drop the tracks
        and the model: pipeline.close() frees its GPU memory (torch's and CuPy's pools)."""
        self._mailbox.close()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=wait_s)
        pipeline, self._pipeline = self._pipeline, None
        for inp in self._inputs:
            inp.forget_tracks()
        close = getattr(pipeline, "close", None)
        if close is not None and not (worker is not None and worker.is_alive()):
            close()  # (a worker still in a frame at shutdown keeps its model until it ends)
        del pipeline
        self._state = UNCONFIGURED

    def _adopt_model(self) -> Config:
        """The configuration for this configure: re-resolved when config or weights changed since the last one;
        then the parameters that follow the model (class_names, and each tunable still at the old model's default)
        take the new model's values."""
        source = (self._str("config"), self._str("weights"))
        if source == self._model_source:
            return self._cfg
        cfg = self._resolve(*source)
        old_specs, self._specs = self._specs, {s.name: s for s in param_specs(cfg)}
        changes = [Parameter(name, value=list(spec.default) if isinstance(spec.default, tuple) else spec.default)
                   for name, spec in self._specs.items()
                   if (name in FROM_MODEL or spec.reported) and spec.default != old_specs[name].default
                   and (spec.reported or self.get_parameter(name).value == old_specs[name].default)]
        self._reporting = True
        try:
            results = self.set_parameters(changes)
        finally:
            self._reporting = False
        refused = [f"{p.name}: {r.reason}" for p, r in zip(changes, results) if not r.successful]
        if refused:
            self._specs = old_specs
            raise ModelLoadError(f"the new model's defaults are refused: {'; '.join(refused)}")
        self._model_source, self._cfg = source, cfg
        return cfg

    # ------------------------------------------------------------------ logging of the core
    def _install_log_handler(self) -> RosLogHandler:
        """Route the core's Python logging to this node's logger (removed again in destroy_node)."""
        handler = RosLogHandler(self.get_logger(), enabled=self._alive)
        core = logging.getLogger(CORE_LOGGER)
        self._core_log_state = (core.level, core.propagate)
        try:
            level = int(self.get_logger().get_effective_level())  # rcutils severities are logging's numbers
        except Exception:
            level = logging.INFO
        core.setLevel(level if level > 0 else logging.INFO)
        core.propagate = False  # printed once, by rclpy (not again by a root handler)
        core.addHandler(handler)
        return handler

    def _remove_log_handler(self) -> None:
        core = logging.getLogger(CORE_LOGGER)
        if self._log_handler in core.handlers:
            core.removeHandler(self._log_handler)
            core.setLevel(self._core_log_state[0])
            core.propagate = self._core_log_state[1]

    # ------------------------------------------------------------------ parameters
    def _declare(self, spec: ParamSpec) -> None:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        # a reported value (class_names) ignores params-file overrides: it always says what the model has
        self.declare_parameter(spec.name, default, to_descriptor(spec), ignore_override=not spec.in_params_file)

    def _str(self, name: str) -> str:
        return str(self.get_parameter(name).value)

    def _int(self, name: str) -> int:
        return int(self.get_parameter(name).value)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        if self._reporting:  # the node's own update at configure: reported values pass
            changes = {k: v for k, v in changes.items() if k not in self._specs or not self._specs[k].reported}
        try:
            settings = apply_changes(self._settings, changes, self._specs)
            if settings.gravity_frame or settings.tracking:
                self._ensure_tf()
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._settings_lock:
            old = self._settings
            if old.tracking and (not settings.tracking or settings.tracking_frame != old.tracking_frame):
                self._tracking_epoch += 1  # the tracks are forgotten before the next tracked frame
            self._settings = settings
        later = sorted(k for k in changes if self._specs.get(k) is not None and self._specs[k].on_configure)
        if later and self._state != UNCONFIGURED and not self._state.startswith(MODEL_FAILED):
            self.get_logger().info(f"{', '.join(later)} will apply at the next configure (now {self._state}: "
                                   f"deactivate, cleanup, configure, activate)")
        return SetParametersResult(successful=True, reason="")

    def _ensure_tf(self) -> None:
        """The tf2 buffer and listener, created when a gravity frame or tracking is first asked for (executor
        thread)."""
        if self._tf_buffer is not None:
            return
        try:
            # imported here: only a node with a gravity frame or tracking needs tf2_ros (importlib: tf2_ros ships
            # no types)
            tf2_ros = importlib.import_module("tf2_ros")
        except ImportError as exc:
            raise ParameterError(f"gravity_frame and tracking need tf2_ros, which cannot be imported: {exc}") from None
        self._tf_error = tf2_ros.TransformException
        self._tf_buffer = tf2_ros.Buffer()
        # the listener's /tf and /tf_static subscriptions are served by the executor that spins this node
        self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)

    # ------------------------------------------------------------------ worker thread
    def _on_cloud(self, name: str, msg: bytes) -> None:
        replaced = self._mailbox.put(name, msg)  # never blocks: the worker takes each input's newest frame in turn
        self._by_name[name].throughput.cloud_received(replaced)

    def _alive(self) -> bool:
        """False once shutdown began: destroy_node was called, or the context was shut down (Ctrl-C: rclpy's
        signal handler shuts it down at once, from its own thread). From then on nothing may be published or
        logged through rclpy (the publishers, /rosout's among them, are on a dead context)."""
        if self._closing.is_set():
            return False
        try:
            return bool(self.context.ok())
        except Exception:  # pragma: no cover - a context torn down under us
            return False

    def _work(self, pipeline: SegmentingPipeline, mailbox: InTurnMailbox[bytes]) -> None:
        """The worker of one configure: segments each input's newest frame in turn until the mailbox closes
        (cleanup, shutdown). One model serves every input."""
        try:
            processor = FrameProcessor(pipeline, self._kit)
            while not mailbox.closed:
                taken = mailbox.take(timeout=0.5)
                if taken is None:
                    continue
                inp = self._by_name[taken[0]]
                try:
                    msg = deserialize_message(taken[1], self._cloud_type)
                except Exception as exc:  # a publisher sent bytes that are no PointCloud2: one frame lost
                    inp.stats.record_error(True, f"cannot deserialize the cloud: {type(exc).__name__}: {exc}")
                    continue
                self._process(processor, pipeline, inp, msg)
        except Exception:
            if self._alive():
                raise
            # the node went away under the worker (Ctrl-C while a frame was in progress): the error says only
            # that; it must not end the process with a traceback

    def _process(self, processor: FrameProcessor, pipeline: SegmentingPipeline, inp: _Input, msg: Any) -> None:
        """One frame of input `inp`. Nothing is published or logged through rclpy once shutdown began (_alive):
        checked before each, so that a frame Ctrl-C overtakes ends without a word."""
        if not self._alive() or not self._active:
            return  # shutting down, or deactivated since the frame came
        log = self.get_logger()
        with self._settings_lock:  # one consistent snapshot per frame
            settings, epoch = self._settings, self._tracking_epoch
        outputs = self._listened_outputs(settings, inp)
        if not outputs:
            return  # nobody listens: save the GPU
        gravity: Gravity | None = None
        if settings.gravity_frame:
            inp.frame_advice = ""
            gravity = self._gravity(settings, inp, msg)
            if gravity is None:
                return  # skipped: no transform
        else:
            self._check_input_frame(inp, normalize_frame(str(msg.header.frame_id)))
        tracking: TrackingInput | None = None
        if settings.tracking:
            tracking = self._tracking_input(settings, epoch, inp, msg, gravity)
            if tracking is None:
                return  # skipped: no transform to the tracking frame (the tracks are kept)
        elif inp.tracker is not None:
            inp.forget_tracks()  # tracking is off
        try:
            pipeline.max_points = settings.max_points
            processor.marker_lifetime = settings.marker_lifetime
            result = processor.process(msg, outputs, settings.grouping, settings.postprocess, settings.preprocess,
                                       gravity, tracking)
        except CloudFormatError as exc:
            inp.stats.record_error(True, str(exc))
            if self._alive():
                log.warning(f"ignoring bad input cloud: {exc}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        except Exception as exc:  # never let one frame kill the worker
            inp.stats.record_error(False, f"{type(exc).__name__}: {exc}")
            if self._alive():
                log.error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        if not self._alive():
            return  # Ctrl-C while this frame was being segmented: it is neither published nor logged about
        if result.cloud.rgb is None and not inp.warned_no_colour:
            inp.warned_no_colour = True
            log.warning(f"input cloud has no colour (rgb, rgba or r/g/b fields): the model gets a neutral grey "
                        f"({result.layout.describe()})")
        failed = self._publish_all(inp, result.messages)
        if not self._alive():
            return  # Ctrl-C while this frame was being published (a failure then says only that)
        if failed is not None:
            inp.stats.record_error(False, f"publishing failed: {failed}")
            log.error(f"publishing failed: {failed}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        if result.tracking is not None:
            self._after_tracking(inp, result.tracking, settings.tracking_frame, msg)
        inp.stats.record(result, self._age_ms(msg))
        inp.throughput.frame_published()

    def _publish_all(self, inp: _Input, messages: dict[str, Any]) -> str | None:
        """Publish a frame's messages unless shutdown began (checked under the lock destroy_node takes before
        the publishers go); the error ("Type: message") when a publish failed, else None."""
        with self._publish_lock:
            if not self._alive():
                return None
            try:
                for name, message in messages.items():
                    inp.pubs[name].publish(message)
            except Exception as exc:  # the context may also be shut down by Ctrl-C right now
                return f"{type(exc).__name__}: {exc}"
        return None

    def _listened_outputs(self, settings: NodeSettings, inp: _Input) -> tuple[str, ...]:
        """The outputs that are enabled and have a subscriber: the ones worth building."""
        return tuple(name for name in OUTPUTS if getattr(settings, f"publish_{name}")
                     and inp.pubs[name].get_subscription_count() > 0)

    def _gravity(self, settings: NodeSettings, inp: _Input, msg: Any) -> Gravity | None:
        """(gravity frame, input -> gravity matrix) at the cloud's stamp; None (frame skipped, counted) when
        tf2 has no such transform within tf_timeout."""
        matrix = self._lookup(inp, settings.gravity_frame, msg, settings.tf_timeout)
        return None if matrix is None else (settings.gravity_frame, matrix)

    def _tracking_input(self, settings: NodeSettings, epoch: int, inp: _Input, msg: Any,
                        gravity: Gravity | None) -> TrackingInput | None:
        """The tracker (its config from `settings`; reset when the tracking epoch moved on) and the pose of the
        cloud's frame in tracking_frame at its stamp; None (frame skipped, counted, tracks kept) when tf2 has no
        such transform within tf_timeout."""
        target = settings.tracking_frame
        if gravity is not None and gravity[0] == target:
            fixed_from_input: np.ndarray | None = gravity[1]  # the same lookup already done
        else:
            fixed_from_input = self._lookup(inp, target, msg, settings.tf_timeout, "tracking ")
        if fixed_from_input is None:
            with inp.stats.lock:
                inp.skipped_no_tracking_tf += 1
            return None
        if inp.tracker is None:
            inp.tracker = Tracker(settings.tracker)
        elif inp.tracker_epoch != epoch:
            inp.tracker.reset()  # ids keep counting up: a forgotten track's id is never reused
            inp.tracks_confirmed = 0
        if inp.tracker.config != settings.tracker:
            inp.tracker.config = settings.tracker  # thresholds changed: the tracks are kept
        inp.tracker_epoch = epoch
        return TrackingInput(inp.tracker, fixed_from_input)

    def _after_tracking(self, inp: _Input, tracked: TrackingResult, frame: str, msg: Any) -> None:
        """Diagnostics of a tracked frame; a frame the tracker refused (bad pose) is warned about."""
        if tracked.skipped:
            stamp = msg.header.stamp
            inp.tracking_advice = (f"tracking skipped the frame at stamp {int(stamp.sec)}."
                                     f"{int(stamp.nanosec):09d} (pose in {frame}: {tracked.skipped_reason}); "
                                     "it was published without instances")
            if self._alive():
                self.get_logger().warning(inp.tracking_advice, throttle_duration_sec=WARN_THROTTLE_S)
            return
        inp.tracking_advice = ""
        inp.tracks_confirmed = len(tracked.tracks)

    def _lookup(self, inp: _Input, target: str, msg: Any, timeout: float, kind: str = "") -> np.ndarray | None:
        """The 4x4 matrix taking the cloud's points into `target` at the cloud's stamp (tf2, waiting up to
        `timeout` s); None, with the frame counted as skipped and a throttled warning, when there is none."""
        source = normalize_frame(str(msg.header.frame_id))
        if source == target:
            return np.eye(4)
        try:
            if not source:
                raise ValueError("the cloud's header.frame_id is empty")
            if self._tf_buffer is None:  # pragma: no cover - created when gravity_frame is set
                raise RuntimeError("no tf2 buffer")
            transform = self._tf_buffer.lookup_transform(target, source, Time.from_msg(msg.header.stamp),
                                                         timeout=Duration(seconds=timeout))
            return matrix_from_transform_msg(transform)
        except (self._tf_error, TransformError, ValueError, TypeError, RuntimeError) as exc:
            stamp = msg.header.stamp
            reason = (f"no {kind}transform {target} <- {source or '(empty frame_id)'} at stamp "
                      f"{int(stamp.sec)}.{int(stamp.nanosec):09d}: {exc}")
            inp.stats.record_skip(reason)
            if self._alive():
                self.get_logger().warning(f"skipping frame: {reason}", throttle_duration_sec=WARN_THROTTLE_S)
            return None

    def _check_input_frame(self, inp: _Input, frame: str) -> None:
        """Without a gravity frame, a camera optical frame (z forward, y down) is almost surely wrong."""
        if not frame.endswith(OPTICAL_SUFFIX):
            inp.frame_advice = ""
            return
        inp.frame_advice = (f"input frame {frame} is a camera optical frame (z forward, y down): set "
                              "gravity_frame (e.g. base_link) so the model sees z up")
        if not inp.warned_optical:
            inp.warned_optical = True
            if self._alive():
                self.get_logger().warning(inp.frame_advice)

    def _age_ms(self, msg: Any) -> float:
        stamp = Time.from_msg(msg.header.stamp)
        if stamp.nanoseconds == 0:
            return math.nan
        return float((self.get_clock().now() - stamp).nanoseconds) / 1e6

    # ------------------------------------------------------------------ diagnostics and shutdown
    def _publish_diagnostics(self) -> None:
        """One status per input (named after the node; 'NODE/input' when it has several), every second."""
        if not self._alive():
            return
        try:
            node = self.get_fully_qualified_name()
            several = len(self._inputs) > 1
            statuses = [diagnostic_status(self._kit, f"{node}/{inp.name}" if several else node, self._device,
                                          *self._input_status(inp)) for inp in self._inputs]
            array = diagnostic_array(self._kit, self.get_clock().now().to_msg(), statuses)
            with self._publish_lock:
                if self._alive():
                    self._diag_pub.publish(array)
        except Exception as exc:  # diagnostics must never take the node down
            # (a publish that failed because Ctrl-C shut the context down is not worth a word either)
            if self._alive():
                self.get_logger().error(f"diagnostics failed: {exc}", throttle_duration_sec=WARN_THROTTLE_S)

    def _input_status(self, inp: _Input) -> tuple[int, str, list[tuple[str, str]]]:
        """(level, message, key-values) of one input's diagnostic status."""
        stats = inp.stats
        settings = self._settings
        ready = self._state == READY
        listened = self._listened_outputs(settings, inp)
        throughput = inp.throughput.read()
        # a silent input or dropped frames say something only once the model runs (loading is WARN anyway)
        problems = (throughput_problems(throughput, inp.topic, settings.diagnostics_stale_s, bool(listened),
                                        self._mailbox.dropped[inp.name]) if ready else [])
        advice = "; ".join(a for a in (inp.frame_advice, inp.tracking_advice) if a)
        if self._state.startswith(MODEL_FAILED):
            level = ERROR
        elif self._state in (UNCONFIGURED, INACTIVE):
            level = OK  # brought down on purpose (lifecycle)
        else:
            level = OK if ready and stats.last_frame_ok and not advice and not problems else WARN
        message = self._state if stats.last_frame_ok else f"{self._state}; last frame: {stats.last_error}"
        message = "; ".join([message, *problems] + ([advice] if advice else []))
        values = stats.key_values(self._mailbox.dropped[inp.name], self._mailbox.received[inp.name])
        values.append(("input topic", inp.topic))
        values += throughput.key_values()
        # nobody listens: frames are not segmented, so the output rate is 0 and that is no problem
        values.append(("outputs subscribed", ", ".join(listened) or "none (frames are not segmented)"))
        values.append(("no-cloud warning after s", f"{settings.diagnostics_stale_s:g}"
                       if settings.diagnostics_stale_s > 0 else "never (diagnostics_stale_s 0)"))
        values.append(("gravity frame", settings.gravity_frame or "(the input frame)"))
        values.append(("tracking", f"on, in {settings.tracking_frame}" if settings.tracking else "off"))
        if settings.tracking or inp.tracker is not None:
            with stats.lock:
                skipped = inp.skipped_no_tracking_tf
            values += [("tracks confirmed", str(inp.tracks_confirmed)),
                       ("frames skipped (no tracking transform)", str(skipped))]
        return level, message, values

    def destroy_node(self) -> None:
        """Stop the worker, free the model, then destroy the node. From the first line on the worker neither
        publishes nor logs through rclpy; a frame in progress may finish within WORKER_JOIN_S."""
        self._closing.set()
        self._active = False
        self._release(wait_s=WORKER_JOIN_S)
        self._remove_log_handler()
        # a publish already under way ends before the publishers go (bounded: DDS never blocks a publish long)
        locked = self._publish_lock.acquire(timeout=WORKER_JOIN_S)
        try:
            super().destroy_node()
        finally:
            if locked:
                self._publish_lock.release()


def main(args: list[str] | None = None, node_factory: Callable[[], PointGroupNode] | None = None) -> None:
    """Entry point of `ros2 run pointgroup_ros pointgroup_node`.

    Builds the node (unconfigured) and spins; with autostart it first configures and activates it. When the node
    cannot be built (bad configuration, weights or parameters), or autostart's configure fails (the model cannot
    be loaded), the reason is logged and the process exits with code 1, so that `ros2 launch` reports it (the
    launch files then end the launch) and respawn can act. node_factory: tests build the node with fakes.

    Ctrl-C (SIGINT) at any moment ends the process with code 0 and no traceback, within ~3 s: rclpy's signal
    handler shuts the context down (spin then ends with ExternalShutdownException) and, chained to Python's,
    raises KeyboardInterrupt in this thread (which also cuts short a configuration being read or a model being
    loaded); destroy_node waits at most WORKER_JOIN_S for the worker.
    """
    _interrupt_on_sigint()
    node: PointGroupNode | None = None
    code = 0
    try:
        rclpy.init(args=args)
        try:
            node = (node_factory or PointGroupNode)()
        except (ModelLoadError, ValueError) as exc:
            if rclpy.ok():  # (after Ctrl-C, whatever failed meanwhile is not worth exit code 1)
                get_logger("pointgroup").fatal(f"cannot start: {exc}")
                code = 1
        except Exception:
            if rclpy.ok():
                raise
            # Ctrl-C while the node was being built: rclpy refuses what followed (e.g. declaring a parameter
            # publishes a parameter event, on a context already shut down); nothing to report
        else:
            if node.autostart and not node.start():
                if rclpy.ok():
                    node.get_logger().fatal("exiting with code 1: autostart could not configure and activate the "
                                            "node (see above)")
                    code = 1
            else:
                rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _shut_down(node)
    if code:
        sys.exit(code)


def _interrupt_on_sigint() -> None:
    """Python's own SIGINT handler (KeyboardInterrupt) where the process started with SIGINT ignored (a background
    job of a non-interactive shell, `setsid ... &`): rclpy.init puts its handler on top, which shuts the context
    down on SIGINT whatever it found and chains to this one, so Ctrl-C behaves the same however the node started."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: leave signals alone
        pass


def _shut_down(node: PointGroupNode | None) -> None:
    """Destroy the node and shut rclpy down; a second Ctrl-C meanwhile does not cut this short with a
    traceback."""
    for step in (node.destroy_node if node is not None else None, rclpy.try_shutdown):
        if step is None:
            continue
        try:
            step()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
