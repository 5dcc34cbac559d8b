"""The node's own logic without ROS 2: PointGroupNode runs against a minimal stand-in of the rclpy API it uses.

The stand-in is not ROS (no DDS, no executor); it records what the node declares, publishes and logs, and
emulates rclpy's parameter rules (read-only refused, on-set callbacks asked). Messages are rosbags classes built
through the same field names rclpy's would take. What this cannot show (QoS matching, discovery, real message
classes) the `ros` tests in test_node_ros.py cover on a ROS 2 machine; mypy checks the calls against rclpy's
sources (test_ros_static_check.py).
"""
from __future__ import annotations

import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
from ros_testing_fakes import FakePipeline

from pointgroup_ros.config import load_config

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

    def publish(self, msg: Any) -> None:
        self.sent.append(msg)

    def get_subscription_count(self) -> int:
        return self.subscribers


class _Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda message, **kw: self.lines.append((level, str(message)))


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

    def __init__(self, name: str, parameter_overrides: dict[str, Any] | None = None) -> None:
        self._name = name
        self._overrides = parameter_overrides or {}
        self._params: dict[str, _Param] = {}
        self._callbacks: list[Callable[[list[_Param]], _Result]] = []
        self.pubs: dict[str, _Publisher] = {}
        self.subs: dict[str, Callable[[Any], None]] = {}
        self.timers: list[Callable[[], None]] = []
        self.logger = _Logger()

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

    def create_subscription(self, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any) -> None:
        self.subs[topic] = callback

    def create_timer(self, period: float, callback: Callable[[], None]) -> None:
        self.timers.append(callback)

    def get_logger(self) -> _Logger:
        return self.logger

    def get_clock(self) -> Any:
        return types.SimpleNamespace(now=lambda: _Stamp(time.time_ns()))

    def get_name(self) -> str:
        return self._name

    def get_fully_qualified_name(self) -> str:
        return "/" + self._name

    def resolve_topic_name(self, topic: str) -> str:
        return topic.replace("~", "/" + self._name)

    def destroy_node(self) -> None:
        pass


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
        "rclpy": types.SimpleNamespace(init=lambda args=None: None, spin=lambda node: None,
                                       try_shutdown=lambda: None),
        "rclpy.executors": types.SimpleNamespace(ExternalShutdownException=RuntimeError),
        "rclpy.node": types.SimpleNamespace(Node=_Node),
        "rclpy.parameter": types.SimpleNamespace(Parameter=_Param),
        "rclpy.publisher": types.SimpleNamespace(Publisher=_Publisher),
        "rclpy.qos": qos,
        "rclpy.time": types.SimpleNamespace(Time=_Stamp),
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
    import pointgroup_ros.ros.node as node_module

    yield node_module
    monkeypatch.delitem(sys.modules, "pointgroup_ros.ros.node", raising=False)


def _cloud(kit: Any, colour: str = "rgb") -> Any:
    rng = np.random.default_rng(0)
    centres = np.array([[0.1, 0.1, 1.1], [0.6, 0.1, 1.1], [0.1, 0.6, 1.6]])
    xyz = (centres[np.arange(1500) % 3] + rng.uniform(-0.08, 0.08, (1500, 3))).astype(np.float32)
    xyz[::50] = np.nan
    rgb = rng.integers(0, 256, (1500, 3)).astype(np.uint8)
    stamp = BAGS_KIT.make("builtin_interfaces/msg/Time", sec=int(time.time()) - 1, nanosec=0)
    header = BAGS_KIT.make("std_msgs/msg/Header", stamp=stamp, frame_id="camera")
    return encode_cloud(kit, header, xyz, None if colour == "none" else rgb, height=30, colour=colour)


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_fake_rclpy_node_flow(node_module: Any) -> None:
    node = node_module.PointGroupNode(
        pipeline_factory=lambda cfg, weights, device, max_points: FakePipeline(cfg),
        parameter_overrides={"score_threshold": 0.0, "cluster_min_points": 10, "class_names": ["x"]})
    try:
        _wait(lambda: any("ready" in line for _, line in node.logger.lines))
        assert set(node.pubs) == {"~/labeled_points", "~/detections", "~/markers", "~/instances", "/diagnostics"}
        model_classes = FakePipeline(load_config(node.get_parameter("config").value)).class_names
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
        assert not node.set_parameters_atomically({"device": "cpu"}).successful
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
    finally:
        node.destroy_node()
    assert not node._worker.is_alive()


def test_fake_rclpy_model_failure_is_reported(node_module: Any) -> None:
    def broken_factory(cfg: Any, weights: str, device: str, max_points: int) -> Any:
        raise FileNotFoundError("no such checkpoint: /nope.pth")

    node = node_module.PointGroupNode(pipeline_factory=broken_factory)
    try:
        _wait(lambda: not node._worker.is_alive())
        node.timers[0]()
        (status,) = node.pubs["/diagnostics"].sent[-1].status
        assert status.level == b"\x02" and "no such checkpoint" in status.message
        assert any(level == "error" for level, _ in node.logger.lines)
    finally:
        node.destroy_node()


def test_fake_rclpy_invalid_start_parameters(node_module: Any) -> None:
    with pytest.raises(ValueError, match="cluster_sets"):
        node_module.PointGroupNode(pipeline_factory=lambda *a: FakePipeline(),
                                   parameter_overrides={"cluster_sets": "r"})
