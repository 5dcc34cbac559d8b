"""PointCloud2 decoding: every layout drivers publish, built from real RGB-D captures, for Humble and Jazzy."""
from __future__ import annotations

import array

import numpy as np
import pytest

from pointgroup_ros.cloud_io import read_cloud
from pointgroup_ros.ros.cloud import (FLOAT32, FLOAT64, CloudFormatError, cloud_layout, decode_cloud, encode_cloud)
from pointgroup_ros.ros.kit import RosbagsKit
from pointgroup_ros.ros.typestore import typestore

PC2 = "sensor_msgs/msg/PointCloud2"

# (id, encode_cloud keyword arguments)
LAYOUTS = [
    ("xyz32-rgb", {}),
    ("xyz32-rgba", {"colour": "rgba"}),
    ("xyz32-r,g,b", {"colour": "r,g,b"}),
    ("xyz32-none", {"colour": "none"}),
    ("xyz64-rgb", {"xyz_type": FLOAT64}),
    ("bigendian", {"bigendian": True}),
    ("bigendian-xyz64-rgba", {"bigendian": True, "xyz_type": FLOAT64, "colour": "rgba"}),
    ("padded-point-and-row", {"point_step": 32, "row_padding": 16}),
    ("shuffled-fields", {"field_order": ("rgb", "z", "x", "y")}),
    ("shuffled-r,g,b-with-extra", {"colour": "r,g,b", "field_order": ("b", "intensity", "z", "r", "y", "g", "x")}),
    ("everything", {"bigendian": True, "xyz_type": FLOAT64, "colour": "r,g,b", "point_step": 48, "row_padding": 8,
                    "field_order": ("b", "z", "r", "y", "g", "x")}),
]


@pytest.fixture(scope="module")
def capture(realdata):
    """office1: a real Kinect capture, organized 640 x 480 with NaN holes and packed float rgb."""
    cloud = read_cloud(realdata / "pcl" / "office1.pcd")
    assert (cloud.height, cloud.width) == (480, 640) and not cloud.valid.all() and cloud.rgb is not None
    return cloud


