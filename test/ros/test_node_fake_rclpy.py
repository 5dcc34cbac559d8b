"""The node's own logic without ROS 2: PointGroupNode runs against a minimal stand-in of the rclpy API it uses.

The stand-in is not ROS (no DDS, no executor); it records what the node declares, publishes and logs, and
emulates rclpy's parameter rules (read-only refused, on-set callbacks asked), a tf2_ros Buffer holding the
transforms a test gives it (lookup_transform returns a TransformStamped or raises tf2's LookupException), and
rclpy's Future / spin_until_future_complete. Messages are rosbags classes built through the same field names
rclpy's would take. What this cannot show (QoS matching, discovery, real message
classes) the `ros` tests in test_node_ros.py cover on a ROS 2 machine; mypy checks the calls against rclpy's
sources (test_ros_static_check.py).
"""
from __future__ import annotations

import enum
import logging
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
from ros_testing_fakes import FakeClock, FakePipeline

from pointgroup_ros.config import SCANNET20_CLASSES, Config, load_config

from pointgroup_ros.ros.cloud import decode_cloud, encode_cloud
from pointgroup_ros.ros.kit import RosbagsKit
from pointgroup_ros.ros.typestore import make_typestore

STORE = make_typestore("humble")
BAGS_KIT = RosbagsKit(STORE)


@dataclass
class _Param:
    name: str
    value: Any
    descriptor: Any = None


@dataclass
class _Result:
    successful: bool = True
    reason: str = ""


class _Descriptor:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.floating_point_range: list[Any] = []
        self.integer_range: list[Any] = []


class _Publisher:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sent: list[Any] = []
        self.subscribers = 1
        self.error: Exception | None = None  # raised by publish() when set

    def publish(self, msg: Any) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(msg)

    def get_subscription_count(self) -> int:
        return self.subscribers


class _Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def get_effective_level(self) -> int:
        return 20  # INFO, as rcutils' LoggingSeverity

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda message, **kw: self.lines.append((level, str(message)))

    def count(self, level: str, text: str) -> int:
        return sum(text in line for lvl, line in self.lines if lvl == level)


ROOT_LOGGER = _Logger()  # rclpy.logging.get_logger(...) of the stand-in


class _Future:
    """rclpy.task.Future's slice the node uses: set_result / done / result."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._result: Any = None

    def set_result(self, result: Any) -> None:
        self._result = result
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> Any:
        return self._result


def _spin_until_future_complete(node: Any, future: _Future, executor: Any = None,
                                timeout_sec: float | None = None) -> None:
    future._done.wait(10.0 if timeout_sec is None else timeout_sec)


class _Duration:
    def __init__(self, seconds: float = 0.0, nanoseconds: int = 0) -> None:
        self.nanoseconds = int(seconds * 1e9) + nanoseconds


class _TransformException(Exception):
    pass


class _LookupException(_TransformException):
    pass


class _TfBuffer:
    """tf2_ros.Buffer stand-in: the transforms a test adds, looked up by (target, source), for any target frame;
    one added with a stamp answers only a lookup at that stamp (a moving frame: one transform per stamp), and
    wins over one added without."""

    instances: list["_TfBuffer"] = []

    def __init__(self, cache_time: Any = None, node: Any = None) -> None:
        self.transforms: dict[tuple[str, str], Any] = {}
        self.at_stamp: dict[tuple[str, str, int], Any] = {}
        self.lookups: list[tuple[str, str, int, float]] = []
        _TfBuffer.instances.append(self)

    def add(self, parent: str, child: str, translation: tuple[float, float, float],
            quaternion_xyzw: tuple[float, float, float, float], stamp_ns: int | None = None) -> None:
        t = BAGS_KIT.make("geometry_msgs/msg/Vector3", x=translation[0], y=translation[1], z=translation[2])
        q = BAGS_KIT.make("geometry_msgs/msg/Quaternion", x=quaternion_xyzw[0], y=quaternion_xyzw[1],
                          z=quaternion_xyzw[2], w=quaternion_xyzw[3])
        header = BAGS_KIT.make("std_msgs/msg/Header", frame_id=parent)
        transform = BAGS_KIT.make("geometry_msgs/msg/TransformStamped", header=header, child_frame_id=child,
                                  transform=BAGS_KIT.make("geometry_msgs/msg/Transform", translation=t, rotation=q))
        if stamp_ns is None:
            self.transforms[(parent, child)] = transform
        else:
            self.at_stamp[(parent, child, stamp_ns)] = transform

    def lookup_transform(self, target_frame: str, source_frame: str, time: Any, timeout: Any = None) -> Any:
        self.lookups.append((target_frame, source_frame, time.nanoseconds, timeout.nanoseconds / 1e9))
        found = self.at_stamp.get((target_frame, source_frame, time.nanoseconds),
                                  self.transforms.get((target_frame, source_frame)))
        if found is None:
            raise _LookupException(f'"{target_frame}" passed to lookupTransform argument target_frame does not '
                                   "exist. ")
        return found


class _TransformListener:
    def __init__(self, buffer: _TfBuffer, node: Any, *, spin_thread: bool = False) -> None:
        self.buffer = buffer
        self.node = node


class _Stamp:
    def __init__(self, ns: int) -> None:
        self.nanoseconds = ns

    def __sub__(self, other: "_Stamp") -> "_Stamp":
        return _Stamp(self.nanoseconds - other.nanoseconds)

    def to_msg(self) -> Any:
        return BAGS_KIT.make("builtin_interfaces/msg/Time", sec=self.nanoseconds // 10 ** 9,
                             nanosec=self.nanoseconds % 10 ** 9)

    @classmethod
    def from_msg(cls, msg: Any) -> "_Stamp":
        return cls(msg.sec * 10 ** 9 + msg.nanosec)


class _Node:
    """The slice of rclpy.node.Node that PointGroupNode uses."""

    def __init__(self, name: str, parameter_overrides: dict[str, Any] | None = None, namespace: str = "") -> None:
        self._name = name
        self._namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self._overrides = parameter_overrides or {}
        self._params: dict[str, _Param] = {}
        self._callbacks: list[Callable[[list[_Param]], _Result]] = []
        self.pubs: dict[str, _Publisher] = {}
        self.subs: dict[str, Callable[[Any], None]] = {}
        self.timers: list[Callable[[], None]] = []
        self.logger = _Logger()
        self.context = types.SimpleNamespace(ok=lambda: self.context_ok)
        self.context_ok = True

    def declare_parameter(self, name: str, value: Any = None, descriptor: Any = None,
                          ignore_override: bool = False) -> _Param:
        value = value if ignore_override else self._overrides.get(name, value)
        self._params[name] = _Param(name, value, descriptor)
        return self._params[name]

    def get_parameter(self, name: str) -> _Param:
        return self._params[name]

    def add_on_set_parameters_callback(self, callback: Callable[[list[_Param]], _Result]) -> None:
        self._callbacks.append(callback)

    def set_parameters_atomically(self, values: dict[str, Any]) -> _Result:
        params = [_Param(k, v) for k, v in values.items()]
        for p in params:
            if self._params[p.name].descriptor.read_only:
                return _Result(False, f"parameter {p.name} cannot be set because it is read-only")
        for callback in self._callbacks:
            result = callback(params)
            if not result.successful:
                return result
        for p in params:
            self._params[p.name].value = p.value
        return _Result(True)

    def create_publisher(self, msg_type: Any, topic: str, qos: Any) -> _Publisher:
        self.pubs[topic] = _Publisher(topic)
        return self.pubs[topic]

    def create_subscription(self, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any,
                            raw: bool = False) -> Callable[[Any], None]:
        self.subs[topic] = callback  # raw: the stand-in's "serialized" message is the message (see _deserialize)
        return callback

    def create_timer(self, period: float, callback: Callable[[], None]) -> None:
        self.timers.append(callback)

    def get_logger(self) -> _Logger:
        return self.logger

    def get_clock(self) -> Any:
        return types.SimpleNamespace(now=lambda: _Stamp(time.time_ns()))

    def get_name(self) -> str:
        return self._name

    def get_fully_qualified_name(self) -> str:
        return f"{self._namespace}/{self._name}"

    def resolve_topic_name(self, topic: str) -> str:
        return topic.replace("~", self.get_fully_qualified_name())

    def destroy_subscription(self, subscription: Any) -> None:
        self.subs = {topic: cb for topic, cb in self.subs.items() if cb is not subscription}

    def set_parameters(self, params: list[_Param]) -> list[_Result]:
        return [self.set_parameters_atomically({p.name: p.value}) for p in params]

    def destroy_node(self) -> None:
        pass


class _Return(enum.Enum):
    """rclpy.lifecycle.TransitionCallbackReturn."""

    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


class _LifecyclePublisher(_Publisher):
    """Publishes only while enabled (the node active), as rclpy's LifecyclePublisher; drops are counted."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.enabled = False
        self.dropped = 0

    def publish(self, msg: Any) -> None:
        if not self.enabled:
            self.dropped += 1
            return
        super().publish(msg)


