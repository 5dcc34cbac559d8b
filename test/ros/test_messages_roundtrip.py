"""Output messages: built through the MessageKit, serialized to CDR and read back (Humble and Jazzy)."""
from __future__ import annotations

import array
import types

import numpy as np
import pytest
from ros_testing_fakes import FakePipeline, make_segmentation

from pointgroup_ros.cloud_io import GREY, instance_colours, make_cloud, read_cloud, unpack_rgb
from pointgroup_ros.ros.cloud import decode_cloud, encode_cloud, encode_labeled_cloud, label_none
from pointgroup_ros.ros.kit import RclpyKit, RosbagsKit
from pointgroup_ros.ros.messages import (BOX_NS, DELETEALL, LABEL_NS, LINE_LIST, TEXT_VIEW_FACING, box_edges,
                                         build_detections, build_instances, build_markers)
from pointgroup_ros.ros.processing import OUTPUTS, FrameProcessor, build_diagnostics
from pointgroup_ros.ros.typestore import OUTPUT_TYPES, make_typestore, typestore

DISTROS = ["humble", "jazzy"]


def _cdr(store, msg, typename):
    return store.deserialize_cdr(store.serialize_cdr(msg, typename), typename)


def _header(kit, sec=1700000000, nanosec=123, frame="camera_depth_optical_frame"):
    stamp = kit.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)
    return kit.make("std_msgs/msg/Header", stamp=stamp, frame_id=frame)


@pytest.fixture(scope="module")
def frame(realdata):
    """A real organized capture and the fake pipeline's segmentation of it."""
    cloud = read_cloud(realdata / "pcl" / "table_scene_mug_stereo_textured.pcd")
    seg = FakePipeline().segment(cloud.xyz, cloud.rgb, cloud.valid)
    assert seg.num_instances >= 3
    return cloud, seg


@pytest.mark.parametrize("distro", DISTROS)
def test_labeled_cloud_lines_up_with_the_input(frame, distro):
    cloud, seg = frame
    store = typestore(distro)
    kit = RosbagsKit(store)
    msg = _cdr(store, encode_labeled_cloud(kit, _header(kit), cloud, seg), OUTPUT_TYPES["labeled_points"])
    assert (msg.height, msg.width) == (cloud.height, cloud.width) == (480, 640)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "label", "instance"]
    assert msg.header.frame_id == "camera_depth_optical_frame" and msg.header.stamp.nanosec == 123
    assert msg.is_dense is False
    decoded = decode_cloud(msg)
    np.testing.assert_array_equal(decoded.xyz, cloud.xyz)  # same points, same order, NaN holes kept
    rec = np.frombuffer(msg.data.tobytes(), np.dtype({"names": ["label", "instance"], "formats": ["<u4", "<i4"],
                                                      "offsets": [16, 20], "itemsize": 24}))
    np.testing.assert_array_equal(rec["instance"], seg.instance)
    expected_label = np.where(seg.semantic < 0, label_none(seg), seg.semantic)
    np.testing.assert_array_equal(rec["label"], expected_label)
    assert (rec["label"][~cloud.valid] == len(seg.class_names)).all()
    np.testing.assert_array_equal(decoded.rgb, instance_colours(seg.instance))
    assert (decoded.rgb[seg.instance < 0] == GREY).all()


@pytest.mark.parametrize("distro", DISTROS)
def test_detections_roundtrip(frame, distro):
    _, seg = frame
    store = typestore(distro)
    kit = RosbagsKit(store)
    msg = _cdr(store, build_detections(kit, _header(kit), seg), OUTPUT_TYPES["detections"])
    assert len(msg.detections) == seg.num_instances
    names = seg.instance_class_names()
    for m, det in enumerate(msg.detections):
        assert det.id == str(m) and det.header.frame_id == "camera_depth_optical_frame"
        (hyp,) = det.results
        assert hyp.hypothesis.class_id == names[m]
        assert hyp.hypothesis.score == pytest.approx(float(seg.instance_score[m]))
        c, s = det.bbox.center.position, det.bbox.size
        np.testing.assert_allclose([c.x, c.y, c.z], (seg.box_min[m] + seg.box_max[m]) / 2, rtol=1e-6)
        np.testing.assert_allclose([s.x, s.y, s.z], seg.box_max[m] - seg.box_min[m], rtol=1e-6)
        assert det.bbox.center.orientation.w == 1.0


