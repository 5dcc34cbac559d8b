"""The `pointgroup` rclpy node: a thin shell around FrameProcessor (processing.py).

Subscribes ~/input/points; a worker thread loads the model, then segments only the newest frame (a one-slot
mailbox, so the executor never blocks and frames that arrive meanwhile are dropped and counted); publishes
~/labeled_points, ~/detections, ~/markers, ~/instances (those enabled and subscribed to) and /diagnostics.
Parameters: params.py (validated in an on-set callback, applied from the next frame). Needs ROS 2.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable

try:
    import rclpy
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.publisher import Publisher
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.time import Time
except ImportError as exc:  # pragma: no cover - exercised only where ROS 2 is missing
    raise ImportError(f"pointgroup_ros.ros.node needs ROS 2 (rclpy; {exc}). Source your ROS 2 setup "
                      "(e.g. /opt/ros/humble/setup.bash) and the workspace's install/setup.bash first.") from exc

from ..config import Config, load_config
from .cloud import CloudFormatError
from .kit import RclpyKit
from .params import ParameterError, ParamSpec, NodeSettings, apply_changes, param_specs, to_descriptor
from .processing import OUTPUTS, FrameProcessor, FrameStats, LatestMailbox, SegmentingPipeline, build_diagnostics
from .typestore import OUTPUT_TYPES

PipelineFactory = Callable[[Config, str, str, int], SegmentingPipeline]
WARN_THROTTLE_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0
OK, WARN, ERROR = 0, 1, 2


def default_pipeline(cfg: Config, weights: str, device: str, max_points: int) -> SegmentingPipeline:
    """The real pipeline (imports torch); loads and warms up the model."""
    from ..pipeline import Pipeline

    pipeline: SegmentingPipeline = Pipeline(cfg, weights=weights or None, device=device, max_points=max_points)
    return pipeline


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy,
                      durability=DurabilityPolicy.VOLATILE)


class PointGroupNode(Node):
    """PointGroup instance segmentation of PointCloud2 frames. pipeline_factory: tests pass a fake."""

    def __init__(self, pipeline_factory: PipelineFactory = default_pipeline, **node_kwargs: Any) -> None:
        super().__init__("pointgroup", **node_kwargs)
        self._kit = RclpyKit()
        first = {s.name: s for s in param_specs()}
        for name in ("config", "weights", "device"):
            self._declare(first[name])
        self._config_source = self._str("config")
        cfg = load_config(self._config_source)
        self._specs = {s.name: s for s in param_specs(cfg)}
        for spec in self._specs.values():
            if spec.name not in ("config", "weights", "device"):
                self._declare(spec)
        values = {name: self.get_parameter(name).value for name in NodeSettings().values()}
        try:
            self._settings = apply_changes(NodeSettings(), values, self._specs)
        except ParameterError as exc:
            raise ValueError(f"invalid parameter at start-up: {exc}") from None
        self.add_on_set_parameters_callback(self._on_set_parameters)

        out_qos = qos_profile(self._str("output_reliability"), self._int("output_depth"))
        self._pubs: dict[str, Publisher] = {
            name: self.create_publisher(self._kit.cls(OUTPUT_TYPES[name]), f"~/{name}", out_qos)
            for name in OUTPUTS}
        self._diag_pub = self.create_publisher(self._kit.cls("diagnostic_msgs/msg/DiagnosticArray"),
                                               "/diagnostics", 10)
        self._mailbox: LatestMailbox[Any] = LatestMailbox()
        self._stats = FrameStats()
        self._state = "loading model"
        self._warned_no_colour = False
        self.create_subscription(self._kit.cls("sensor_msgs/msg/PointCloud2"), "~/input/points",
                                 self._on_cloud, qos_profile(self._str("input_reliability"),
                                                                self._int("input_depth")))
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, args=(pipeline_factory, cfg), name="pointgroup-worker",
                                        daemon=True)
        self._worker.start()

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
        try:
            self._settings = apply_changes(self._settings, {p.name: p.value for p in params}, self._specs)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True, reason="")

    # ------------------------------------------------------------------ worker thread
    def _on_cloud(self, msg: Any) -> None:
        self._mailbox.put(msg)  # never blocks: the worker takes the newest frame

    def _work(self, factory: PipelineFactory, cfg: Config) -> None:
        log = self.get_logger()
        try:
            pipeline = factory(cfg, self._str("weights"), self._str("device"), self._settings.max_points)
        except Exception as exc:  # the node stays up and reports the failure on /diagnostics
            self._state = f"model failed to load: {exc}"
            log.error(self._state)
            return
        processor = FrameProcessor(pipeline, self._kit)
        self._state = "ready"
        log.info(f"ready: config {self._config_source}, device {getattr(pipeline, 'device', '?')}, "
                 f"{len(pipeline.class_names)} classes; waiting for clouds on "
                 f"{self.resolve_topic_name('~/input/points')}")
        while not self._mailbox.closed:
            msg = self._mailbox.take(timeout=0.5)
            if msg is not None:
                self._process(processor, pipeline, msg)

    def _process(self, processor: FrameProcessor, pipeline: SegmentingPipeline, msg: Any) -> None:
        log = self.get_logger()
        settings = self._settings  # one consistent snapshot per frame
        outputs = tuple(name for name in OUTPUTS if getattr(settings, f"publish_{name}")
                        and self._pubs[name].get_subscription_count() > 0)
        if not outputs:
            return  # nobody listens: save the GPU
        try:
            pipeline.max_points = settings.max_points
            result = processor.process(msg, outputs, settings.grouping, settings.postprocess)
        except CloudFormatError as exc:
            self._stats.record_error(True, str(exc))
            log.warning(f"ignoring bad input cloud: {exc}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        except Exception as exc:  # never let one frame kill the worker
            self._stats.record_error(False, f"{type(exc).__name__}: {exc}")
            log.error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        if result.cloud.rgb is None and not self._warned_no_colour:
            self._warned_no_colour = True
            log.warning(f"input cloud has no colour (rgb, rgba or r/g/b fields): the model gets a neutral grey "
                        f"({result.layout.describe()})")
        for name, message in result.messages.items():
            self._pubs[name].publish(message)
        self._stats.record(result, self._age_ms(msg))

    def _age_ms(self, msg: Any) -> float:
        stamp = Time.from_msg(msg.header.stamp)
        if stamp.nanoseconds == 0:
            return math.nan
        return float((self.get_clock().now() - stamp).nanoseconds) / 1e6

    # ------------------------------------------------------------------ diagnostics and shutdown
    def _publish_diagnostics(self) -> None:
        try:
            stats = self._stats
            level = OK if self._state == "ready" and stats.last_frame_ok else WARN
            if self._state.startswith("model failed"):
                level = ERROR
            message = self._state if stats.last_frame_ok else f"{self._state}; last frame: {stats.last_error}"
            values = stats.key_values(self._mailbox.dropped, self._mailbox.received)
            self._diag_pub.publish(build_diagnostics(
                self._kit, self.get_clock().now().to_msg(), f"{self.get_name()}: instance segmentation",
                self.get_fully_qualified_name(), level, message, values))
        except Exception as exc:  # diagnostics must never take the node down
            self.get_logger().error(f"diagnostics failed: {exc}", throttle_duration_sec=WARN_THROTTLE_S)

    def destroy_node(self) -> None:
        self._mailbox.close()
        if self._worker.is_alive():
            self._worker.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point of `ros2 run pointgroup_ros pointgroup_node`."""
    rclpy.init(args=args)
    node = None
    try:
        node = PointGroupNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