# lifecycle transition -> (from states, to state, callback)
_TRANSITIONS = {"configure": (("unconfigured",), "inactive", "on_configure"),
                "activate": (("inactive",), "active", "on_activate"),
                "deactivate": (("active",), "inactive", "on_deactivate"),
                "cleanup": (("inactive",), "unconfigured", "on_cleanup"),
                "shutdown": (("unconfigured", "inactive", "active"), "finalized", "on_shutdown")}


class _LifecycleNode(_Node):
    """rclpy.lifecycle.LifecycleNode's slice: the state machine, trigger_* and managed publishers."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.lifecycle_state = "unconfigured"

    def create_lifecycle_publisher(self, msg_type: Any, topic: str, qos: Any) -> _LifecyclePublisher:
        self.pubs[topic] = _LifecyclePublisher(topic)
        return self.pubs[topic]

    def _transition(self, name: str) -> _Return:
        sources, target, callback = _TRANSITIONS[name]
        if self.lifecycle_state not in sources:
            raise AssertionError(f"no transition {name} from {self.lifecycle_state}")
        start = self.lifecycle_state
        result = getattr(self, callback)(types.SimpleNamespace(label=start))
        if result == _Return.SUCCESS:
            self.lifecycle_state = target
        elif result == _Return.FAILURE:
            self.lifecycle_state = start
        else:
            handled = self.on_error(types.SimpleNamespace(label=start))
            self.lifecycle_state = "unconfigured" if handled == _Return.SUCCESS else "finalized"
        return result

    def trigger_configure(self) -> _Return:
        return self._transition("configure")

    def trigger_activate(self) -> _Return:
        return self._transition("activate")

    def trigger_deactivate(self) -> _Return:
        return self._transition("deactivate")

    def trigger_cleanup(self) -> _Return:
        return self._transition("cleanup")

    def trigger_shutdown(self) -> _Return:
        return self._transition("shutdown")

    def _managed(self, enabled: bool) -> _Return:
        for pub in self.pubs.values():
            if isinstance(pub, _LifecyclePublisher):
                pub.enabled = enabled
        return _Return.SUCCESS

    def on_configure(self, state: Any) -> _Return:
        return _Return.SUCCESS

    def on_activate(self, state: Any) -> _Return:
        return self._managed(True)

    def on_deactivate(self, state: Any) -> _Return:
        return self._managed(False)

    def on_cleanup(self, state: Any) -> _Return:
        return _Return.SUCCESS

    def on_shutdown(self, state: Any) -> _Return:
        return self._managed(False)

    def on_error(self, state: Any) -> _Return:
        return _Return.SUCCESS


def _deserialize(data: Any, message_type: Any) -> Any:
    """rclpy.serialization.deserialize_message's stand-in: the node subscribes raw, and a test hands its callback
    the message itself (or bytes that no message is made of)."""
    if isinstance(data, (bytes, bytearray)):
        raise RuntimeError("Failed to deserialize ROS message.")
    return data


def _message_module(package: str) -> types.ModuleType:
    """A stand-in for a generated message module: each class builds the rosbags message of that type."""
    module = types.ModuleType(f"{package}.msg")

    def __getattr__(name: str) -> Any:
        typename = f"{package}/msg/{name}"
        if typename not in STORE.types:
            raise AttributeError(name)
        return lambda **fields: BAGS_KIT.make(typename, **fields)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


@pytest.fixture
def node_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    qos = types.SimpleNamespace(QoSProfile=lambda **kw: kw, DurabilityPolicy=types.SimpleNamespace(VOLATILE=2),
                                HistoryPolicy=types.SimpleNamespace(KEEP_LAST=1),
                                ReliabilityPolicy=types.SimpleNamespace(RELIABLE=1, BEST_EFFORT=2))
    fakes: dict[str, Any] = {
        "rclpy": types.SimpleNamespace(init=lambda args=None: None, spin=lambda node: None, ok=lambda: True,
                                       spin_until_future_complete=_spin_until_future_complete,
                                       try_shutdown=lambda: None),
        "rclpy.executors": types.SimpleNamespace(ExternalShutdownException=RuntimeError),
        "rclpy.duration": types.SimpleNamespace(Duration=_Duration),
        "rclpy.logging": types.SimpleNamespace(get_logger=lambda name: ROOT_LOGGER),
        "rclpy.task": types.SimpleNamespace(Future=_Future),
        "tf2_ros": types.SimpleNamespace(Buffer=_TfBuffer, TransformListener=_TransformListener,
                                         TransformException=_TransformException,
                                         LookupException=_LookupException),
        "rclpy.node": types.SimpleNamespace(Node=_Node),
        "rclpy.lifecycle": types.SimpleNamespace(LifecycleNode=_LifecycleNode, LifecycleState=types.SimpleNamespace,
                                                 TransitionCallbackReturn=_Return),
        "rclpy.parameter": types.SimpleNamespace(Parameter=_Param),
        "rclpy.publisher": types.SimpleNamespace(Publisher=_Publisher),
        "rclpy.qos": qos,
        "rclpy.time": types.SimpleNamespace(Time=_Stamp),
        "rclpy.serialization": types.SimpleNamespace(deserialize_message=_deserialize),
        "rcl_interfaces": types.ModuleType("rcl_interfaces"),
        "rcl_interfaces.msg": types.SimpleNamespace(
            SetParametersResult=_Result, ParameterDescriptor=_Descriptor,
            FloatingPointRange=lambda **kw: kw, IntegerRange=lambda **kw: kw,
            ParameterType=types.SimpleNamespace(PARAMETER_BOOL=1, PARAMETER_INTEGER=2, PARAMETER_DOUBLE=3,
                                                PARAMETER_STRING=4, PARAMETER_STRING_ARRAY=9)),
    }
    for package in ("sensor_msgs", "std_msgs", "builtin_interfaces", "geometry_msgs", "vision_msgs",
                    "visualization_msgs", "diagnostic_msgs", "pointgroup_ros"):
        fakes[f"{package}.msg"] = _message_module(package)
        if package not in sys.modules and package != "pointgroup_ros":
            fakes[package] = types.ModuleType(package)
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "pointgroup_ros.ros.node", raising=False)
    _TfBuffer.instances.clear()
    ROOT_LOGGER.lines.clear()
    import pointgroup_ros.ros.node as node_module

    yield node_module
    monkeypatch.delitem(sys.modules, "pointgroup_ros.ros.node", raising=False)


def _synthetic(config: str, weights: str) -> Config:
    """The resolver the tests use: the synthetic preset (the demo model's), without reading a checkpoint."""
    return load_config(config or "synthetic")


def _make_node(node_module: Any, overrides: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A node with the fake pipeline (node.fake_pipeline once ready) and the synthetic configuration."""
    made: list[FakePipeline] = []

    def factory(cfg: Config, weights: str, device: str, max_points: int) -> FakePipeline:
        made.append(FakePipeline(cfg))
        return made[-1]

    kwargs.setdefault("pipeline_factory", factory)
    kwargs.setdefault("model_resolver", _synthetic)
    start = kwargs.pop("start", True)
    node = node_module.PointGroupNode(parameter_overrides={"score_threshold": 0.0, "cluster_min_points": 10,
                                                           **(overrides or {})}, **kwargs)
    if start:
        node.start()  # configure + activate (autostart)
    node.fake_pipeline = made[0] if made else None
    return node


def _cloud(kit: Any, colour: str = "rgb", frame: str = "camera", n: int = 1500, height: int = 30,
           nanosec: int = 0) -> Any:
    rng = np.random.default_rng(0)
    centres = np.array([[0.1, 0.1, 1.1], [0.6, 0.1, 1.1], [0.1, 0.6, 1.6]])
    xyz = (centres[np.arange(n) % 3] + rng.uniform(-0.08, 0.08, (n, 3))).astype(np.float32)
    xyz[::50] = np.nan
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    stamp = BAGS_KIT.make("builtin_interfaces/msg/Time", sec=int(time.time()) - 1, nanosec=nanosec)
    header = BAGS_KIT.make("std_msgs/msg/Header", stamp=stamp, frame_id=frame)
    return encode_cloud(kit, header, xyz, None if colour == "none" else rgb, height=height, colour=colour)


def _rclpy_cloud(**kw: Any) -> Any:
    from pointgroup_ros.ros.kit import RclpyKit  # rclpy hands the data as array.array('B'): what RclpyKit builds

    return _cloud(RclpyKit(), **kw)


def _send(node: Any, msg: Any, topic: str = "~/instances") -> Any:
    """Hand `msg` to the node's subscription callback (of the input `topic` is an output of) and wait for the
    next message on `topic`."""
    before = len(node.pubs[topic].sent)
    node.subs[topic.rsplit("/", 1)[0] + "/input/points"](msg)
    _wait(lambda: len(node.pubs[topic].sent) > before)
    return node.pubs[topic].sent[-1]


def _diagnostics(node: Any) -> tuple[Any, dict[str, str]]:
    node.timers[0]()
    (status,) = node.pubs["/diagnostics"].sent[-1].status
    return status, {kv.key: kv.value for kv in status.values}


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_fake_rclpy_node_flow(node_module: Any) -> None:
    node = _make_node(node_module, {"class_names": ["x"]})
    try:
        assert set(node.pubs) == {"~/labeled_points", "~/detections", "~/markers", "~/instances", "/diagnostics"}
        assert node.get_parameter("config").value == ""  # the configuration comes from the weights
        model_classes = load_config("synthetic").data.class_names
        assert node.get_parameter("class_names").value == list(model_classes)
        callback = node.subs["~/input/points"]
        # rclpy hands the data as array.array('B'): what RclpyKit builds
        from pointgroup_ros.ros.kit import RclpyKit

        msg = _cloud(RclpyKit())
        callback(msg)
        _wait(lambda: len(node.pubs["~/instances"].sent) == 1)
        labeled = node.pubs["~/labeled_points"].sent[0]
        np.testing.assert_array_equal(decode_cloud(labeled).xyz, decode_cloud(msg).xyz)
        assert len(node.pubs["~/instances"].sent[0].instances) == 3
        assert node.pubs["~/markers"].sent[0].markers[0].action == 3

        # parameters: read-only refused, invalid refused with reason, valid applied from the next frame
        assert not node.set_parameters_atomically({"input_depth": 2}).successful
        assert not node.set_parameters_atomically({"class_names": ["x"]}).successful  # reported, not set
        refused = node.set_parameters_atomically({"device": "gpu0"})
        assert not refused.successful and "cuda:N" in refused.reason
        bad = node.set_parameters_atomically({"nms_iou_threshold": 1.5})
        assert not bad.successful and "nms_iou_threshold" in bad.reason
        assert node.set_parameters_atomically({"cluster_min_points": 10 ** 6, "publish_markers": False}).successful
        callback(msg)
        _wait(lambda: len(node.pubs["~/instances"].sent) == 2)
        assert len(node.pubs["~/instances"].sent[1].instances) == 0
        assert len(node.pubs["~/markers"].sent) == 1  # switched off

        # nobody subscribed to an output: it is not built
        node.pubs["~/detections"].subscribers = 0
        callback(msg)
        _wait(lambda: len(node.pubs["~/instances"].sent) == 3)
        assert len(node.pubs["~/detections"].sent) == 2

        # malformed input: a warning, nothing published, the worker keeps going
        broken = _cloud(RclpyKit())
        broken.fields = [f for f in broken.fields if f.name != "z"]
        callback(broken)
        _wait(lambda: any("bad input" in line for level, line in node.logger.lines if level == "warning"))
        callback(_cloud(RclpyKit(), colour="none"))
        _wait(lambda: len(node.pubs["~/instances"].sent) == 4)
        assert sum("no colour" in line for _, line in node.logger.lines) == 1

        # diagnostics: counters, stage times and input age
        node.timers[0]()
        (status,) = node.pubs["/diagnostics"].sent[-1].status
        values = {kv.key: kv.value for kv in status.values}
        assert values["frames processed"] == "4" and values["frames rejected (bad input)"] == "1"
        assert "time ms: decode" in values and float(values["input age ms (last frame, at publish)"]) > 0
        assert status.level == b"\x00" and status.message == "ready"
        assert status.name == "/pointgroup" and status.hardware_id == "cpu"  # the pipeline's device
        worker = node._worker
    finally:
        node.destroy_node()
    assert not worker.is_alive()


def _broken_factory(cfg: Any, weights: str, device: str, max_points: int) -> Any:
    raise FileNotFoundError("no such checkpoint: /nope.pth")


def test_fake_rclpy_model_failure_is_reported(node_module: Any) -> None:
    """A configure that cannot load the model fails with the reason (ERROR on /diagnostics) and leaves the node
    unconfigured; once the cause is gone, configure succeeds."""
    factories = [_broken_factory, lambda cfg, *args: FakePipeline(cfg)]
    node = node_module.PointGroupNode(pipeline_factory=lambda *args: factories[0](*args), model_resolver=_synthetic)
    try:
        assert not node.start() and node.lifecycle_state == "unconfigured"  # main() exits with code 1 on this
        status, _ = _diagnostics(node)
        assert status.level == b"\x02" and "no such checkpoint" in status.message
        assert node.logger.count("error", "model failed to load: no such checkpoint") == 1
        assert node._worker is None and node._pipeline is None
        factories.pop(0)
        assert node.start() and node.lifecycle_state == "active"
        status, _ = _diagnostics(node)
        assert status.level == b"\x00" and status.message == "ready"
    finally:
        node.destroy_node()


@pytest.mark.parametrize("overrides, reason", [({"cluster_sets": "r"}, "cluster_sets"),
                                               ({"min_range": 2.0, "max_range": 1.0}, "max_range"),
                                               ({"inputs": "front, front"}, "inputs: a name appears twice")])
def test_fake_rclpy_invalid_start_parameters(node_module: Any, overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        node_module.PointGroupNode(pipeline_factory=lambda *a: FakePipeline(), model_resolver=_synthetic,
                                   parameter_overrides=overrides)


# ---------------------------------------------------------------------------------------------- gravity frame

# base_link <- camera_color_optical_frame: a camera 1.2 m up looking along base_link's +x (REP 103: optical z
# forward, x right, y down -> body x forward, y left, z up), as tf2 would return it
OPTICAL_IN_BASE = ((0.3, 0.0, 1.2), (-0.5, 0.5, -0.5, 0.5))
OPTICAL = "camera_color_optical_frame"


def _optical_to_base() -> np.ndarray:
    from pointgroup_ros.transforms import matrix_from_pose

    return matrix_from_pose(*OPTICAL_IN_BASE)


def test_fake_rclpy_gravity_frame_outputs(node_module: Any) -> None:
    node = _make_node(node_module, {"gravity_frame": "/base_link", "tf_timeout": 0.25})
    try:
        (buffer,) = _TfBuffer.instances  # created at start-up because gravity_frame is set
        assert node.get_parameter("gravity_frame").value == "/base_link"  # as given; used normalised
        buffer.add("base_link", OPTICAL, *OPTICAL_IN_BASE)
        msg = _rclpy_cloud(frame=OPTICAL, nanosec=123)
        instances = _send(node, msg)
        labeled = node.pubs["~/labeled_points"].sent[-1]
        detections = node.pubs["~/detections"].sent[-1]
        markers = node.pubs["~/markers"].sent[-1]
        # boxes live in the gravity frame, the labeled cloud (point i = input point i) in the input frame
        assert labeled.header.frame_id == OPTICAL
        for out in (instances, detections, *markers.markers, *detections.detections):
            assert out.header.frame_id == "base_link"
            assert (out.header.stamp.sec, out.header.stamp.nanosec) == (msg.header.stamp.sec, 123)
        target, source, stamp_ns, timeout = buffer.lookups[-1]
        assert (target, source, timeout) == ("base_link", OPTICAL, 0.25)
        assert stamp_ns == msg.header.stamp.sec * 10 ** 9 + 123  # looked up at the cloud's stamp
        matrix = _optical_to_base()  # the pipeline got tf2's transform as a matrix
        np.testing.assert_allclose(node.fake_pipeline.calls[-1]["gravity_transform"], matrix, atol=1e-12)
        # the boxes are those of the instance's points in base_link (the blobs are 1.1-1.6 m ahead, below the camera)
        in_base = decode_cloud(msg).xyz.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
        assert len(instances.instances) == 3
        for inst in instances.instances:
            points = in_base[np.asarray(inst.point_indices)]
            centre, size = inst.bbox.center.position, inst.bbox.size
            np.testing.assert_allclose([centre.x, centre.y, centre.z], (points.min(0) + points.max(0)) / 2, atol=1e-5)
            np.testing.assert_allclose([size.x, size.y, size.z], points.max(0) - points.min(0), atol=1e-5)
            assert 1.2 < centre.x < 2.0 and abs(centre.y) < 1.0 and 0.0 < centre.z < 1.2
        assert node.logger.count("warning", "optical frame") == 0  # gravity_frame is set: no advice
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["gravity frame"] == "base_link"
        assert values["frames skipped (no transform)"] == "0"
    finally:
        node.destroy_node()


def test_fake_rclpy_missing_transform_skips_the_frame(node_module: Any) -> None:
    node = _make_node(node_module)
    try:
        assert _TfBuffer.instances == []  # no gravity frame: no tf2 at all
        msg = _rclpy_cloud(frame=OPTICAL)
        _send(node, msg)
        # gravity_frame is tunable: the buffer is created when it is first set
        assert node.set_parameters_atomically({"gravity_frame": "map", "tf_timeout": 0.0}).successful
        (buffer,) = _TfBuffer.instances
        processed = len(node.pubs["~/instances"].sent)
        for _ in range(3):
            node.subs["~/input/points"](msg)
            _wait(lambda: node._mailbox._items == {})
        _wait(lambda: node._inputs[0].stats.frames_skipped_no_tf == 3)
        assert len(node.pubs["~/instances"].sent) == processed  # nothing published for a skipped frame
        warnings = [line for level, line in node.logger.lines if level == "warning" and "no transform" in line]
        assert warnings and "map <- camera_color_optical_frame" in warnings[0]
        assert "does not exist" in warnings[0]  # tf2's reason
        status, values = _diagnostics(node)
        assert status.level == b"\x01" and "no transform map <- camera_color_optical_frame" in status.message
        assert values["frames skipped (no transform)"] == "3" and node._worker.is_alive()
        # the transform appears: the next frame goes through, in the map frame, and the WARN clears
        buffer.add("map", OPTICAL, (40.0, -3.0, 1.0), (-0.5, 0.5, -0.5, 0.5))
        instances = _send(node, msg)
        assert instances.header.frame_id == "map" and len(instances.instances) == 3
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["frames skipped (no transform)"] == "3"
        # back to the input frame: no lookup at all
        lookups = len(buffer.lookups)
        assert node.set_parameters_atomically({"gravity_frame": ""}).successful
        instances = _send(node, _rclpy_cloud(frame="lidar"))
        assert instances.header.frame_id == "lidar" and len(buffer.lookups) == lookups
        # a frame name with spaces is refused with a reason
        bad = node.set_parameters_atomically({"gravity_frame": "base link"})
        assert not bad.successful and "gravity_frame" in bad.reason
    finally:
        node.destroy_node()


def test_fake_rclpy_optical_frame_warning_once(node_module: Any) -> None:
    node = _make_node(node_module)
    try:
        for _ in range(3):
            _send(node, _rclpy_cloud(frame="/" + OPTICAL))
        assert node.logger.count("warning", "is a camera optical frame (z forward, y down): set gravity_frame") == 1
        status, _ = _diagnostics(node)
        assert status.level == b"\x01" and "set gravity_frame (e.g. base_link)" in status.message
        assert OPTICAL in status.message
        _send(node, _rclpy_cloud(frame="base_link"))  # a body frame: nothing to advise
        status, _ = _diagnostics(node)
        assert status.level == b"\x00" and "optical" not in status.message
        _send(node, _rclpy_cloud(frame=OPTICAL))
        assert node.logger.count("warning", "optical frame") == 1  # once per node, not per frame
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------------------------------- empty frames

def _empty_cloud(kit: Any, frame: str = "camera") -> Any:
    header = BAGS_KIT.make("std_msgs/msg/Header", frame_id=frame)
    return encode_cloud(kit, header, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))


def _assert_cleared(node: Any, height: int, width: int) -> None:
    labeled = node.pubs["~/labeled_points"].sent[-1]
    assert (labeled.height, labeled.width) == (height, width)
    assert len(labeled.data) == 24 * height * width
    (marker,) = node.pubs["~/markers"].sent[-1].markers
    assert marker.action == 3  # DELETEALL alone: the previous boxes disappear
    assert len(node.pubs["~/detections"].sent[-1].detections) == 0
    assert len(node.pubs["~/instances"].sent[-1].instances) == 0


def test_fake_rclpy_empty_frames_are_answered(node_module: Any) -> None:
    from pointgroup_ros.ros.kit import RclpyKit

    node = _make_node(node_module)
    try:
        assert len(_send(node, _rclpy_cloud()).instances) == 3
        _send(node, _empty_cloud(RclpyKit()))  # no point at all
        _assert_cleared(node, 1, 0)
        nan = _rclpy_cloud()
        nan_xyz = np.full((1500, 3), np.nan, np.float32)
        nan = encode_cloud(RclpyKit(), nan.header, nan_xyz, np.zeros((1500, 3), np.uint8), height=30)
        _send(node, nan)  # no valid point
        _assert_cleared(node, 30, 50)
        assert node.set_parameters_atomically({"max_range": 0.5}).successful  # everything cropped
        _send(node, _rclpy_cloud())
        _assert_cleared(node, 30, 50)
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["frames processed"] == "4"
        assert values["frames rejected (bad input)"] == "0"
        assert node.logger.count("warning", "no colour") == 0  # an empty cloud with colour fields has colour
    finally:
        node.destroy_node()


def test_fake_rclpy_marker_lifetime_and_preprocess(node_module: Any) -> None:
    node = _make_node(node_module, {"marker_lifetime": 2.5, "voxel_size": 0.05, "min_range": 0.2})
    try:
        _send(node, _rclpy_cloud())
        markers = node.pubs["~/markers"].sent[-1].markers
        assert markers[0].action == 3 and len(markers) == 7
        for marker in markers[1:]:
            assert (marker.lifetime.sec, marker.lifetime.nanosec) == (2, 500_000_000)
        pre = node.fake_pipeline.calls[-1]["preprocess"]
        assert (pre.voxel_size, pre.min_range, pre.max_range) == (0.05, 0.2, 0.0)
        assert node.set_parameters_atomically({"marker_lifetime": 0.0, "voxel_size": 0.0}).successful
        _send(node, _rclpy_cloud())
        assert all(m.lifetime.sec == 0 and m.lifetime.nanosec == 0 for m in node.pubs["~/markers"].sent[-1].markers)
        assert node.fake_pipeline.calls[-1]["preprocess"].voxel_size == 0.0
        bad = node.set_parameters_atomically({"min_range": 3.0, "max_range": 2.0})
        assert not bad.successful and "max_range" in bad.reason
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------------------------------- the model

def test_fake_rclpy_configuration_from_the_weights(node_module: Any) -> None:
    asked: list[tuple[str, str]] = []

    def resolver(config: str, weights: str) -> Config:
        asked.append((config, weights))
        return load_config("s3dis" if "s3dis" in weights else "scannet")  # what the checkpoint stores

    built: list[Config] = []

    def factory(cfg: Config, weights: str, device: str, max_points: int) -> Any:
        built.append(cfg)
        return FakePipeline(cfg)

    node = node_module.PointGroupNode(pipeline_factory=factory, model_resolver=resolver,
                                      parameter_overrides={"weights": "/models/scannet.pth"})
    try:
        assert node.start()
        assert asked == [("", "/models/scannet.pth")]
        assert node.get_parameter("class_names").value == list(SCANNET20_CLASSES)
        scannet = load_config("scannet")
        assert node.get_parameter("cluster_radius_shifted").value == scannet.grouping.shifted_radius == 0.0
        assert node.get_parameter("voxel_size").value == scannet.voxel_size
        assert built == [scannet]
        assert any("(from the weights)" in line and "20 classes" in line for _, line in node.logger.lines)

        # other weights: accepted at once, applied at the next configure; the parameters that follow the model
        # take the new model's values unless the user set them
        assert node.set_parameters_atomically({"weights": "/models/s3dis.pth", "cluster_radius": 0.07}).successful
        assert node.logger.count("info", "weights will apply at the next configure") == 1
        assert len(built) == 1 and node.get_parameter("class_names").value == list(SCANNET20_CLASSES)
        assert node.trigger_deactivate() == node_module.TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == node_module.TransitionCallbackReturn.SUCCESS
        assert node.start()
        s3dis = load_config("s3dis")
        assert asked[-1] == ("", "/models/s3dis.pth") and built[-1] == s3dis
        assert node.get_parameter("class_names").value == list(s3dis.data.class_names)
        threshold = s3dis.postprocess.score_threshold
        assert node.get_parameter("score_threshold").value == threshold != scannet.postprocess.score_threshold
        assert node.get_parameter("cluster_radius").value == 0.07 == node._settings.grouping.radius  # the user's
        assert node._settings.postprocess.score_threshold == threshold
    finally:
        node.destroy_node()


def test_fake_rclpy_main_exits_non_zero_when_the_model_cannot_load(node_module: Any) -> None:
    def unresolvable(config: str, weights: str) -> Config:
        raise FileNotFoundError(f"no such file: {weights}")

    # at resolution (construction): the reason is logged, exit code 1
    with pytest.raises(SystemExit) as exit_info:
        node_module.main([], node_factory=lambda: node_module.PointGroupNode(
            pipeline_factory=_broken_factory, model_resolver=unresolvable,
            parameter_overrides={"weights": "/nope.pth", "autostart": True}))
    assert exit_info.value.code == 1
    assert ROOT_LOGGER.count("fatal", "cannot load the model") == 1
    assert ROOT_LOGGER.count("fatal", "no such file: /nope.pth") == 1

    # autostart's configure cannot build the pipeline: the node does not idle, main returns with code 1
    made: list[Any] = []

    def factory(autostart: bool = True) -> Any:
        made.append(node_module.PointGroupNode(pipeline_factory=_broken_factory, model_resolver=_synthetic,
                                               parameter_overrides={"autostart": autostart}))
        return made[-1]

    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        node_module.main([], node_factory=factory)
    assert exit_info.value.code == 1 and time.monotonic() - start < 9.0
    node = made[-1]
    assert node._worker is None and node.lifecycle_state == "unconfigured"
    assert node.logger.count("error", "model failed to load: no such checkpoint: /nope.pth") == 1
    assert node.logger.count("fatal", "exiting with code 1") == 1

    # without autostart nothing is loaded: the node waits unconfigured (main spins; the stand-in returns at once)
    node_module.main([], node_factory=lambda: factory(autostart=False))
    node = made[-1]
    assert node.lifecycle_state == "unconfigured" and node.logger.count("error", "model failed") == 0
    assert node.logger.count("info", "ros2 lifecycle set /pointgroup configure") == 1


def test_fake_rclpy_core_logging_reaches_the_node_logger(node_module: Any) -> None:
    core = logging.getLogger("pointgroup_ros")
    before = (core.level, core.propagate, list(core.handlers))
    node = _make_node(node_module)
    try:
        pipeline_log = logging.getLogger("pointgroup_ros.pipeline")
        for i in range(5):  # a per-frame warning from one call site: throttled
            pipeline_log.warning("cloud has %d valid points, more than max_points", 400_000 + i)
        pipeline_log.info("loaded weights")
        pipeline_log.error("kernel failed")
        pipeline_log.debug("not shown at INFO")
        lines = [(level, line) for level, line in node.logger.lines if line.startswith("[pointgroup_ros")]
        assert lines == [("warning", "[pointgroup_ros.pipeline] cloud has 400000 valid points, more than max_points"),
                         ("info", "[pointgroup_ros.pipeline] loaded weights"),
                         ("error", "[pointgroup_ros.pipeline] kernel failed")]
        assert core.propagate is False  # printed once, by the node's logger
    finally:
        node.destroy_node()
    assert (core.level, core.propagate, list(core.handlers)) == before  # removed at destroy


def test_fake_rclpy_publish_failures(node_module: Any) -> None:
    """A publish that fails is counted as a failed frame; at shutdown (context no longer ok) it is ignored."""
    node = _make_node(node_module)
    try:
        markers = node.pubs["~/markers"]
        publish = markers.publish

        def dying(msg: Any) -> None:  # Ctrl-C shuts the context down while the frame is being published
            node.context_ok = False
            raise RuntimeError("Failed to publish: publisher's context is invalid")

        markers.publish = dying  # type: ignore[method-assign]
        node.subs["~/input/points"](_rclpy_cloud())
        _wait(lambda: node.fake_pipeline.calls != [] and node._mailbox._items == {})
        time.sleep(0.2)
        assert node._inputs[0].stats.frames_failed == 0 and node.logger.count("error", "publishing failed") == 0
        markers.publish = publish  # type: ignore[method-assign]
        node.pubs["~/markers"].error = RuntimeError("Failed to publish: publisher's context is invalid")
        node.context_ok = True
        node.subs["~/input/points"](_rclpy_cloud())
        _wait(lambda: node._inputs[0].stats.frames_failed == 1)
        assert node.logger.count("error", "publishing failed: RuntimeError") == 1 and node._worker.is_alive()
        node.pubs["~/markers"].error = None
        assert len(_send(node, _rclpy_cloud()).instances) == 3
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------------------------------- tracking

CAMERA = "camera"


def _two_objects(seed: int = 5) -> np.ndarray:
    """The world (odom) points of two 0.3 m objects, A (the first 400 points) and B (the next 400)."""
    rng = np.random.default_rng(seed)
    a = np.array([2.0, 0.0, 0.5]) + rng.uniform(-0.15, 0.15, (400, 3))
    b = np.array([2.0, 1.5, 0.5]) + rng.uniform(-0.15, 0.15, (400, 3))
    return np.concatenate([a, b])


def _camera_pose(k: int) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """odom <- camera at frame k: the camera drives 0.6 m and turns 25 degrees a frame, so in the camera frame
    an object's points of consecutive frames do not overlap at all (only in odom do they)."""
    yaw = np.radians(25.0) * k
    return (0.6 * k, 0.2 * k, 0.0), (0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2)))