@pytest.mark.parametrize("distro", DISTROS)
def test_markers_roundtrip_and_rules(frame, distro):
    _, seg = frame
    store = typestore(distro)
    kit = RosbagsKit(store)
    msg = _cdr(store, build_markers(kit, _header(kit), seg), OUTPUT_TYPES["markers"])
    markers = msg.markers
    assert markers[0].action == DELETEALL and markers[0].ns == ""  # clears the previous frame first
    assert len(markers) == 1 + 2 * seg.num_instances
    keys = [(mk.ns, mk.id) for mk in markers]
    assert len(set(keys)) == len(keys)  # (ns, id) unique
    boxes = [mk for mk in markers if mk.ns == BOX_NS]
    labels = [mk for mk in markers if mk.ns == LABEL_NS]
    assert all(mk.type == LINE_LIST and len(mk.points) == 24 and mk.scale.x > 0 for mk in boxes)
    assert all(mk.type == TEXT_VIEW_FACING and mk.scale.z > 0 and mk.text for mk in labels)
    assert labels[0].text == f"{seg.instance_class_names()[0]} {seg.instance_score[0]:.2f}"
    for mk in markers:
        values = [mk.pose.position.x, mk.pose.position.y, mk.pose.position.z, mk.pose.orientation.w, mk.scale.x,
                  mk.scale.y, mk.scale.z, mk.color.r, mk.color.a] + [v for p in mk.points for v in (p.x, p.y, p.z)]
        assert np.isfinite(values).all()
        assert mk.lifetime.sec == 0 and mk.lifetime.nanosec == 0
        assert mk.header.frame_id == "camera_depth_optical_frame"
    # the box edges span exactly the instance's box
    pts = np.array([[p.x, p.y, p.z] for p in boxes[0].points])
    np.testing.assert_allclose(pts.min(axis=0), seg.box_min[0], rtol=1e-6)
    np.testing.assert_allclose(pts.max(axis=0), seg.box_max[0], rtol=1e-6)


def test_non_finite_boxes_are_left_out_of_markers_and_detections():
    seg = make_segmentation(40)
    seg.box_max[1, 2] = np.nan
    kit = RosbagsKit(typestore("humble"))
    markers = build_markers(kit, _header(kit), seg).markers
    assert [(mk.ns, mk.id) for mk in markers] == [("", 0), (BOX_NS, 0), (LABEL_NS, 0)]
    assert [d.id for d in build_detections(kit, _header(kit), seg).detections] == ["0"]
    instances = build_instances(kit, _header(kit), seg, 1, 40).instances
    assert len(instances) == 2 and instances[1].bbox.size.z == 0.0


def test_box_edges_are_the_twelve_edges():
    edges = box_edges(np.array([[0.0, 0, 0]]), np.array([[1.0, 2, 3]]))[0].reshape(12, 2, 3)
    lengths = np.sort(np.linalg.norm(edges[:, 0] - edges[:, 1], axis=1))
    np.testing.assert_allclose(lengths, [1] * 4 + [2] * 4 + [3] * 4)
    # each edge changes exactly one coordinate
    assert ((edges[:, 0] != edges[:, 1]).sum(axis=1) == 1).all()


