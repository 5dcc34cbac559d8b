"""Rigid transforms and the bag tf tree: hand-computed poses, tf2 lookup semantics, clear errors."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import pytest

from pointgroup_ros.transforms import (TransformBuffer, TransformError, check_rigid, matrix_from_pose,
                                       matrix_from_transform_msg, normalize_frame, parse_pose, transform_points)

S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S  # realistic ROS 2 stamps: ~1.7e18 ns, beyond float64's exact integers
OPTICAL_Q = (-0.5, 0.5, -0.5, 0.5)  # REP 103: camera optical frame relative to a z-up, x-forward body frame


def yaw_matrix(yaw: float, translation: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation about z by `yaw` radians, written out by hand (independent of scipy)."""
    c, s = math.cos(yaw), math.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    m[:3, 3] = translation
    return m


def yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def apply(matrix: np.ndarray, point: Sequence[float]) -> np.ndarray:
    out: np.ndarray = (matrix @ np.array([*point, 1.0]))[:3]
    return out


# optical -> camera_link: x right -> -y, y down -> -z, z forward -> +x (columns are the optical axes)
OPTICAL_R = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# -- poses ------------------------------------------------------------------------------------------------------


def test_normalize_frame_strips_leading_slashes_and_spaces() -> None:
    assert normalize_frame("/odom") == "odom"
    assert normalize_frame("  //base_link ") == "base_link"
    assert normalize_frame("camera/optical") == "camera/optical"  # inner slashes are part of the name


def test_matrix_from_pose_quarter_turn_about_z() -> None:
    m = matrix_from_pose((1.0, 2.0, 3.0), yaw_quat(math.pi / 2))
    assert m.dtype == np.float64 and m.shape == (4, 4)
    np.testing.assert_allclose(m, yaw_matrix(math.pi / 2, (1.0, 2.0, 3.0)), atol=1e-12)
    np.testing.assert_allclose(apply(m, (1.0, 0.0, 0.0)), (1.0, 3.0, 3.0), atol=1e-12)


def test_matrix_from_pose_normalises_the_quaternion() -> None:
    np.testing.assert_allclose(matrix_from_pose((0, 0, 0), (0.0, 0.0, 2.0, 2.0)), yaw_matrix(math.pi / 2),
                               atol=1e-12)


def test_rep103_optical_frame_rotation() -> None:
    m = matrix_from_pose((0.0, 0.0, 0.0), OPTICAL_Q)
    np.testing.assert_allclose(m[:3, :3], OPTICAL_R, atol=1e-12)
    np.testing.assert_allclose(apply(m, (0.0, 0.0, 1.0)), (1.0, 0.0, 0.0), atol=1e-12)  # 1 m ahead
    np.testing.assert_allclose(apply(m, (0.0, 1.0, 1.0)), (1.0, 0.0, -1.0), atol=1e-12)  # below the centre
    np.testing.assert_allclose(apply(m, (1.0, 0.0, 1.0)), (1.0, -1.0, 0.0), atol=1e-12)  # right of the centre