def _tracking_cloud(k: int, base_sec: int, frame: str = CAMERA) -> Any:
    """Frame k: the two objects seen from the camera's pose at k (points in the camera frame), stamp base+k s."""
    from pointgroup_ros.ros.kit import RclpyKit
    from pointgroup_ros.transforms import matrix_from_pose

    pose = matrix_from_pose(*_camera_pose(k))
    world = _two_objects()
    xyz = ((world - pose[:3, 3]) @ pose[:3, :3]).astype(np.float32)  # R^T (p - t)
    stamp = BAGS_KIT.make("builtin_interfaces/msg/Time", sec=base_sec + k, nanosec=0)
    header = BAGS_KIT.make("std_msgs/msg/Header", stamp=stamp, frame_id=frame)
    return encode_cloud(RclpyKit(), header, xyz, np.full((xyz.shape[0], 3), 128, np.uint8))


def _tracking_node(node_module: Any, overrides: dict[str, Any] | None = None) -> Any:
    from ros_testing_fakes import ShuffledObjectsPipeline

    made: list[Any] = []

    def factory(cfg: Config, weights: str, device: str, max_points: int) -> Any:
        made.append(ShuffledObjectsPipeline(cfg, seed=3))
        return made[-1]

    node = _make_node(node_module, overrides, pipeline_factory=factory)
    node.fake_pipeline = made[0]
    return node


