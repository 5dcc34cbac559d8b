"""The rclpy node for real (marked `ros`: skipped where rclpy cannot be imported).

Two places run these: `make test`, against ROS 2 Jazzy's rclpy and messages from PyPI in .venv/ros
(test/ros/pypi_ros.py; vision_msgs and our messages generated there), and `colcon test` under a ROS 2 built or
installed from source (Humble, Jazzy). PyPI has no tf2_ros: there the gravity-frame and tracking tests are
skipped (the fake-rclpy tests cover their logic) and the node is shown to refuse those parameters with a reason.

The node runs in-process with the fake pipeline (the node's mechanics are under test, not the network): a test
node publishes clouds on /pointgroup/input/points, receives all four outputs and /diagnostics, changes
parameters through the SetParameters service and sees them applied from the next frame, sees invalid values
rejected with a reason, and checks that a malformed cloud neither kills the node nor publishes anything. It
lists, gets and describes the parameters through the node's parameter services and reads the QoS of the
node's endpoints from the ROS graph (best-effort input, reliable outputs). With a
static transform from a tf2_ros StaticTransformBroadcaster, gravity_frame puts detections, markers and instances
in that frame; a gravity frame without a transform skips frames (counted in /diagnostics, WARN); an empty cloud
clears the markers (a DELETEALL alone); /diagnostics has one status named after the node (/pointgroup) with the
input and output rates, and WARNs when no cloud came for diagnostics_stale_s; with tracking on (odom <- camera
from a static transform) the same cloud published again and again is published under the same track ids frame
after frame. conftest.py gives each run its own ROS_DOMAIN_ID and keeps discovery on this machine.
"""
from __future__ import annotations

import contextlib
import importlib
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pytest

if TYPE_CHECKING:  # annotations only: rclpy exists only on a ROS 2 machine
    from rclpy.node import Node
    from rclpy.publisher import Publisher

    from pointgroup_ros.ros.kit import RclpyKit
    from pointgroup_ros.ros.node import PointGroupNode

pytestmark = pytest.mark.ros

TIMEOUT_S = 30.0
NODE_NAME = "/pointgroup"  # the node's fully qualified name: its diagnostic status's name


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An organized 40 x 50 cloud of four tight blobs (one per 0.25 m fake-pipeline cell) with NaN holes."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.1, 0.1, 1.1], [0.6, 0.1, 1.1], [0.1, 0.6, 1.6], [0.6, 0.6, 1.6]])
    xyz = (centres[np.arange(2000) % 4] + rng.uniform(-0.08, 0.08, (2000, 3))).astype(np.float32)
    xyz[::97] = np.nan
    rgb = rng.integers(0, 256, (2000, 3)).astype(np.uint8)
    return xyz, rgb


@contextlib.contextmanager
def _graph(pipeline_factory: Callable[..., Any] | None = None,
           **parameters: Any) -> Iterator[tuple[PointGroupNode, Node]]:
    """The node (started: configure + activate, as autostart does) with the fake pipeline and `parameters`, and a
    tester node, spun by a multi-threaded executor."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from ros_testing_fakes import FakePipeline

    from pointgroup_ros.config import load_config
    from pointgroup_ros.ros.node import PointGroupNode

    rclpy.init()
    try:  # a node that fails to build must not leave rclpy initialised for the next test
        # the synthetic preset (the demo model's configuration) without reading a checkpoint
        node = PointGroupNode(pipeline_factory=pipeline_factory or (lambda cfg, *args: FakePipeline(cfg)),
                              model_resolver=lambda config, weights: load_config(config or "synthetic"),
                              parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])
        assert node.start()
        tester = rclpy.create_node("pointgroup_tester")
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.add_node(tester)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
    except BaseException:
        rclpy.try_shutdown()
        raise
    try:
        yield node, tester
    finally:
        executor.shutdown()
        node.destroy_node()
        tester.destroy_node()
        rclpy.try_shutdown()
        spinner.join(timeout=5.0)


@pytest.fixture
def ros_graph() -> Iterator[tuple[PointGroupNode, Node]]:
    with _graph() as graph:
        yield graph


def _wait(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class _Outputs:
    """Subscribes to the node's outputs and keeps the latest message of each."""

    TOPICS = {"labeled_points": "sensor_msgs/msg/PointCloud2", "detections": "vision_msgs/msg/Detection3DArray",
              "markers": "visualization_msgs/msg/MarkerArray", "instances": "pointgroup_ros/msg/InstanceArray"}

    def __init__(self, tester: Node, kit: RclpyKit) -> None:
        self.latest: dict[str, Any] = {}
        self.count: dict[str, int] = {name: 0 for name in self.TOPICS}
        self.diagnostics: list[Any] = []
        self._lock = threading.Lock()
        for name, typename in self.TOPICS.items():
            tester.create_subscription(kit.cls(typename), f"/pointgroup/{name}", self._keep(name), 10)
        tester.create_subscription(kit.cls("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics",
                                   self.diagnostics.append, 10)

    def _keep(self, name: str) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self._lock:
                self.latest[name] = msg
                self.count[name] += 1
        return callback

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.count)