@pytest.mark.parametrize("distro", DISTROS)
def test_instances_roundtrip(frame, distro):
    cloud, seg = frame
    store = typestore(distro)
    kit = RosbagsKit(store)
    msg = _cdr(store, build_instances(kit, _header(kit), seg, cloud.height, cloud.width), OUTPUT_TYPES["instances"])
    assert (msg.height, msg.width) == (480, 640) and tuple(msg.class_names) == seg.class_names
    assert len(msg.instances) == seg.num_instances
    for m, inst in enumerate(msg.instances):
        idx = np.sort(seg.instance_points(m))
        assert inst.id == m and inst.point_count == idx.size
        assert inst.class_index == seg.instance_class[m] and inst.class_name == seg.class_names[inst.class_index]
        np.testing.assert_array_equal(inst.point_indices, idx)
        assert (seg.instance[inst.point_indices] == m).all()  # indices address the input cloud
        assert inst.score == pytest.approx(float(seg.instance_score[m]))


@pytest.mark.parametrize("distro", DISTROS)
def test_diagnostics_roundtrip(distro):
    store = typestore(distro)
    kit = RosbagsKit(store)
    stamp = kit.make("builtin_interfaces/msg/Time", sec=5, nanosec=0)
    msg = build_diagnostics(kit, stamp, "/robot/pointgroup", "cpu", 1, "ready",
                            [("frames processed", "3")])
    back = _cdr(store, msg, "diagnostic_msgs/msg/DiagnosticArray")
    (status,) = back.status
    assert status.name == "/robot/pointgroup" and status.hardware_id == "cpu"
    assert status.level == 1 and status.values[0].key == "frames processed" and status.values[0].value == "3"


def test_empty_segmentation_builds_valid_messages():
    seg = make_segmentation(40)
    for name in ("instance_class", "instance_score", "instance_offsets", "box_min", "box_max"):
        arr = getattr(seg, name)
        setattr(seg, name, arr[:1] if name == "instance_offsets" else arr[:0])
    seg.instance_point_idx = seg.instance_point_idx[:0]
    seg.instance[:] = -1
    store = typestore("humble")
    kit = RosbagsKit(store)
    cloud = make_cloud(np.zeros((40, 3), np.float32))
    for name, msg in (("detections", build_detections(kit, _header(kit), seg)),
                      ("markers", build_markers(kit, _header(kit), seg)),
                      ("instances", build_instances(kit, _header(kit), seg, 1, 40)),
                      ("labeled_points", encode_labeled_cloud(kit, _header(kit), cloud, seg))):
        _cdr(store, msg, OUTPUT_TYPES[name])
    assert len(build_markers(kit, _header(kit), seg).markers) == 1


def test_frame_processor_builds_only_what_is_asked(frame):
    cloud, _ = frame
    store = typestore("humble")
    kit = RosbagsKit(store)
    msg = encode_cloud(kit, _header(kit), cloud.xyz, cloud.rgb, height=cloud.height)
    proc = FrameProcessor(FakePipeline(), kit)
    result = proc.process(msg, ("markers", "instances"))
    assert set(result.messages) == {"markers", "instances"}
    assert {"decode", "pipeline", "build/markers", "build/instances", "total"} <= set(result.timings_ms)
    full = proc.process(msg)
    assert set(full.messages) == set(OUTPUTS)
    for name, m in full.messages.items():
        _cdr(store, m, OUTPUT_TYPES[name])
    with pytest.raises(ValueError, match="unknown output"):
        proc.process(msg, ("boxes",))


def test_rosbags_header_from_a_ros1_style_header():
    """A ROS 1 header (with seq) becomes a ROS 2 header with the same stamp and frame."""
    kit = RosbagsKit(typestore("humble"))
    ros1 = types.SimpleNamespace(seq=7, stamp=types.SimpleNamespace(sec=3, nanosec=4), frame_id="/ground")
    seg = make_segmentation(40)
    msg = build_detections(kit, ros1, seg)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (3, 4, "/ground")