def _ids_by_class(instances: Any) -> dict[int, int]:
    """class index -> published id (A is class 0, B class 1)."""
    return {int(inst.class_index): int(inst.id) for inst in instances.instances}


def _add_poses(buffer: Any, base_sec: int, frames: range, target: str = "odom") -> None:
    for k in frames:
        buffer.add(target, CAMERA, *_camera_pose(k), stamp_ns=(base_sec + k) * 10 ** 9)


def test_fake_rclpy_tracking_gives_stable_ids(node_module: Any) -> None:
    base = int(time.time()) - 100
    node = _tracking_node(node_module, {"tracking": True, "tracking_frame": "/odom", "tf_timeout": 0.2})
    try:
        (buffer,) = _TfBuffer.instances  # created at start-up because tracking is on
        _add_poses(buffer, base, range(8))
        published: list[dict[int, int]] = []
        for k in range(6):
            published.append(_ids_by_class(_send(node, _tracking_cloud(k, base))))
            target, source, stamp_ns, timeout = buffer.lookups[-1]
            assert (target, source, stamp_ns, timeout) == ("odom", CAMERA, (base + k) * 10 ** 9, 0.2)
        swaps = [call["swapped"] for call in node.fake_pipeline.calls]
        assert any(swaps) and not all(swaps)  # the ranks did change between frames
        # tentative for the first confirm_hits - 1 frames (unpublished), then the same two ids every frame
        assert published[:2] == [{}, {}]
        ids = published[2]
        assert sorted(ids) == [0, 1] and ids[0] != ids[1] and min(ids.values()) >= 1  # track ids, not ranks
        assert published[2:] == [ids] * 4
        # all four outputs carry the track ids
        detections = node.pubs["~/detections"].sent[-1]
        assert sorted(d.id for d in detections.detections) == sorted(str(i) for i in ids.values())
        boxes = [m.id for m in node.pubs["~/markers"].sent[-1].markers if m.ns == "boxes"]
        assert sorted(boxes) == sorted(ids.values())
        labeled = node.pubs["~/labeled_points"].sent[-1]  # x y z rgb label instance (int32 at byte 20)
        assert [f.name for f in labeled.fields][-1] == "instance" and labeled.point_step == 24
        instance_field = np.frombuffer(bytes(labeled.data), np.dtype({"names": ["instance"], "formats": ["<i4"],
                                                                     "offsets": [20], "itemsize": 24}))["instance"]
        assert set(np.unique(instance_field[:400])) == {ids[0]} and set(np.unique(instance_field[400:])) == {ids[1]}
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["tracking"] == "on, in odom"
        assert values["tracks confirmed"] == "2" and values["frames skipped (no tracking transform)"] == "0"
        assert "time ms: tracking" in values
    finally:
        node.destroy_node()