def _publish_until(pub: Publisher, msg: Any, outputs: _Outputs,
                   names: tuple[str, ...] = tuple(_Outputs.TOPICS)) -> None:
    """Publish `msg` every 0.2 s until every output in `names` has a message newer than before."""
    before = outputs.snapshot()
    end = time.monotonic() + TIMEOUT_S
    while time.monotonic() < end:
        pub.publish(msg)
        time.sleep(0.2)
        now = outputs.snapshot()
        if all(now[n] > before[n] for n in names):
            return
    raise AssertionError(f"no new {names} after publishing (counts {outputs.snapshot()}, before {before})")


def _wire(tester: Node) -> tuple[Any, _Outputs, Publisher]:
    """(kit, the tester's subscriptions to the four outputs, a publisher to the node's input)."""
    from pointgroup_ros.ros.kit import RclpyKit

    kit = RclpyKit()
    outputs = _Outputs(tester, kit)
    return kit, outputs, tester.create_publisher(kit.cls("sensor_msgs/msg/PointCloud2"), "/pointgroup/input/points", 1)


def _set(tester: Node, **values: Any) -> list[Any]:
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request()
    request.parameters = [Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]
    response: Any = _call(tester, SetParameters, "/pointgroup/set_parameters", request)
    return list(response.results)


def _call(tester: Node, srv_type: Any, name: str, request: Any) -> Any:
    """One service call, waiting at most TIMEOUT_S for the service and for the answer (never hangs)."""
    client = tester.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=TIMEOUT_S), f"no service {name}"
        future = client.call_async(request)  # the executor spinning `tester` completes it
        _wait(future.done, f"the answer of {name}")
        return future.result()
    finally:
        tester.destroy_client(client)


def _tf2_ros() -> Any:
    """tf2_ros, or skip: it is not on PyPI (make test's .venv/ros); colcon test under a ROS 2 from source runs
    these tests. importlib: tf2_ros ships no type information (the static check runs without ROS)."""
    try:
        return importlib.import_module("tf2_ros")
    except ImportError as exc:
        pytest.skip(f"needs tf2_ros ({exc}): not on PyPI, so only a ROS 2 from source (colcon test) runs this; "
                    "the fake-rclpy tests cover the logic")