def test_rosbags_kit_fills_defaults_and_rejects_unknown_fields():
    kit = RosbagsKit(make_typestore("jazzy"))
    marker = kit.make("visualization_msgs/msg/Marker", id=3)
    assert marker.id == 3 and marker.points == [] and marker.texture.data.dtype == np.uint8
    cov = kit.make("geometry_msgs/msg/PoseWithCovariance").covariance
    assert cov.shape == (36,) and cov.dtype == np.float64
    with pytest.raises(TypeError, match="no field"):
        kit.make("std_msgs/msg/Header", seq=1)
    with pytest.raises(KeyError, match="not in this typestore"):
        kit.make("nope_msgs/msg/Nope")


def test_rclpy_kit_uses_array_buffers(monkeypatch):
    """rclpy's setters take array.array as is (bytes and lists are checked element by element)."""
    made = {}

    class FakeMsg:
        def __init__(self, **fields):
            made.update(fields)

    fake_module = types.SimpleNamespace(Fake=FakeMsg)
    monkeypatch.setitem(__import__("sys").modules, "fake_msgs", types.ModuleType("fake_msgs"))
    monkeypatch.setitem(__import__("sys").modules, "fake_msgs.msg", fake_module)
    kit = RclpyKit()
    data = kit.uint8_seq(np.arange(10, dtype=np.uint8))
    idx = kit.uint32_seq(np.array([1, 2, 2 ** 32 - 1], np.int64))
    assert isinstance(data, array.array) and data.typecode == "B" and list(data) == list(range(10))
    assert isinstance(idx, array.array) and idx.typecode == "I" and list(idx) == [1, 2, 2 ** 32 - 1]
    assert kit.byte(2) == b"\x02"
    kit.make("fake_msgs/msg/Fake", a=1)
    assert made == {"a": 1}


def test_packed_rgb_is_never_nan():
    colours = instance_colours(np.arange(-1, 200))
    from pointgroup_ros.cloud_io import pack_rgb

    packed = pack_rgb(colours)
    assert np.isfinite(packed.view(np.float32)).all()
    np.testing.assert_array_equal(unpack_rgb(packed.view(np.float32)), colours)


@pytest.mark.parametrize("distro", DISTROS)
def test_marker_lifetime(frame, distro):
    cloud, seg = frame
    store = typestore(distro)
    kit = RosbagsKit(store)
    back = _cdr(store, build_markers(kit, _header(kit), seg, lifetime=1.25), "visualization_msgs/msg/MarkerArray")
    assert back.markers[0].action == DELETEALL
    assert len(back.markers) == 1 + 2 * seg.num_instances
    for m in back.markers[1:]:
        assert (m.lifetime.sec, m.lifetime.nanosec) == (1, 250_000_000)
    default = build_markers(kit, _header(kit), seg)
    assert all((m.lifetime.sec, m.lifetime.nanosec) == (0, 0) for m in default.markers)  # until replaced


@pytest.mark.parametrize("height,width", [(1, 0), (0, 0), (480, 0)])
def test_segmentation_empty_gives_a_clearing_frame(height, width):
    from pointgroup_ros.pipeline import Segmentation

    store = typestore("humble")
    kit = RosbagsKit(store)
    seg = Segmentation.empty(height * width, ("chair", "table"))
    cloud = make_cloud(np.zeros((0, 3), np.float32), height=height, width=width)
    labeled = _cdr(store, encode_labeled_cloud(kit, _header(kit), cloud, seg), "sensor_msgs/msg/PointCloud2")
    assert (labeled.height, labeled.width, len(labeled.data)) == (height, width, 0)
    markers = _cdr(store, build_markers(kit, _header(kit), seg, lifetime=3.0), "visualization_msgs/msg/MarkerArray")
    assert [m.action for m in markers.markers] == [DELETEALL]
    assert _cdr(store, build_detections(kit, _header(kit), seg), "vision_msgs/msg/Detection3DArray").detections == []
    instances = _cdr(store, build_instances(kit, _header(kit), seg, height, width), OUTPUT_TYPES["instances"])
    assert instances.instances == [] and (instances.height, instances.width) == (height, width)