def test_fake_rclpy_tracking_missing_transform_skips_the_frame(node_module: Any) -> None:
    base = int(time.time()) - 100
    node = _tracking_node(node_module, {"tracking": True, "tf_timeout": 0.0})
    try:
        (buffer,) = _TfBuffer.instances
        _add_poses(buffer, base, (0, 1, 2, 4))  # no pose at frame 3
        for k in range(3):
            ids = _ids_by_class(_send(node, _tracking_cloud(k, base)))
        assert len(ids) == 2
        processed = len(node.pubs["~/instances"].sent)
        calls = len(node.fake_pipeline.calls)
        node.subs["~/input/points"](_tracking_cloud(3, base))
        _wait(lambda: node._inputs[0].stats.frames_skipped_no_tf == 1)
        _wait(lambda: node._mailbox._items == {})
        assert len(node.pubs["~/instances"].sent) == processed  # nothing published for the skipped frame
        assert len(node.fake_pipeline.calls) == calls  # and nothing segmented
        warnings = [line for level, line in node.logger.lines if level == "warning" and "skipping frame" in line]
        assert warnings and "no tracking transform odom <- camera" in warnings[-1] and "does not exist" in warnings[-1]
        status, values = _diagnostics(node)
        assert status.level == b"\x01" and "no tracking transform odom <- camera" in status.message
        assert values["frames skipped (no tracking transform)"] == "1"
        assert values["frames skipped (no transform)"] == "1"  # the total, gravity and tracking alike
        # the tracks survived: the next frame with a pose publishes the same ids
        assert _ids_by_class(_send(node, _tracking_cloud(4, base))) == ids
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["tracks confirmed"] == "2"
    finally:
        node.destroy_node()