def test_node_end_to_end(ros_graph: tuple[PointGroupNode, Node]) -> None:
    from ros_testing_fakes import FakePipeline

    from pointgroup_ros.ros.cloud import decode_cloud, encode_cloud

    node, tester = ros_graph
    kit, outputs, pub = _wire(tester)
    xyz, rgb = _blobs()
    header = kit.make("std_msgs/msg/Header", stamp=tester.get_clock().now().to_msg(), frame_id="camera")
    cloud = encode_cloud(kit, header, xyz, rgb, height=40)

    expected = FakePipeline().segment(xyz, rgb).num_instances  # what the node must report with the defaults
    assert expected >= 2
    _publish_until(pub, cloud, outputs)
    labeled = outputs.latest["labeled_points"]
    assert (labeled.height, labeled.width) == (40, 50) and labeled.header.frame_id == "camera"
    np.testing.assert_array_equal(decode_cloud(labeled).xyz, xyz)
    instances = outputs.latest["instances"].instances
    assert len(instances) == expected
    assert len(outputs.latest["detections"].detections) == expected
    markers = outputs.latest["markers"].markers
    assert markers[0].action == 3 and len(markers) == 1 + 2 * expected
    _wait(lambda: any(s.name == NODE_NAME for d in outputs.diagnostics for s in d.status), "diagnostics")
    assert node.get_fully_qualified_name() == NODE_NAME

    # a tunable parameter applies from the next frame
    (result,) = _set(tester, cluster_min_points=1_000_000)
    assert result.successful, result.reason
    _publish_until(pub, cloud, outputs, ("instances",))
    _wait(lambda: len(outputs.latest["instances"].instances) == 0, "zero instances after cluster_min_points")

    # invalid values and read-only parameters are refused with a reason; the old value stays
    (bad,) = _set(tester, score_threshold=2.0)
    assert not bad.successful and "score_threshold" in bad.reason
    (ro,) = _set(tester, input_depth=3)
    assert not ro.successful and "read-only" in ro.reason
    (reported,) = _set(tester, class_names=["x"])
    assert not reported.successful and "reported by the node" in reported.reason
    (later,) = _set(tester, device="cpu")  # the model's source: accepted, applied at the next configure
    assert later.successful and node._device == "cpu"
    assert node.get_parameter("score_threshold").value == pytest.approx(0.09)
    (shifted,) = _set(tester, cluster_radius_shifted=0.02)
    assert shifted.successful, shifted.reason
    assert node.get_parameter("cluster_radius_shifted").value == pytest.approx(0.02)
    (negative,) = _set(tester, cluster_radius_shifted=-0.5)
    assert not negative.successful and "cluster_radius_shifted" in negative.reason

    # switching an output off stops it
    results = _set(tester, cluster_min_points=50, publish_markers=False)  # one result per parameter
    assert len(results) == 2 and all(r.successful for r in results), [r.reason for r in results]
    markers_before = outputs.snapshot()["markers"]
    _publish_until(pub, cloud, outputs, ("instances",))
    _publish_until(pub, cloud, outputs, ("instances",))
    assert outputs.snapshot()["markers"] == markers_before
    assert len(outputs.latest["instances"].instances) == expected

    # diagnostics: the rates; a silent input is WARN naming the topic, and a cloud clears it
    def rates() -> bool:
        values = _diagnostic_values(outputs)[2]
        return (float(values.get("input rate Hz (last 10 s)", "0")) > 0
                and float(values.get("output rate Hz (last 10 s, frames published)", "0")) > 0)

    _wait(rates, "input and output rates in /diagnostics")
    assert _diagnostic_values(outputs)[2]["input topic"] == "/pointgroup/input/points"
    (negative,) = _set(tester, diagnostics_stale_s=-1.0)
    assert not negative.successful and "diagnostics_stale_s" in negative.reason
    (stale,) = _set(tester, diagnostics_stale_s=1.0)
    assert stale.successful, stale.reason

    def silent() -> bool:
        level, message, _ = _diagnostic_values(outputs)
        return level == 1 and "no cloud on /pointgroup/input/points for" in message

    _wait(silent, "the no-cloud WARN in /diagnostics")

    def cleared() -> bool:
        pub.publish(cloud)  # clouds keep coming (every 0.2 s, well within diagnostics_stale_s)
        time.sleep(0.2)
        level, message, _ = _diagnostic_values(outputs)
        return level == 0 and "no cloud" not in message

    _wait(cleared, "the no-cloud WARN to clear")
    (result,) = _set(tester, diagnostics_stale_s=5.0)
    assert result.successful, result.reason