def _roundtrip(store, msg):
    return store.deserialize_cdr(store.serialize_cdr(msg, PC2), PC2)


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
@pytest.mark.parametrize("name,layout", LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_decode_every_layout_of_a_real_capture(capture, distro, name, layout):
    store = typestore(distro)
    kit = RosbagsKit(store)
    header = kit.make("std_msgs/msg/Header", frame_id="camera")
    extra = {"intensity": np.arange(capture.num_points, dtype=np.float32)} if "extra" in name else None
    msg = _roundtrip(store, encode_cloud(kit, header, capture.xyz, capture.rgb, height=480, extra=extra, **layout))
    assert msg.height == 480 and msg.width == 640 and msg.is_dense is False
    decoded = decode_cloud(msg)
    assert (decoded.height, decoded.width) == (480, 640)
    # bit-exact xyz (float64 input holds the float32 values exactly), NaN holes in the same places
    np.testing.assert_array_equal(decoded.xyz, capture.xyz)
    np.testing.assert_array_equal(decoded.valid, capture.valid)
    assert decoded.xyz.dtype == np.float32 and decoded.xyz.shape == (480 * 640, 3)
    if layout.get("colour") == "none":
        assert decoded.rgb is None
    else:
        assert decoded.rgb is not None and decoded.rgb.dtype == np.uint8
        np.testing.assert_array_equal(decoded.rgb, capture.rgb)


def test_native_layout_is_a_zero_copy_view(capture):
    kit = RosbagsKit(typestore("humble"))
    msg = encode_cloud(kit, kit.make("std_msgs/msg/Header"), capture.xyz, capture.rgb, height=480,
                       point_step=32)
    decoded = decode_cloud(msg)
    assert np.shares_memory(decoded.xyz, msg.data) and np.shares_memory(decoded.rgb, msg.data)
    assert not decoded.xyz.flags.writeable  # never writes into the message


def test_rclpy_style_data_buffers(capture):
    """rclpy hands data as array.array('B'); hand-made messages may carry bytes."""
    kit = RosbagsKit(typestore("humble"))
    msg = encode_cloud(kit, kit.make("std_msgs/msg/Header"), capture.xyz[:6400], capture.rgb[:6400], height=10)
    for data in (array.array("B", msg.data.tobytes()), msg.data.tobytes(), bytearray(msg.data.tobytes())):
        msg.data = data
        decoded = decode_cloud(msg)
        np.testing.assert_array_equal(decoded.xyz, capture.xyz[:6400])
        np.testing.assert_array_equal(decoded.rgb, capture.rgb[:6400])


def test_real_bag_cloud_decodes(realdata):
    """The recorded OpenNI cloud (point_step 32, rgb at 16) from the rosbag2 MCAP bag."""
    from rosbags.highlevel import AnyReader

    with AnyReader([realdata / "bags" / "watercan_ros2_mcap"]) as reader:
        (conn,) = [c for c in reader.connections if c.msgtype == PC2]
        _, _, raw = next(reader.messages([conn]))
        msg = reader.deserialize(raw, PC2)
    decoded = decode_cloud(msg)
    assert decoded.num_points == 13966 and decoded.rgb is not None
    assert cloud_layout(msg).colour_source == "rgb"
    expected = np.frombuffer(msg.data.tobytes(), np.float32).reshape(-1, 8)[:, :3]
    np.testing.assert_array_equal(decoded.xyz, expected)
    assert decoded.valid.sum() > 0


def _small(kit, **kw):
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    return encode_cloud(kit, kit.make("std_msgs/msg/Header"), xyz, np.zeros((4, 3), np.uint8), **kw)


@pytest.mark.parametrize("change,message", [
    (lambda m: setattr(m, "fields", [f for f in m.fields if f.name != "y"]), "no y field"),
    (lambda m: setattr(m.fields[0], "datatype", 42), "unknown datatype 42"),
    (lambda m: setattr(m.fields[0], "datatype", 5), "x, y, z must be FLOAT32 or FLOAT64"),
    (lambda m: setattr(m, "point_step", 8), "does not fit in point_step 8"),
    (lambda m: setattr(m, "data", m.data[:-3]), r"expected row_step \* height = 64"),
    (lambda m: setattr(m, "row_step", 4), "row_step 4 is smaller"),
    (lambda m: (setattr(m, "width", 0)), "empty cloud"),
    (lambda m: (setattr(m, "width", 2 ** 31), setattr(m, "height", 2 ** 20)), "absurd cloud size"),
    (lambda m: setattr(m, "point_step", 0), "point_step 0 is out of range"),
])
def test_malformed_clouds_raise_clear_errors(change, message):
    kit = RosbagsKit(typestore("humble"))
    msg = _small(kit)
    change(msg)
    with pytest.raises(CloudFormatError, match=message):
        decode_cloud(msg)
    assert issubclass(CloudFormatError, ValueError)


def test_unknown_datatype_of_an_unused_field_is_ignored():
    kit = RosbagsKit(typestore("humble"))
    msg = _small(kit, point_step=20)
    msg.fields.append(kit.make("sensor_msgs/msg/PointField", name="ring", offset=16, datatype=99, count=1))
    assert decode_cloud(msg).num_points == 4


def test_float32_rgb_field_and_unorganized_cloud():
    kit = RosbagsKit(typestore("jazzy"))
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(1000, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (1000, 3)).astype(np.uint8)
    msg = encode_cloud(kit, kit.make("std_msgs/msg/Header"), xyz, rgb, xyz_type=FLOAT32)
    decoded = decode_cloud(msg)
    assert (decoded.height, decoded.width) == (1, 1000) and decoded.valid.all()
    np.testing.assert_array_equal(decoded.rgb, rgb)


@pytest.mark.parametrize("height,width,colour", [(1, 0, "rgb"), (0, 0, "rgb"), (0, 640, "r,g,b"), (480, 0, "none")])
def test_valid_empty_clouds_decode_to_no_points(height, width, colour):
    """An empty cloud is a frame (no points), not an error: the node answers it with empty outputs."""
    kit = RosbagsKit(typestore("humble"))
    msg = encode_cloud(kit, kit.make("std_msgs/msg/Header"), np.zeros((0, 3), np.float32),
                       None if colour == "none" else np.zeros((0, 3), np.uint8), colour=colour)
    msg.height, msg.width, msg.row_step = height, width, msg.point_step * width
    layout = cloud_layout(msg)
    assert layout.num_points == 0
    decoded = decode_cloud(msg)
    assert (decoded.height, decoded.width, decoded.num_points) == (height, width, 0)
    assert decoded.xyz.shape == (0, 3) and decoded.valid.shape == (0,)
    assert (decoded.rgb is None) == (colour == "none")


@pytest.mark.parametrize("change,message", [
    (lambda m: setattr(m, "data", np.zeros(16, np.uint8)), "empty cloud .* with 16 bytes of data"),
    (lambda m: setattr(m, "fields", []), "no x, y, z field"),
    (lambda m: setattr(m, "point_step", 0), "point_step 0 is out of range"),
    (lambda m: (setattr(m, "height", 2), setattr(m, "row_step", 16)), "expected row_step"),
])
def test_malformed_empty_clouds_are_still_rejected(change, message):
    kit = RosbagsKit(typestore("humble"))
    msg = encode_cloud(kit, kit.make("std_msgs/msg/Header"), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    change(msg)
    with pytest.raises(CloudFormatError, match=message):
        decode_cloud(msg)