def test_fake_rclpy_tracking_parameters_apply_from_the_next_frame(node_module: Any) -> None:
    base = int(time.time()) - 100
    node = _tracking_node(node_module, {"tracking": True})
    try:
        (buffer,) = _TfBuffer.instances
        _add_poses(buffer, base, range(12))
        _add_poses(buffer, base, range(12), target="map")
        for k in range(3):
            ids = _ids_by_class(_send(node, _tracking_cloud(k, base)))
        assert len(ids) == 2
        # a threshold change replaces the tracker's configuration from the next frame; the tracks are kept
        assert node.set_parameters_atomically({"tracking_min_iou": 0.3, "tracking_max_missed": 4}).successful
        assert node._inputs[0].tracker.config.min_iou == 0.1  # not before the next frame
        assert _ids_by_class(_send(node, _tracking_cloud(3, base))) == ids
        assert (node._inputs[0].tracker.config.min_iou, node._inputs[0].tracker.config.max_missed) == (0.3, 4)
        # bad values are refused with the parameter's name
        bad = node.set_parameters_atomically({"tracking_confirm_hits": 6})  # > tracking_confirm_window (5)
        assert not bad.successful and "tracking_confirm_window" in bad.reason
        bad = node.set_parameters_atomically({"tracking_tentative_max_missed": 5})
        assert not bad.successful and "tracking_tentative_max_missed" in bad.reason
        bad = node.set_parameters_atomically({"tracking_frame": ""})
        assert not bad.successful and "tracking_frame" in bad.reason
        # a new tracking frame forgets the tracks: with confirm_hits 1 the objects are published at once, under
        # new ids (ids are never reused)
        assert node.set_parameters_atomically({"tracking_frame": "map", "tracking_confirm_hits": 1}).successful
        new_ids = _ids_by_class(_send(node, _tracking_cloud(4, base)))
        assert buffer.lookups[-1][:2] == ("map", CAMERA)
        assert len(new_ids) == 2 and min(new_ids.values()) > max(ids.values())
        assert _ids_by_class(_send(node, _tracking_cloud(5, base))) == new_ids
        # tracking off: the ranks, as without tracking, and no lookup
        lookups = len(buffer.lookups)
        assert node.set_parameters_atomically({"tracking": False}).successful
        for k in range(6, 9):
            ranks = _ids_by_class(_send(node, _tracking_cloud(k, base)))
            swapped = node.fake_pipeline.calls[-1]["swapped"]
            assert ranks == ({0: 1, 1: 0} if swapped else {0: 0, 1: 1})
        assert len(buffer.lookups) == lookups and node._inputs[0].tracker is None
        status, values = _diagnostics(node)
        assert values["tracking"] == "off" and "tracks confirmed" not in values
        # and on again: the tracks start afresh (still confirm_hits 1: published at once, under new ids)
        assert node.set_parameters_atomically({"tracking": True}).successful
        again = _ids_by_class(_send(node, _tracking_cloud(9, base)))
        assert len(again) == 2 and min(again.values()) >= 1
    finally:
        node.destroy_node()