def test_parameter_services_and_qos(ros_graph: tuple[PointGroupNode, Node]) -> None:
    """The node's parameter services answer a second node; its endpoints carry the QoS the parameters give."""
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from pointgroup_ros.ros.cloud import encode_cloud
    from pointgroup_ros.ros.kit import RclpyKit

    node, tester = ros_graph
    listed: Any = _call(tester, ListParameters, "/pointgroup/list_parameters", ListParameters.Request())
    names = set(listed.result.names)
    assert {"device", "config", "score_threshold", "cluster_min_points", "input_reliability",
            "output_reliability", "gravity_frame", "tracking", "diagnostics_stale_s"} <= names, sorted(names)
    got: Any = _call(tester, GetParameters, "/pointgroup/get_parameters",
                     GetParameters.Request(names=["score_threshold", "input_reliability", "tracking"]))
    threshold, reliability, tracking = got.values
    assert threshold.type == ParameterType.PARAMETER_DOUBLE and threshold.double_value == pytest.approx(0.09)
    assert reliability.type == ParameterType.PARAMETER_STRING and reliability.string_value == "best_effort"
    assert tracking.type == ParameterType.PARAMETER_BOOL and tracking.bool_value is False
    described: Any = _call(tester, DescribeParameters, "/pointgroup/describe_parameters",
                           DescribeParameters.Request(names=["output_reliability", "score_threshold"]))
    read_only, tunable = described.descriptors
    assert read_only.read_only and not tunable.read_only
    assert tunable.floating_point_range and tunable.floating_point_range[0].to_value == pytest.approx(1.0)
    (refused,) = _set(tester, output_reliability="best_effort")  # read-only: QoS is fixed at start-up
    assert not refused.successful
    (refused,) = _set(tester, input_reliability="sometimes")
    assert not refused.successful
    assert node.get_parameter("input_reliability").value == "best_effort"

    def endpoint(infos: list[Any]) -> Any:
        mine = [i for i in infos if i.node_name == "pointgroup"]
        return mine[0] if mine else None

    def discovered() -> bool:
        return (endpoint(tester.get_subscriptions_info_by_topic("/pointgroup/input/points")) is not None
                and all(endpoint(tester.get_publishers_info_by_topic(f"/pointgroup/{name}")) is not None
                        for name in _Outputs.TOPICS))

    _wait(discovered, "the node's endpoints in the ROS graph")
    sub = endpoint(tester.get_subscriptions_info_by_topic("/pointgroup/input/points"))
    assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT  # (discovery does not carry the depth)
    assert sub.topic_type == "sensor_msgs/msg/PointCloud2"
    for name, typename in _Outputs.TOPICS.items():
        pub_info = endpoint(tester.get_publishers_info_by_topic(f"/pointgroup/{name}"))
        assert pub_info.qos_profile.reliability == ReliabilityPolicy.RELIABLE, name
        assert pub_info.topic_type == typename
    diagnostics = endpoint(tester.get_publishers_info_by_topic("/diagnostics"))
    assert diagnostics.topic_type == "diagnostic_msgs/msg/DiagnosticArray"

    # a best-effort camera driver reaches the node; a best-effort viewer hears its reliable outputs
    kit = RclpyKit()
    outputs = _Outputs(tester, kit)
    seen: list[Any] = []
    tester.create_subscription(kit.cls("sensor_msgs/msg/PointCloud2"), "/pointgroup/labeled_points", seen.append,
                               QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    camera = tester.create_publisher(kit.cls("sensor_msgs/msg/PointCloud2"), "/pointgroup/input/points",
                                     QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    xyz, rgb = _blobs(5)
    header = kit.make("std_msgs/msg/Header", frame_id="camera")
    _publish_until(camera, encode_cloud(kit, header, xyz, rgb, height=40), outputs)
    _wait(lambda: bool(seen), "labeled_points at a best-effort subscriber")
    assert (seen[-1].height, seen[-1].width) == (40, 50)


def test_gravity_frame_without_tf2_ros_is_refused(ros_graph: tuple[PointGroupNode, Node]) -> None:
    """Where tf2_ros cannot be imported (rclpy from PyPI), gravity_frame and tracking are refused with the
    reason, and the node goes on in the input frame."""
    try:
        importlib.import_module("tf2_ros")
    except ImportError:
        pass
    else:
        pytest.skip("tf2_ros is installed: test_gravity_frame_and_missing_transform covers gravity_frame")
    node, tester = ros_graph
    (refused,) = _set(tester, gravity_frame="base_link")
    assert not refused.successful and "tf2_ros" in refused.reason
    (refused,) = _set(tester, tracking=True)
    assert not refused.successful and "tf2_ros" in refused.reason
    assert node.get_parameter("gravity_frame").value == "" and node.get_parameter("tracking").value is False


def test_bad_input_is_survived(ros_graph: tuple[PointGroupNode, Node]) -> None:
    from pointgroup_ros.ros.cloud import encode_cloud

    node, tester = ros_graph
    kit, outputs, pub = _wire(tester)
    xyz, rgb = _blobs(1)
    header = kit.make("std_msgs/msg/Header", frame_id="camera")
    good = encode_cloud(kit, header, xyz, rgb, height=40)
    bad = encode_cloud(kit, header, xyz, rgb, height=40)
    bad.fields = [f for f in bad.fields if f.name != "y"]
    _publish_until(pub, good, outputs)  # the node is up and subscribed
    before = outputs.snapshot()
    for _ in range(5):
        pub.publish(bad)
        time.sleep(0.2)
    assert outputs.snapshot() == before  # nothing published for a malformed cloud
    _publish_until(pub, good, outputs)  # and the node still works
    no_colour = encode_cloud(kit, header, xyz, None, colour="none", height=40)
    _publish_until(pub, no_colour, outputs, ("instances",))


OPTICAL = "camera_optical_frame"


def _diagnostic_values(outputs: _Outputs) -> tuple[int, str, dict[str, str]]:
    """Level, message and values of the node's latest diagnostic status (level -1 when none yet)."""
    for array in reversed(list(outputs.diagnostics)):
        for status in array.status:
            if status.name == NODE_NAME:
                level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
                return level, status.message, {kv.key: kv.value for kv in status.values}
    return -1, "", {}


def test_gravity_frame_and_missing_transform(ros_graph: tuple[PointGroupNode, Node]) -> None:
    from pointgroup_ros.ros.cloud import encode_cloud

    StaticTransformBroadcaster = _tf2_ros().StaticTransformBroadcaster
    node, tester = ros_graph
    kit, outputs, pub = _wire(tester)
    # base_link <- camera_optical_frame: a camera 1.2 m up looking along +x (optical z forward, y down)
    broadcaster = StaticTransformBroadcaster(tester)
    static = kit.make("geometry_msgs/msg/TransformStamped")
    static.header.stamp = tester.get_clock().now().to_msg()
    static.header.frame_id = "base_link"
    static.child_frame_id = OPTICAL
    static.transform.translation.x, static.transform.translation.z = 0.3, 1.2
    (static.transform.rotation.x, static.transform.rotation.y, static.transform.rotation.z,
     static.transform.rotation.w) = (-0.5, 0.5, -0.5, 0.5)
    broadcaster.sendTransform(static)

    xyz, rgb = _blobs(2)
    header = kit.make("std_msgs/msg/Header", stamp=tester.get_clock().now().to_msg(), frame_id=OPTICAL)
    cloud = encode_cloud(kit, header, xyz, rgb, height=40)
    (result,) = _set(tester, gravity_frame="base_link")
    assert result.successful, result.reason
    _publish_until(pub, cloud, outputs)
    assert outputs.latest["labeled_points"].header.frame_id == OPTICAL  # point i = input point i
    assert outputs.latest["instances"].header.frame_id == "base_link"
    assert outputs.latest["detections"].header.frame_id == "base_link"
    assert all(m.header.frame_id == "base_link" for m in outputs.latest["markers"].markers)
    instances = outputs.latest["instances"].instances
    assert instances and all(0.0 < i.bbox.center.position.z < 1.2 for i in instances)  # below the camera, z up
    assert outputs.latest["instances"].header.stamp == header.stamp

    # a gravity frame nobody publishes: frames are skipped and counted, WARN, and the node keeps running
    results = _set(tester, gravity_frame="nowhere", tf_timeout=0.05)
    assert len(results) == 2 and all(r.successful for r in results), [r.reason for r in results]
    time.sleep(0.5)  # a frame taken before the change may still be on its way
    before = outputs.snapshot()
    for _ in range(5):
        pub.publish(cloud)
        time.sleep(0.2)

    def skipped() -> bool:
        level, message, values = _diagnostic_values(outputs)
        return level == 1 and int(values.get("frames skipped (no transform)", "0")) > 0 and "nowhere" in message

    _wait(skipped, "frames skipped (no transform) in /diagnostics")
    assert outputs.snapshot()["instances"] == before["instances"]  # nothing published for a skipped frame
    (result,) = _set(tester, gravity_frame="base_link")
    assert result.successful, result.reason
    _publish_until(pub, cloud, outputs, ("instances",))
    assert outputs.latest["instances"].header.frame_id == "base_link"


def test_empty_cloud_clears_the_markers(ros_graph: tuple[PointGroupNode, Node]) -> None:
    from pointgroup_ros.ros.cloud import encode_cloud

    node, tester = ros_graph
    kit, outputs, pub = _wire(tester)
    xyz, rgb = _blobs(3)
    header = kit.make("std_msgs/msg/Header", frame_id="camera")
    _publish_until(pub, encode_cloud(kit, header, xyz, rgb, height=40), outputs)
    assert len(outputs.latest["markers"].markers) > 1
    empty = encode_cloud(kit, header, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    _publish_until(pub, empty, outputs)
    (marker,) = outputs.latest["markers"].markers
    assert marker.action == 3  # DELETEALL alone
    assert (outputs.latest["labeled_points"].height, outputs.latest["labeled_points"].width) == (1, 0)
    assert len(outputs.latest["detections"].detections) == 0 and len(outputs.latest["instances"].instances) == 0


def test_tracking_gives_the_same_ids_in_consecutive_frames(ros_graph: tuple[PointGroupNode, Node]) -> None:
    from ros_testing_fakes import FakePipeline

    from pointgroup_ros.ros.cloud import encode_cloud
    from pointgroup_ros.ros.kit import RclpyKit

    StaticTransformBroadcaster = _tf2_ros().StaticTransformBroadcaster
    node, tester = ros_graph
    kit = RclpyKit()
    outputs = _Outputs(tester, kit)
    received: list[Any] = []  # every ~/instances message, in order
    lock = threading.Lock()

    def keep(msg: Any) -> None:
        with lock:
            received.append(msg)

    tester.create_subscription(kit.cls("pointgroup_ros/msg/InstanceArray"), "/pointgroup/instances", keep, 10)
    pub = tester.create_publisher(kit.cls("sensor_msgs/msg/PointCloud2"), "/pointgroup/input/points", 1)
    # odom <- camera: the camera 1 m ahead of odom's origin and 0.5 m up, yawed 90 degrees (static, so valid at
    # every stamp)
    broadcaster = StaticTransformBroadcaster(tester)
    static = kit.make("geometry_msgs/msg/TransformStamped")
    static.header.stamp = tester.get_clock().now().to_msg()
    static.header.frame_id = "odom"
    static.child_frame_id = "camera"
    static.transform.translation.x, static.transform.translation.z = 1.0, 0.5
    static.transform.rotation.z, static.transform.rotation.w = 0.7071067811865476, 0.7071067811865476
    broadcaster.sendTransform(static)

    xyz, rgb = _blobs(4)
    expected = FakePipeline().segment(xyz, rgb).num_instances
    assert expected >= 2
    results = _set(tester, tracking=True, tracking_frame="odom", tf_timeout=0.5)
    assert len(results) == 3 and all(r.successful for r in results), [r.reason for r in results]
    assert node.get_parameter("tracking").value is True
    time.sleep(0.5)  # a frame taken before the change may still be on its way
    with lock:
        received.clear()
    for _ in range(8):  # the same cloud, a new stamp each time (as a camera looking at a still scene)
        header = kit.make("std_msgs/msg/Header", stamp=tester.get_clock().now().to_msg(), frame_id="camera")
        _publish_until(pub, encode_cloud(kit, header, xyz, rgb, height=40), outputs, ("instances",))

    def ids(msg: Any) -> dict[int, int]:
        """first point index -> published id: which object got which id."""
        return {int(inst.point_indices[0]): int(inst.id) for inst in msg.instances}

    with lock:
        frames = [ids(msg) for msg in received]
    published = [f for f in frames if f]
    # tentative tracks are not published (confirm_hits 3), then every frame shows the same track ids
    assert len(published) >= 3, frames
    assert all(f == published[-1] for f in published[-3:]), published
    assert len(published[-1]) == expected
    assert sorted(published[-1].values()) != list(range(expected))  # track ids (from 1), not the ranks
    assert min(published[-1].values()) >= 1
    assert outputs.latest["instances"].header.frame_id == "camera"  # tracking does not move the outputs' frame
    detections = outputs.latest["detections"].detections
    assert sorted(d.id for d in detections) == sorted(str(i) for i in published[-1].values())

    def tracked() -> bool:
        level, _, values = _diagnostic_values(outputs)
        return values.get("tracking") == "on, in odom" and values.get("tracks confirmed") == str(expected)

    _wait(tracked, "tracks confirmed in /diagnostics")
    (result,) = _set(tester, tracking=False)
    assert result.successful, result.reason


def test_lifecycle_transitions_through_the_services(ros_graph: tuple[PointGroupNode, Node]) -> None:
    """`ros2 lifecycle set` by hand, through the node's services: deactivate stops the outputs (and the input
    subscription), activate brings them back, cleanup drops the model (on the CPU: the pipeline object is gone),
    configure loads a new one; /diagnostics says the state throughout."""
    import gc
    import weakref

    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    from pointgroup_ros.ros.cloud import encode_cloud

    node, tester = ros_graph
    kit, outputs, pub = _wire(tester)
    xyz, rgb = _blobs()
    cloud = encode_cloud(kit, kit.make("std_msgs/msg/Header", frame_id="camera"), xyz, rgb, height=40)

    # one client per service for the whole test: Fast DDS sometimes leaves a client made again for the same
    # service unmatched (wait_for_service times out), as `ros2 lifecycle` never does it
    change_client = tester.create_client(ChangeState, f"{NODE_NAME}/change_state")
    state_client = tester.create_client(GetState, f"{NODE_NAME}/get_state")
    assert change_client.wait_for_service(timeout_sec=TIMEOUT_S) and state_client.wait_for_service(TIMEOUT_S)

    def answer(client: Any, request: Any) -> Any:
        future = client.call_async(request)
        _wait(future.done, f"the answer of {client.srv_name}")
        return future.result()

    def change(label: str) -> bool:
        return bool(answer(change_client, ChangeState.Request(transition=Transition(label=label))).success)

    def state() -> str:
        return str(answer(state_client, GetState.Request()).current_state.label)

    def status() -> str:
        count = len(outputs.diagnostics)
        _wait(lambda: len(outputs.diagnostics) > count, "a new /diagnostics message")
        mine = [s for s in outputs.diagnostics[-1].status if s.name == NODE_NAME]
        return str(mine[-1].message) if mine else ""

    assert state() == "active"
    _publish_until(pub, cloud, outputs)
    assert change("deactivate") and state() == "inactive"
    _wait(lambda: pub.get_subscription_count() == 0, "the input subscription to go")
    before = outputs.snapshot()
    for _ in range(5):
        pub.publish(cloud)
        time.sleep(0.1)
    time.sleep(0.5)
    assert outputs.snapshot() == before  # inactive: nothing published
    _wait(lambda: status().startswith("inactive"), "an inactive status")
    assert change("activate") and state() == "active"
    _publish_until(pub, cloud, outputs)
    assert change("deactivate") and change("cleanup") and state() == "unconfigured"
    assert node._pipeline is None and node._worker is None
    _wait(lambda: status() == "unconfigured (no model loaded)", "an unconfigured status")
    assert not change("activate")  # no transition activate from unconfigured
    assert change("configure") and change("activate") and state() == "active"
    model = weakref.ref(node._pipeline)
    _publish_until(pub, cloud, outputs)
    assert change("deactivate") and change("cleanup")
    gc.collect()
    assert model() is None  # the model is freed (on a GPU: Pipeline.close() empties torch's and CuPy's pools)
    assert change("shutdown") and state() == "finalized"


def test_two_inputs_at_30_hz_neither_starves() -> None:
    """inputs "front, rear", both cameras at 30 Hz, a pipeline that needs 25 ms a frame (too slow for 60 Hz):
    both get outputs on their own topics, in turn (neither gets less than half of the other's), and each has its
    own diagnostic status with its drops."""
    import time as clock
    from ros_testing_fakes import FakePipeline

    from pointgroup_ros.ros.cloud import encode_cloud
    from pointgroup_ros.ros.kit import RclpyKit

    class SlowPipeline(FakePipeline):
        def segment(self, *args: Any, **kwargs: Any) -> Any:
            clock.sleep(0.025)
            return super().segment(*args, **kwargs)

    with _graph(lambda cfg, *args: SlowPipeline(cfg), inputs="front, rear") as (node, tester):
        kit = RclpyKit()
        got = {"front": 0, "rear": 0}
        lock = threading.Lock()

        def count(name: str) -> Callable[[Any], None]:
            def callback(msg: Any) -> None:
                with lock:
                    got[name] += 1
            return callback

        pubs = {}
        for name in got:
            tester.create_subscription(kit.cls("pointgroup_ros/msg/InstanceArray"), f"/pointgroup/{name}/instances",
                                       count(name), 10)
            pubs[name] = tester.create_publisher(kit.cls("sensor_msgs/msg/PointCloud2"),
                                                 f"/pointgroup/{name}/input/points", 1)
        diagnostics: list[Any] = []
        tester.create_subscription(kit.cls("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics",
                                   diagnostics.append, 10)
        xyz, rgb = _blobs()
        cloud = encode_cloud(kit, kit.make("std_msgs/msg/Header", frame_id="camera"), xyz, rgb, height=40)
        _wait(lambda: all(p.get_subscription_count() for p in pubs.values()), "the node's input subscriptions")
        end = time.monotonic() + 4.0
        while time.monotonic() < end:  # 30 Hz on each input
            for pub in pubs.values():
                pub.publish(cloud)
            time.sleep(1 / 30)
        time.sleep(0.5)
        with lock:
            front, rear = got["front"], got["rear"]
        assert front >= 10 and rear >= 10, got
        assert min(front, rear) >= max(front, rear) / 2, got
        _wait(lambda: any(len(d.status) == 2 for d in diagnostics), "a status per input")
        statuses = [d for d in diagnostics if len(d.status) == 2][-1].status
        assert [s.name for s in statuses] == ["/pointgroup/front", "/pointgroup/rear"]
        for status, name in zip(statuses, ("front", "rear")):
            values = {kv.key: kv.value for kv in status.values}
            assert values["input topic"] == f"/pointgroup/{name}/input/points"
            assert int(values["frames processed"]) >= 10