@pytest.mark.parametrize("translation, quaternion, message", [
    ((0, 0, 0), (0, 0, 0, 0), "zero norm"),
    ((0, 0, 0), (0, 0, 1e-9, 0), "zero norm"),
    ((0, 0, 0), (0, 0, float("nan"), 1), "non-finite"),
    ((0, float("inf"), 0), (0, 0, 0, 1), "non-finite"),
    ((0, 0), (0, 0, 0, 1), "3 values"),
    ((0, 0, 0), (0, 0, 1), "4 values"),
    ((0, 0, 0), ("a", 0, 0, 1), "numbers"),
])
def test_matrix_from_pose_refuses_bad_values(translation: tuple, quaternion: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        matrix_from_pose(translation, quaternion)


def test_parse_pose_reads_the_cli_format() -> None:
    # the camera optical frame 1.2 m above a z-up frame: its pose maps cloud points into the z-up frame
    m = parse_pose(" 0, 0 ,1.2, -0.5, 0.5, -0.5, 0.5 ")
    np.testing.assert_allclose(apply(m, (0.0, 1.0, 1.0)), (1.0, 0.0, 0.2), atol=1e-12)
    np.testing.assert_allclose(parse_pose("1,2,3,0,0,0.7071067811865476,0.7071067811865476"),
                               yaw_matrix(math.pi / 2, (1.0, 2.0, 3.0)), atol=1e-12)
    np.testing.assert_allclose(parse_pose("0,0,0,0,0,0,1e0"), np.eye(4))


@pytest.mark.parametrize("text, detail", [
    ("0,0,0,0,0,1", "6 value"),
    ("0,0,0,0,0,0,0,1", "8 value"),
    ("", "1 value"),
    ("0 0 0 0 0 0 1", "1 value"),
    ("0,0,x,0,0,0,1", "'x'"),
    ("0,0,0,0,0,0,", "''"),
    ("0,0,0,nan,0,0,1", "non-finite"),
    ("0,0,0,0,0,0,0", "zero norm"),
])
def test_parse_pose_names_the_expected_format(text: str, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_pose(text)
    assert "X,Y,Z,QX,QY,QZ,QW" in str(info.value) and detail in str(info.value)


def test_matrix_from_transform_msg_accepts_transform_and_stamped() -> None:
    transform = SimpleNamespace(translation=SimpleNamespace(x=1.0, y=2.0, z=3.0),
                                rotation=SimpleNamespace(x=0.0, y=0.0, z=math.sin(math.pi / 4),
                                                         w=math.cos(math.pi / 4)))
    expected = yaw_matrix(math.pi / 2, (1.0, 2.0, 3.0))
    np.testing.assert_allclose(matrix_from_transform_msg(transform), expected, atol=1e-12)
    stamped = SimpleNamespace(header=SimpleNamespace(frame_id="odom"), child_frame_id="base_link",
                              transform=transform)
    np.testing.assert_allclose(matrix_from_transform_msg(stamped), expected, atol=1e-12)
    with pytest.raises(TypeError, match="geometry_msgs/Transform"):
        matrix_from_transform_msg(SimpleNamespace(x=1.0))


# -- check_rigid ------------------------------------------------------------------------------------------------


def test_check_rigid_accepts_rotation_and_translation_float32() -> None:
    m = matrix_from_pose((0.1, -2.0, 3.5), (0.1, 0.7, -0.3, 0.6)).astype(np.float32)
    out = check_rigid(m)
    assert out.dtype == np.float64 and out is not m
    np.testing.assert_allclose(out, m)


def _bad(change: str) -> np.ndarray:
    m = yaw_matrix(0.3, (1.0, 2.0, 3.0))
    if change == "scale":
        m[:3, :3] *= 1.01
    elif change == "reflection":
        m[:3, 2] *= -1.0
    elif change == "nan":
        m[0, 3] = np.nan
    elif change == "last row":
        m[3] = (0.0, 0.0, 1.0, 1.0)
    elif change == "shape":
        return m[:3]
    return m


@pytest.mark.parametrize("change, message", [
    ("scale", "not orthonormal"), ("reflection", "reflection"), ("nan", "non-finite"),
    ("last row", "last row"), ("shape", "4x4"),
])
def test_check_rigid_refuses(change: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        check_rigid(_bad(change), name="gravity transform")
    assert "gravity transform" in str(info.value)


# -- transform_points -------------------------------------------------------------------------------------------


def test_transform_points_matches_a_per_point_loop_and_keeps_float32() -> None:
    m = matrix_from_pose((0.5, -1.0, 2.0), (0.2, -0.1, 0.4, 0.9))
    xyz = np.array([[0, 0, 0], [1, 2, 3], [-4.5, 0.25, 7], [np.nan, 1, 1]], dtype=np.float32)
    out = transform_points(m, xyz)
    assert out.dtype == np.float32 and out.shape == xyz.shape
    expected = np.array([apply(m, [float(v) for v in p]) for p in xyz])
    np.testing.assert_allclose(out[:3], expected[:3], rtol=1e-6, atol=1e-6)
    assert np.isnan(out[3]).all()  # an invalid return stays invalid
    out64 = transform_points(m, xyz.astype(np.float64))
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64[:3], expected[:3], atol=1e-12)
    assert transform_points(m, np.zeros((0, 3), np.float32)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        transform_points(m, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="4x4"):
        transform_points(m[:3], xyz)


# -- TransformBuffer --------------------------------------------------------------------------------------------


def test_static_chain_of_three_frames() -> None:
    tf = TransformBuffer()
    tf.add("base_link", "camera_link", 0, matrix_from_pose((0.1, 0.0, 0.5), (0, 0, 0, 1)), static=True)
    tf.add("camera_link", "camera_optical_frame", 0, matrix_from_pose((0.0, 0.02, 0.0), OPTICAL_Q), static=True)
    assert tf.frames == {"base_link", "camera_link", "camera_optical_frame"}
    m = tf.lookup("base_link", "camera_optical_frame", T0 + 5 * S)  # static edges hold at any time
    np.testing.assert_allclose(apply(m, (0.0, 0.0, 1.0)), (1.1, 0.02, 0.5), atol=1e-12)
    np.testing.assert_allclose(apply(m, (0.0, 1.0, 1.0)), (1.1, 0.02, -0.5), atol=1e-12)
    np.testing.assert_allclose(tf.lookup("base_link", "camera_optical_frame", 0), m)
    back = tf.lookup("camera_optical_frame", "base_link", 0)
    np.testing.assert_allclose(apply(back, (1.1, 0.02, -0.5)), (0.0, 1.0, 1.0), atol=1e-12)


def robot(first: int = T0, last: int = T0 + 4 * S) -> TransformBuffer:
    """odom <- base_link moving (yaw 0 -> 90 deg, (0, 0) -> (2, 4)), camera static on the base."""
    tf = TransformBuffer()
    tf.add("odom", "base_link", first, yaw_matrix(0.0))
    tf.add("odom", "base_link", last, yaw_matrix(math.pi / 2, (2.0, 4.0, 0.0)))
    tf.add("base_link", "camera_link", 0, matrix_from_pose((0.1, 0.0, 0.5), (0, 0, 0, 1)), static=True)
    tf.add("camera_link", "camera_optical_frame", 0, matrix_from_pose((0, 0, 0), OPTICAL_Q), static=True)
    return tf


@pytest.mark.parametrize("fraction", [0.5, 0.25, 0.0, 1.0])
def test_mixed_chain_interpolates_the_dynamic_edge(fraction: float) -> None:
    tf = robot()
    stamp = T0 + int(fraction * 4 * S)
    yaw = fraction * math.pi / 2  # halfway in time = half the angle (Slerp about a fixed axis)
    odom_base = yaw_matrix(yaw, (2.0 * fraction, 4.0 * fraction, 0.0))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", stamp), odom_base, atol=1e-12)
    m = tf.lookup("odom", "camera_optical_frame", stamp)
    # a point 1 m ahead of the camera is 1.1 m ahead of the base, 0.5 m up, along the base's heading
    ahead = (2.0 * fraction + 1.1 * math.cos(yaw), 4.0 * fraction + 1.1 * math.sin(yaw), 0.5)
    np.testing.assert_allclose(apply(m, (0.0, 0.0, 1.0)), ahead, atol=1e-9)
    expected = odom_base @ matrix_from_pose((0.1, 0.0, 0.5), (0, 0, 0, 1)) @ matrix_from_pose((0, 0, 0), OPTICAL_Q)
    np.testing.assert_allclose(m, expected, atol=1e-12)


def test_inverse_lookup_composes_to_identity() -> None:
    tf = robot()
    stamp = T0 + 1_234_567_891
    forward = tf.lookup("odom", "camera_optical_frame", stamp)
    backward = tf.lookup("camera_optical_frame", "odom", stamp)
    np.testing.assert_allclose(backward @ forward, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(forward @ backward, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(tf.lookup("odom", "odom", stamp), np.eye(4))
    assert not np.allclose(forward, np.eye(4))


def test_slerp_takes_the_short_way_when_quaternion_signs_flip() -> None:
    tf = TransformBuffer()
    tf.add_tf_message(tf_message(("odom", "base_link", T0, (0, 0, 0), yaw_quat(0.0))))
    flipped = tuple(-v for v in yaw_quat(math.pi / 2))  # same rotation, opposite hemisphere
    tf.add_tf_message(tf_message(("odom", "base_link", T0 + 2 * S, (0, 0, 0), flipped)))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", T0 + S), yaw_matrix(math.pi / 4), atol=1e-12)


def test_lookup_between_siblings_goes_through_their_parent() -> None:
    tf = TransformBuffer()
    tf.add("base_link", "left_wheel", 0, yaw_matrix(0.0, (0.0, 0.3, 0.0)), static=True)
    tf.add("base_link", "right_wheel", 0, yaw_matrix(math.pi / 2, (0.0, -0.3, 0.0)), static=True)
    m = tf.lookup("left_wheel", "right_wheel", 0)
    # (1, 0, 0) in right_wheel -> (0, 1, 0) + (0, -0.3, 0) in base_link -> minus (0, 0.3, 0) in left_wheel
    np.testing.assert_allclose(apply(m, (1.0, 0.0, 0.0)), (0.0, 0.4, 0.0), atol=1e-12)
    np.testing.assert_allclose(m, yaw_matrix(math.pi / 2, (0.0, -0.6, 0.0)), atol=1e-12)


@pytest.mark.parametrize("stamp", [T0 - 1, T0 - 3 * S, T0 + 4 * S + 1])
def test_no_extrapolation_outside_the_recorded_range(stamp: int) -> None:
    tf = robot()
    with pytest.raises(TransformError) as info:
        tf.lookup("odom", "camera_optical_frame", stamp)
    text = str(info.value)
    assert "'camera_optical_frame'" in text and "'odom'" in text  # the frames asked for
    assert "'odom' <- 'base_link'" in text  # the edge without data
    assert str(stamp) in text and str(T0) in text and str(T0 + 4 * S) in text  # asked stamp, recorded range
    # static parts of the tree still answer at that stamp
    assert tf.lookup("base_link", "camera_optical_frame", stamp).shape == (4, 4)


def test_unknown_frame_names_the_known_frames() -> None:
    tf = robot()
    with pytest.raises(TransformError) as info:
        tf.lookup("map", "camera_optical_frame", T0)
    text = str(info.value)
    assert "unknown frame 'map'" in text
    assert "base_link" in text and "camera_link" in text and "odom" in text
    assert isinstance(info.value, LookupError)
    with pytest.raises(TransformError, match="known frames: \\(none"):
        TransformBuffer().lookup("a", "b", 0)


def test_disconnected_trees() -> None:
    tf = TransformBuffer()
    tf.add("map", "a", 0, np.eye(4), static=True)
    tf.add("world", "b", 0, np.eye(4), static=True)
    with pytest.raises(TransformError, match="not connected") as info:
        tf.lookup("a", "b", 0)
    assert "'a'" in str(info.value) and "'b'" in str(info.value)
    assert "'map'" in str(info.value) and "'world'" in str(info.value)


def test_stamp_zero_is_the_latest_common_time() -> None:
    tf = robot()
    np.testing.assert_allclose(tf.lookup("odom", "camera_link", 0), tf.lookup("odom", "camera_link", T0 + 4 * S))
    # map <- odom ends earlier (T0 + 3 s): the whole chain is evaluated at the latest time both edges cover
    tf.add("map", "odom", T0 - S, yaw_matrix(0.0, (10.0, 0.0, 0.0)))
    tf.add("map", "odom", T0 + 3 * S, yaw_matrix(0.0, (10.0, 0.0, 0.0)))
    latest = tf.lookup("map", "base_link", 0)
    np.testing.assert_allclose(latest, tf.lookup("map", "base_link", T0 + 3 * S))
    np.testing.assert_allclose(latest, yaw_matrix(0.75 * math.pi / 2, (11.5, 3.0, 0.0)), atol=1e-12)
    # no common time at all: map <- odom ends before odom <- base_link starts
    tf2 = TransformBuffer()
    tf2.add("map", "odom", T0 - 2 * S, yaw_matrix(0.0))
    tf2.add("odom", "base_link", T0, yaw_matrix(0.0))
    with pytest.raises(TransformError, match="latest common time"):
        tf2.lookup("map", "base_link", 0)


def test_single_sample_edge_answers_only_its_stamp_or_latest() -> None:
    tf = TransformBuffer()
    pose = yaw_matrix(0.4, (1.0, 2.0, 3.0))
    tf.add("odom", "base_link", T0, pose)
    np.testing.assert_allclose(tf.lookup("odom", "base_link", T0), pose, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("odom", "base_link", 0), pose, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("base_link", "odom", T0) @ pose, np.eye(4), atol=1e-12)
    for stamp in (T0 - 1, T0 + 1):
        with pytest.raises(TransformError, match="1 sample"):
            tf.lookup("odom", "base_link", stamp)


def test_out_of_order_samples_and_duplicate_stamps_keep_the_last() -> None:
    tf = TransformBuffer()
    tf.add("odom", "base_link", T0 + 2 * S, yaw_matrix(0.0, (2.0, 0.0, 0.0)))
    tf.add("odom", "base_link", T0, yaw_matrix(0.0, (0.0, 0.0, 0.0)))
    tf.add("odom", "base_link", T0 + S, yaw_matrix(0.0, (9.0, 9.0, 9.0)))  # replaced by the next one
    tf.add("odom", "base_link", T0 + S, yaw_matrix(0.0, (1.0, 0.0, 0.0)))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", T0 + S)[:3, 3], (1.0, 0.0, 0.0))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", T0 + S // 2)[:3, 3], (0.5, 0.0, 0.0))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", T0 + 3 * S // 2)[:3, 3], (1.5, 0.0, 0.0))
    # samples added after a lookup are merged in: an earlier stamp and a replacement of a looked-up one
    tf.add("odom", "base_link", T0 - S, yaw_matrix(0.0, (-1.0, 0.0, 0.0)))
    tf.add("odom", "base_link", T0 + 2 * S, yaw_matrix(0.0, (4.0, 0.0, 0.0)))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", T0 - S // 2)[:3, 3], (-0.5, 0.0, 0.0))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", T0 + 3 * S // 2)[:3, 3], (2.5, 0.0, 0.0))
    np.testing.assert_allclose(tf.lookup("odom", "base_link", 0)[:3, 3], (4.0, 0.0, 0.0))


def test_leading_slashes_name_the_same_frames() -> None:
    tf = TransformBuffer()
    tf.add("/odom", "/base_link", T0, yaw_matrix(0.0, (1.0, 0.0, 0.0)))
    tf.add("odom", "base_link", T0 + S, yaw_matrix(0.0, (3.0, 0.0, 0.0)))  # same edge, ROS 2 spelling
    assert tf.frames == {"odom", "base_link"}
    np.testing.assert_allclose(tf.lookup("odom", "/base_link ", T0 + S // 2)[:3, 3], (2.0, 0.0, 0.0))
    np.testing.assert_allclose(tf.lookup("/odom", "base_link", T0)[:3, 3], (1.0, 0.0, 0.0))


def test_newest_parent_wins_and_loops_are_refused() -> None:
    tf = TransformBuffer()
    tf.add("odom", "base_link", T0, yaw_matrix(0.0, (1.0, 0.0, 0.0)))
    tf.add("map", "base_link", T0, yaw_matrix(0.0, (5.0, 0.0, 0.0)))  # re-parented
    np.testing.assert_allclose(tf.lookup("map", "base_link", T0)[:3, 3], (5.0, 0.0, 0.0))
    with pytest.raises(TransformError, match="not connected"):
        tf.lookup("odom", "base_link", T0)
    tf.add("base_link", "camera", 0, np.eye(4), static=True)
    with pytest.raises(ValueError, match="loop"):
        tf.add("camera", "map", T0, np.eye(4))
    with pytest.raises(ValueError, match="own parent"):
        tf.add("map", "/map", T0, np.eye(4))
    np.testing.assert_allclose(tf.lookup("map", "camera", T0)[:3, 3], (5.0, 0.0, 0.0))  # tree unchanged


def test_add_checks_its_inputs() -> None:
    tf = TransformBuffer()
    with pytest.raises(ValueError, match="'odom' <- 'base_link'.*orthonormal"):
        tf.add("odom", "base_link", T0, np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(TypeError, match="nanoseconds"):
        tf.add("odom", "base_link", 1.5, np.eye(4))  # type: ignore[arg-type]
    tf.add("odom", "base_link", np.int64(T0), np.eye(4))  # numpy integers are fine
    with pytest.raises(TypeError, match="nanoseconds"):
        tf.lookup("odom", "base_link", T0 / S)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        tf.lookup("odom", "base_link", -1)


# -- TFMessage --------------------------------------------------------------------------------------------------


def tf_message(*transforms: tuple[str, str, int, tuple, tuple]) -> SimpleNamespace:
    """A duck-typed tf2_msgs/TFMessage: (parent, child, stamp_ns, translation, quaternion_xyzw) each."""
    def stamped(parent: str, child: str, stamp: int, t: tuple, q: tuple) -> SimpleNamespace:
        return SimpleNamespace(
            header=SimpleNamespace(frame_id=parent, stamp=SimpleNamespace(sec=stamp // S, nanosec=stamp % S)),
            child_frame_id=child,
            transform=SimpleNamespace(translation=SimpleNamespace(x=t[0], y=t[1], z=t[2]),
                                      rotation=SimpleNamespace(x=q[0], y=q[1], z=q[2], w=q[3])))
    return SimpleNamespace(transforms=[stamped(*t) for t in transforms])


def test_add_tf_message_with_duck_typed_messages() -> None:
    tf = TransformBuffer()
    static = tf_message(("base_link", "camera_link", 0, (0.1, 0.0, 0.5), (0, 0, 0, 1)),
                        ("camera_link", "camera_optical_frame", 0, (0, 0, 0), OPTICAL_Q))
    assert tf.add_tf_message(static, static=True) == 2
    assert tf.add_tf_message(tf_message(("/odom", "/base_link", T0 + 250_000_000, (1, 0, 0), yaw_quat(0.2)),
                                        ("odom", "base_link", T0 + 750_000_000, (2, 0, 0), yaw_quat(0.4)))) == 2
    assert tf.frames == {"odom", "base_link", "camera_link", "camera_optical_frame"}
    m = tf.lookup("odom", "camera_optical_frame", T0 + 500_000_000)  # sub-second stamps from sec + nanosec
    expected = yaw_matrix(0.3, (1.5, 0.0, 0.0)) @ yaw_matrix(0.0, (0.1, 0.0, 0.5)) @ matrix_from_pose(
        (0, 0, 0), OPTICAL_Q)
    np.testing.assert_allclose(m, expected, atol=1e-12)
    with pytest.raises(TransformError, match="2 sample"):
        tf.lookup("odom", "camera_optical_frame", T0 + 750_000_001)


def test_add_tf_message_refuses_a_bad_transform_and_adds_nothing() -> None:
    tf = TransformBuffer()
    msg = tf_message(("odom", "base_link", T0, (0, 0, 0), (0, 0, 0, 1)),
                     ("base_link", "camera", T0, (float("nan"), 0, 0), (0, 0, 0, 1)))
    with pytest.raises(ValueError, match="transform 1 .*'base_link' <- 'camera'.*non-finite"):
        tf.add_tf_message(msg)
    with pytest.raises(ValueError, match="zero quaternion"):
        tf.add_tf_message(tf_message(("odom", "base_link", T0, (0, 0, 0), (0, 0, 0, 0))))
    with pytest.raises(ValueError, match="empty"):
        tf.add_tf_message(tf_message(("", "base_link", T0, (0, 0, 0), (0, 0, 0, 1))))
    assert tf.frames == set()
    assert tf.add_tf_message(SimpleNamespace(transforms=[])) == 0


def test_add_tf_message_with_rosbags_messages() -> None:
    typesys = pytest.importorskip("rosbags.typesys")
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    types = store.types
    TFMessage, TransformStamped = types["tf2_msgs/msg/TFMessage"], types["geometry_msgs/msg/TransformStamped"]
    Header, Time = types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"]
    Transform, Vector3 = types["geometry_msgs/msg/Transform"], types["geometry_msgs/msg/Vector3"]
    Quaternion = types["geometry_msgs/msg/Quaternion"]

    def stamped(parent: str, child: str, stamp: int, t: tuple, q: tuple) -> object:
        return TransformStamped(header=Header(stamp=Time(sec=stamp // S, nanosec=stamp % S), frame_id=parent),
                                child_frame_id=child,
                                transform=Transform(translation=Vector3(x=t[0], y=t[1], z=t[2]),
                                                    rotation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])))

    static = TFMessage(transforms=[stamped("base_link", "camera_optical_frame", 0, (0.1, 0.0, 0.5), OPTICAL_Q)])
    dynamic = TFMessage(transforms=[stamped("odom", "base_link", T0, (0.0, 0.0, 0.0), yaw_quat(0.0)),
                                    stamped("odom", "base_link", T0 + 2 * S, (2.0, 4.0, 0.0), yaw_quat(math.pi / 2))])
    # as read from a bag: through CDR bytes and back
    dynamic = store.deserialize_cdr(store.serialize_cdr(dynamic, TFMessage.__msgtype__), TFMessage.__msgtype__)
    tf = TransformBuffer()
    assert tf.add_tf_message(static, static=True) == 1
    assert tf.add_tf_message(dynamic) == 2
    m = tf.lookup("odom", "camera_optical_frame", T0 + S)
    expected = yaw_matrix(math.pi / 4, (1.0, 2.0, 0.0)) @ matrix_from_pose((0.1, 0.0, 0.5), OPTICAL_Q)
    np.testing.assert_allclose(m, expected, atol=1e-12)
    np.testing.assert_allclose(matrix_from_transform_msg(dynamic.transforms[1]),
                               yaw_matrix(math.pi / 2, (2.0, 4.0, 0.0)), atol=1e-12)