def test_fake_rclpy_tracking_off_publishes_ranks(node_module: Any) -> None:
    node = _tracking_node(node_module)
    try:
        assert _TfBuffer.instances == []  # tracking off and no gravity frame: no tf2
        base = int(time.time()) - 100
        for k in range(3):
            ranks = _ids_by_class(_send(node, _tracking_cloud(k, base)))
            assert ranks == ({0: 1, 1: 0} if node.fake_pipeline.calls[-1]["swapped"] else {0: 0, 1: 1})
        status, values = _diagnostics(node)
        assert values["tracking"] == "off" and "tracks confirmed" not in values
        assert "time ms: tracking" not in values
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------------------------------- diagnostics

def test_fake_rclpy_diagnostics_name_and_silent_input(node_module: Any) -> None:
    """The status is named after the node's fully qualified name; no cloud for diagnostics_stale_s (on the
    node's monotonic clock) is WARN with the resolved topic, from start-up on, and clears when a cloud comes."""
    clock = FakeClock()
    node = _make_node(node_module, monotonic=clock, namespace="/robot/front")
    try:
        status, values = _diagnostics(node)
        assert status.name == "/robot/front/pointgroup" and status.hardware_id == "cpu"
        assert status.level == b"\x00" and status.message == "ready"
        assert values["input topic"] == "/robot/front/pointgroup/input/points"
        assert values["seconds since last cloud"] == "never" and values["no-cloud warning after s"] == "5"
        clock.advance(6.0)  # a camera silent from the start
        status, values = _diagnostics(node)
        assert status.level == b"\x01"
        assert status.message == "ready; no cloud on /robot/front/pointgroup/input/points for 6.0 s (none yet)"
        _send(node, _rclpy_cloud())  # the camera comes: OK again
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and status.message == "ready"
        assert values["seconds since last cloud"] == "0.0"
        assert values["input rate Hz (last 10 s)"] == "0.17"  # one cloud in the 6 s since the model was ready
        assert values["output rate Hz (last 10 s, frames published)"] == "0.17"
        assert values["outputs subscribed"] == "labeled_points, detections, markers, instances"
        clock.advance(12.0)  # and goes silent
        status, values = _diagnostics(node)
        assert status.level == b"\x01"
        assert status.message == "ready; no cloud on /robot/front/pointgroup/input/points for 12.0 s"
        assert values["seconds since last cloud"] == "12.0" and values["input rate Hz (last 10 s)"] == "0.00"

        # diagnostics_stale_s is tunable: a longer time clears the WARN, 0 never warns, a negative one is refused
        assert node.set_parameters_atomically({"diagnostics_stale_s": 20.0}).successful
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["no-cloud warning after s"] == "20"
        assert node.set_parameters_atomically({"diagnostics_stale_s": 0.0}).successful
        clock.advance(3600.0)
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["no-cloud warning after s"] == "never (diagnostics_stale_s 0)"
        bad = node.set_parameters_atomically({"diagnostics_stale_s": -1.0})
        assert not bad.successful and "diagnostics_stale_s: must be in [0.0, 3600.0]" in bad.reason
        assert node.get_parameter("diagnostics_stale_s").value == 0.0 and node._settings.diagnostics_stale_s == 0.0
    finally:
        node.destroy_node()


def test_fake_rclpy_diagnostics_silent_while_loading_counts_from_ready(node_module: Any) -> None:
    """The silence is counted from when the model is ready: a slow load is not a silent camera."""
    clock = FakeClock()
    gate = threading.Event()

    def slow_factory(cfg: Config, weights: str, device: str, max_points: int) -> FakePipeline:
        gate.wait(10.0)
        return FakePipeline(cfg)

    node = node_module.PointGroupNode(pipeline_factory=slow_factory, model_resolver=_synthetic, monotonic=clock)
    try:
        status, _ = _diagnostics(node)
        assert status.level == b"\x00" and status.message == "unconfigured (no model loaded)"
        starting = threading.Thread(target=node.start)  # a multi-threaded executor runs the timer meanwhile
        starting.start()
        clock.advance(30.0)
        status, _ = _diagnostics(node)
        # no silence warning while loading
        assert status.level == b"\x01" and status.message == "configuring: loading the model"
        gate.set()
        starting.join(10.0)
        assert node._state == "ready"
        clock.advance(4.0)
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and values["seconds since last cloud"] == "never"
        clock.advance(1.5)
        status, _ = _diagnostics(node)
        assert status.level == b"\x01" and status.message.endswith("input/points for 5.5 s (none yet)")
    finally:
        gate.set()
        node.destroy_node()