def test_frame_processor_answers_empty_and_fully_invalid_clouds():
    """The runner's path (FrameProcessor): an empty or all-NaN cloud still gives the four outputs."""
    from pointgroup_ros.config import PreprocessConfig

    store = typestore("humble")
    kit = RosbagsKit(store)
    proc = FrameProcessor(FakePipeline(), kit)
    empty = encode_cloud(kit, _header(kit), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    nan = encode_cloud(kit, _header(kit), np.full((60, 3), np.nan, np.float32), np.zeros((60, 3), np.uint8), height=6)
    xyz = np.random.default_rng(0).uniform(0, 1, (60, 3)).astype(np.float32) + 5
    far = encode_cloud(kit, _header(kit), xyz, np.zeros((60, 3), np.uint8))
    for msg, pre in ((empty, None), (nan, None), (far, PreprocessConfig(max_range=2.0))):
        result = proc.process(msg, preprocess=pre)
        assert set(result.messages) == set(OUTPUTS)
        labeled = result.messages["labeled_points"]
        assert (labeled.height, labeled.width) == (msg.height, msg.width)
        assert [m.action for m in result.messages["markers"].markers] == [DELETEALL]
        assert len(result.messages["detections"].detections) == 0 and len(result.messages["instances"].instances) == 0
        for name, m in result.messages.items():
            _cdr(store, m, OUTPUT_TYPES[name])


def test_frame_processor_gravity_frame_ids(frame):
    """gravity = (frame, matrix): boxes in the gravity frame, the labeled cloud keeps the input header."""
    cloud, _ = frame
    store = typestore("humble")
    kit = RosbagsKit(store)
    msg = encode_cloud(kit, _header(kit, nanosec=77), cloud.xyz, cloud.rgb, height=cloud.height)
    pipeline = FakePipeline()
    proc = FrameProcessor(pipeline, kit, marker_lifetime=0.5)
    matrix = np.array([[0, 0, 1, 0.1], [-1, 0, 0, 0], [0, -1, 0, 1.0], [0, 0, 0, 1]], np.float64)  # optical -> body
    result = proc.process(msg, gravity=("base_link", matrix))
    assert result.messages["labeled_points"].header.frame_id == "camera_depth_optical_frame"
    for name in ("detections", "markers", "instances"):
        out = result.messages[name]
        headers = [out.header] if name != "markers" else [m.header for m in out.markers]
        for h in headers:
            assert (h.frame_id, h.stamp.sec, h.stamp.nanosec) == ("base_link", 1700000000, 77)
    np.testing.assert_array_equal(pipeline.calls[-1]["gravity_transform"], matrix)
    assert result.seg.frame == "gravity"
    assert all(m.lifetime.nanosec == 500_000_000 for m in result.messages["markers"].markers[1:])
    plain = proc.process(msg)
    assert plain.messages["instances"].header.frame_id == "camera_depth_optical_frame"
    assert pipeline.calls[-1]["gravity_transform"] is None and plain.seg.frame == "input"


def test_frame_processor_refuses_a_pipeline_that_ignores_gravity(frame):
    cloud, _ = frame
    kit = RosbagsKit(typestore("humble"))
    msg = encode_cloud(kit, _header(kit), cloud.xyz, cloud.rgb, height=cloud.height)

    class Ignoring(FakePipeline):
        def segment(self, xyz, rgb=None, valid=None, grouping=None, postprocess=None, preprocess=None,
                    gravity_transform=None):
            return super().segment(xyz, rgb, valid, grouping, postprocess, preprocess)  # boxes stay in "input"

    with pytest.raises(RuntimeError, match="gravity transform"):
        FrameProcessor(Ignoring(), kit).process(msg, gravity=("base_link", np.eye(4)))