class _GatedPipeline(FakePipeline):
    """segment() waits for `gate`: a pipeline slower than the input."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def segment(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.gate.wait(10.0)
        return super().segment(*args, **kwargs)


def _gated_node(node_module: Any, **kwargs: Any) -> tuple[Any, _GatedPipeline]:
    """A node whose worker builds one _GatedPipeline, and that pipeline."""
    made: list[_GatedPipeline] = []

    def factory(cfg: Config, weights: str, device: str, max_points: int) -> _GatedPipeline:
        made.append(_GatedPipeline(cfg))
        return made[-1]

    node = _make_node(node_module, pipeline_factory=factory, **kwargs)
    (pipeline,) = made
    return node, pipeline


def test_fake_rclpy_diagnostics_dropped_frames_and_no_listeners(node_module: Any) -> None:
    """Clouds at 10 Hz while one frame is being segmented: frames are dropped, WARN says so with the counter; with
    nobody subscribed to an output the same rates are no problem, and the values say there are no subscribers."""
    clock = FakeClock()
    node, pipeline = _gated_node(node_module, monotonic=clock)
    try:
        callback = node.subs["~/input/points"]
        msg = _rclpy_cloud()
        clock.advance(0.1)
        callback(msg)
        assert pipeline.entered.wait(10.0)  # the worker is busy with the first cloud
        for _ in range(19):  # 2 s at 10 Hz: the second waits in the mailbox, the 18 after it replace it
            clock.advance(0.1)
            callback(msg)
        for pub in node.pubs.values():
            pub.subscribers = 0
        status, values = _diagnostics(node)
        assert status.level == b"\x00" and status.message == "ready"
        assert values["outputs subscribed"] == "none (frames are not segmented)"
        assert values["input rate Hz (last 10 s)"] == "10.00"
        assert values["output rate Hz (last 10 s, frames published)"] == "0.00"
        for pub in node.pubs.values():
            pub.subscribers = 1
        status, values = _diagnostics(node)
        assert status.level == b"\x01"
        assert status.message == ("ready; frames are dropped: processing is slower than the input (output 0.0 Hz, "
                                  "input 10.0 Hz; frames dropped (newer frame arrived): 18 in the last 10 s, 18 in "
                                  "all)")
        assert values["frames dropped (last 10 s)"] == "18" and values["frames dropped (newer frame arrived)"] == "18"
        pipeline.gate.set()
        _wait(lambda: node._inputs[0].stats.frames_processed == 2)  # the first cloud and the newest one
        clock.advance(10.0)  # the drops leave the window; the input has been silent for 10 s
        status, values = _diagnostics(node)
        assert "frames are dropped" not in status.message and "no cloud on /pointgroup/input/points" in status.message
        assert values["frames dropped (last 10 s)"] == "0"
    finally:
        pipeline.gate.set()
        node.destroy_node()


# ---------------------------------------------------------------------------------------------- shutdown


def _sent(node: Any) -> dict[str, int]:
    return {topic: len(pub.sent) for topic, pub in node.pubs.items()}


def test_fake_rclpy_frame_ending_after_destroy_is_not_published(node_module: Any) -> None:
    """Ctrl-C mid-frame: destroy_node waits at most WORKER_JOIN_S for the worker; the frame that ends afterwards
    is neither published nor logged about, and the worker ends."""
    node, pipeline = _gated_node(node_module)
    try:
        node.subs["~/input/points"](_rclpy_cloud())
        assert pipeline.entered.wait(10.0)
        before, lines = _sent(node), len(node.logger.lines)
        start, worker = time.monotonic(), node._worker
        node.destroy_node()
        assert time.monotonic() - start < node_module.WORKER_JOIN_S + 0.5  # not the frame's (gated) length
        assert worker.is_alive()  # still in segment()
    finally:
        pipeline.gate.set()
    worker.join(5.0)
    assert not worker.is_alive()
    assert _sent(node) == before and node.logger.lines[lines:] == []
    assert node._inputs[0].stats.frames_processed == 0 and node._inputs[0].stats.frames_failed == 0


def test_fake_rclpy_frame_after_ctrl_c_is_not_published(node_module: Any) -> None:
    """The context shut down by Ctrl-C (rclpy's signal handler) before destroy_node: the frame in progress ends
    unpublished and without a word (no publish, no log: both would go through the dead context)."""
    node, pipeline = _gated_node(node_module)
    try:
        node.subs["~/input/points"](_rclpy_cloud(colour="none"))  # would warn "no colour" when published
        assert pipeline.entered.wait(10.0)
        before, lines = _sent(node), len(node.logger.lines)
        node.context_ok = False
        pipeline.gate.set()
        _wait(lambda: node._mailbox._items == {} and len(pipeline.calls) == 1)
        time.sleep(0.2)
        assert _sent(node) == before and node.logger.lines[lines:] == []
        node.timers[0]()  # the diagnostics timer, had the executor still run it
        assert _sent(node) == before and node.logger.lines[lines:] == []
        worker = node._worker
    finally:
        pipeline.gate.set()
        node.destroy_node()
    assert not worker.is_alive()


@pytest.mark.parametrize("fails", [False, True], ids=["loads", "fails"])
def test_fake_rclpy_model_loaded_after_ctrl_c_starts_nothing(node_module: Any, fails: bool) -> None:
    """Ctrl-C while configure loads the model (rclpy's signal handler shuts the context down): a load that ends
    afterwards logs nothing ("configured" or the failure), starts no worker and publishes nothing."""
    node: Any = None

    def slow_factory(cfg: Config, weights: str, device: str, max_points: int) -> FakePipeline:
        node.context_ok = False  # Ctrl-C now
        if fails:
            raise FileNotFoundError("no such checkpoint: /nope.pth")
        return FakePipeline(cfg)

    node = node_module.PointGroupNode(pipeline_factory=slow_factory, model_resolver=_synthetic)
    try:
        lines = len(node.logger.lines)
        assert node.trigger_configure() == node_module.TransitionCallbackReturn.FAILURE
        assert node._worker is None and node._pipeline is None
        assert node.logger.lines[lines:] == []
    finally:
        node.destroy_node()
    assert _sent(node) == {topic: 0 for topic in node.pubs}


def test_fake_rclpy_core_logging_stops_at_shutdown(node_module: Any) -> None:
    """The core's Python logging is not forwarded to rclpy once the context is shut down (it would publish on
    /rosout through the dead context: "Failed to publish log message to rosout")."""
    node = _make_node(node_module)
    try:
        lines = len(node.logger.lines)
        node.context_ok = False
        logging.getLogger("pointgroup_ros.pipeline").warning("a warning while shutting down")
        assert node.logger.lines[lines:] == []
    finally:
        node.destroy_node()


def test_fake_rclpy_main_on_ctrl_c_while_building(node_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the node is built (main thread): a KeyboardInterrupt, or rclpy refusing what came next on the
    shut-down context, ends main quietly (exit code 0: it returns) instead of a traceback."""
    def interrupted() -> Any:
        raise KeyboardInterrupt

    node_module.main([], node_factory=interrupted)

    def refused() -> Any:  # e.g. declare_parameter publishing a parameter event on a dead context
        monkeypatch.setattr(sys.modules["rclpy"], "ok", lambda: False)
        raise RuntimeError("Failed to publish: publisher's context is invalid")

    node_module.main([], node_factory=refused)
    assert ROOT_LOGGER.lines == []
    monkeypatch.setattr(sys.modules["rclpy"], "ok", lambda: True)

    def broken() -> Any:  # a real error while rclpy is fine is not hidden
        raise KeyError("a bug")

    with pytest.raises(KeyError, match="a bug"):
        node_module.main([], node_factory=broken)


# ---------------------------------------------------------------------------------------------- several inputs


def test_fake_rclpy_two_inputs_one_model(node_module: Any) -> None:
    """inputs "front, rear": each input has its topics, its outputs and its diagnostic status; one pipeline serves
    both; a cloud on one input is published on that input's outputs only; a silent input warns on its own
    status; each input keeps its own tracks."""
    clock = FakeClock()
    node = _make_node(node_module, {"inputs": "front, rear"}, monotonic=clock)
    try:
        assert set(node.subs) == {"~/front/input/points", "~/rear/input/points"}
        assert {f"~/{k}/{out}" for k in ("front", "rear") for out in ("labeled_points", "detections", "markers",
                                                                       "instances")} | {"/diagnostics"} == \
            set(node.pubs)
        msg = _rclpy_cloud()
        for _ in range(3):
            clock.advance(0.5)
            _send(node, msg, "~/front/instances")
        assert len(node.pubs["~/front/instances"].sent) == 3 and node.pubs["~/rear/instances"].sent == []
        assert len(node.pubs["~/front/instances"].sent[0].instances) == 3
        assert len(node.fake_pipeline.calls) == 3  # one model for both inputs
        clock.advance(5.0)  # the rear camera has sent nothing for 6.5 s since activation
        node.timers[0]()
        front, rear = node.pubs["/diagnostics"].sent[-1].status
        assert (front.name, rear.name) == ("/pointgroup/front", "/pointgroup/rear")
        values = {kv.key: kv.value for kv in front.values}
        assert values["input topic"] == "/pointgroup/front/input/points" and values["frames processed"] == "3"
        assert front.level == b"\x01" and "no cloud on /pointgroup/front/input/points for 5.0 s" in front.message
        assert rear.level == b"\x01" and rear.message.endswith("no cloud on /pointgroup/rear/input/points for 6.5 s "
                                                               "(none yet)")
        assert {kv.key: kv.value for kv in rear.values}["frames processed"] == "0"
        _send(node, msg, "~/rear/instances")
        assert len(node.pubs["~/rear/instances"].sent) == 1 and len(node.pubs["~/front/instances"].sent) == 3
        front_stats, rear_stats = (inp.stats for inp in node._inputs)
        assert (front_stats.frames_processed, rear_stats.frames_processed) == (3, 1)
    finally:
        node.destroy_node()


def test_fake_rclpy_inputs_track_apart(node_module: Any) -> None:
    """With tracking, each input has its own tracker: the same objects seen by two cameras are two sets of
    tracks (ids are per input), and turning tracking off forgets both."""
    node = _make_node(node_module, {"inputs": "front,rear", "tracking": True, "tracking_frame": "odom",
                                    "tracking_confirm_hits": 1})
    try:
        (buffer,) = _TfBuffer.instances
        buffer.add("odom", "camera", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
        msg = _rclpy_cloud()
        _send(node, msg, "~/front/instances")
        _send(node, msg, "~/rear/instances")
        front, rear = (inp.tracker for inp in node._inputs)
        assert front is not None and rear is not None and front is not rear
        assert len(node.pubs["~/front/instances"].sent[-1].instances) == 3
        assert len(node.pubs["~/rear/instances"].sent[-1].instances) == 3
        assert node.set_parameters_atomically({"tracking": False}).successful
        _send(node, msg, "~/front/instances")
        assert node._inputs[0].tracker is None and node._inputs[1].tracker is not None  # rear: at its next frame
        _send(node, msg, "~/rear/instances")
        assert node._inputs[1].tracker is None
    finally:
        node.destroy_node()


def test_fake_rclpy_undeserializable_cloud_is_counted_not_fatal(node_module: Any) -> None:
    """The node subscribes raw and deserializes only the frames it takes: bytes that are no PointCloud2 are one
    rejected frame (in /diagnostics), and the worker goes on with the next cloud."""
    node = _make_node(node_module)
    try:
        node.subs["~/input/points"](b"\x00\x01 not a cloud")
        _wait(lambda: node._inputs[0].stats.frames_rejected == 1)
        status, values = _diagnostics(node)
        assert "cannot deserialize the cloud" in status.message and values["frames rejected (bad input)"] == "1"
        assert len(_send(node, _rclpy_cloud()).instances) == 3
    finally:
        node.destroy_node()
