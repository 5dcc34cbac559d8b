"""Rigid transforms and a tf tree read from recorded bags, without ROS.

PointGroup works best on gravity-aligned clouds (z up), but a camera publishes its cloud in its own frame. This
module turns poses (CLI text, geometry_msgs/Transform messages from rclpy or rosbags) into 4x4 float64 matrices,
checks them, applies them to points, and answers tf2-style lookups from tf2_msgs/TFMessage messages recorded on
/tf and /tf_static, so the offline bag runner can bring each cloud into a z-up frame (`--gravity-frame base_link`)
exactly as the live node does through tf2.

Conventions follow tf2: a transform with header.frame_id = parent and child_frame_id = child maps points in the
child frame to the parent frame; lookup(target, source, t) maps points in source to target; no extrapolation.
Rotations and interpolation use scipy.spatial.transform (Rotation, Slerp).
"""
from __future__ import annotations

import math
import operator
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

__all__ = ["TransformError", "normalize_frame", "matrix_from_pose", "parse_pose", "matrix_from_transform_msg",
           "check_rigid", "transform_points", "TransformBuffer"]

_POSE_FORMAT = "'X,Y,Z,QX,QY,QZ,QW' (7 comma-separated numbers: translation in metres, quaternion x, y, z, w)"
_MIN_QUAT_NORM = 1e-6  # below this the quaternion's direction is numerical noise, not a rotation
_RIGID_TOL = 1e-4  # loose enough for float32 matrices and rounded quaternions, tight enough to catch a scale


# REP 103: a camera's optical frame (z forward, x right, y down) on its camera_link (x forward, z up), x y z w
OPTICAL_IN_CAMERA_LINK = (-0.5, 0.5, -0.5, 0.5)


class TransformError(LookupError):
    """A transform cannot be found; str(error) names both frames and why (unknown frame, frames not connected,
    stamp outside the recorded range, ...)."""


def normalize_frame(frame_id: str) -> str:
    """tf2 ignores a leading '/' and ROS 1 bags use '/ground' style ids: strip surrounding spaces and leading
    slashes so that '/odom' and 'odom' are one frame."""
    return str(frame_id).strip().lstrip("/")


def stamp_ns(stamp: Any) -> int:
    """Nanoseconds of a builtin_interfaces/Time (a header's stamp: .sec, .nanosec), rclpy or rosbags alike."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _format_stamp(stamp_ns: int) -> str:
    return f"{stamp_ns} ns ({stamp_ns / 1e9:.9f} s)"


def _rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def _inverse(matrix: np.ndarray) -> np.ndarray:
    # closed form for rigid transforms: exact orthonormality is already checked, and it avoids np.linalg.inv noise
    rotation_t = matrix[:3, :3].T
    return _rigid(rotation_t, -rotation_t @ matrix[:3, 3])


def _check_quaternion(quaternion: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(quaternion)):
        raise ValueError(f"{what}: quaternion {quaternion.tolist()} has a non-finite value")
    norm = float(np.linalg.norm(quaternion))
    if norm < _MIN_QUAT_NORM:
        raise ValueError(f"{what}: quaternion {quaternion.tolist()} has (near) zero norm {norm:g}; "
                         "the identity rotation is (0, 0, 0, 1) in x, y, z, w order")


def matrix_from_pose(translation: Sequence[float] | np.ndarray,
                     quaternion_xyzw: Sequence[float] | np.ndarray) -> np.ndarray:
    """(4, 4) float64 rigid transform from a translation (x, y, z) and a quaternion (x, y, z, w), the
    geometry_msgs order. The quaternion is normalised; non-finite values or a (near) zero quaternion raise
    ValueError."""
    try:
        t = np.asarray(translation, dtype=np.float64)
        q = np.asarray(quaternion_xyzw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pose values must be numbers: {exc}") from None
    if t.shape != (3,):
        raise ValueError(f"translation must have 3 values (x, y, z), got shape {t.shape}")
    if q.shape != (4,):
        raise ValueError(f"quaternion must have 4 values (x, y, z, w), got shape {q.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"translation {t.tolist()} has a non-finite value")
    _check_quaternion(q, "pose")
    return _rigid(Rotation.from_quat(q / np.linalg.norm(q)).as_matrix(), t)


def parse_pose(text: str) -> np.ndarray:
    """Parse "X,Y,Z,QX,QY,QZ,QW" into a (4, 4) matrix.

    This is the CLI's --gravity-transform value: the cloud frame's pose in a z-up frame, i.e. the matrix maps
    points from the cloud frame into the z-up frame. ValueError naming the expected format otherwise.
    """
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 7:
        raise ValueError(f"expected {_POSE_FORMAT}, got {len(parts)} value(s) in {text!r}")
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"expected {_POSE_FORMAT}, {part!r} in {text!r} is not a number") from None
    try:
        return matrix_from_pose(values[:3], values[3:])
    except ValueError as exc:
        raise ValueError(f"expected {_POSE_FORMAT}, {text!r} is not a valid pose: {exc}") from None


def _pose_values(transform: Any) -> tuple[float, float, float, float, float, float, float]:
    """x, y, z, qx, qy, qz, qw of a geometry_msgs/Transform (or TransformStamped) as plain floats."""
    inner = getattr(transform, "transform", transform)  # TransformStamped -> Transform
    try:
        t, q = inner.translation, inner.rotation
        return (float(t.x), float(t.y), float(t.z), float(q.x), float(q.y), float(q.z), float(q.w))
    except AttributeError as exc:
        raise TypeError(f"expected a geometry_msgs/Transform or TransformStamped (with .translation.x/y/z and "
                        f".rotation.x/y/z/w), got {type(transform).__name__}: {exc}") from None


def matrix_from_transform_msg(transform: Any) -> np.ndarray:
    """(4, 4) matrix of a geometry_msgs/Transform (rclpy or rosbags class, or anything shaped like one); a
    TransformStamped is accepted too. The matrix maps child-frame points to the parent (header) frame."""
    values = _pose_values(transform)
    return matrix_from_pose(values[:3], values[3:])


def check_rigid(matrix: Any, name: str = "transform") -> np.ndarray:
    """Validate a 4x4 rigid transform (rotation + translation) and return it as float64.

    Refuses a wrong shape, non-finite values, a last row other than [0, 0, 0, 1], and a 3x3 part that is not a
    rotation (scaled, sheared, or a reflection with det -1). Tolerance ~1e-4, so float32 input passes.
    """
    try:
        m = np.array(matrix, dtype=np.float64)  # a copy: the caller's array is never aliased
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric 4x4 matrix: {exc}") from None
    if m.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} has non-finite values: {m.tolist()}")
    if np.abs(m[3] - (0.0, 0.0, 0.0, 1.0)).max() > _RIGID_TOL:
        raise ValueError(f"{name} must have last row [0, 0, 0, 1], got {m[3].tolist()}")
    rotation = m[:3, :3]
    error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
    if error > _RIGID_TOL:
        raise ValueError(f"{name} is not rigid: its 3x3 part is not orthonormal (max |R R^T - I| = {error:.3g}; "
                         "a scale or shear?)")
    det = float(np.linalg.det(rotation))
    if abs(det - 1.0) > _RIGID_TOL:
        raise ValueError(f"{name} is not a rotation: determinant {det:.6g} (-1 is a reflection)")
    return m


def transform_points(matrix: Any, xyz: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) transform to (N, 3) points. Computed in float64; the result is float32 when xyz is float32
    (clouds are float32), float64 otherwise. NaN points (organized clouds) stay NaN."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"transform must be a 4x4 matrix, got shape {m.shape}")
    points = np.asarray(xyz)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    out: np.ndarray = points.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
    return out.astype(np.float32) if points.dtype == np.float32 else out


class _Edge:
    """The transform parent <- child: one static matrix, or dynamic samples over time.

    Samples are appended to Python lists (cheap for 100k+ /tf messages) and merged into sorted, de-duplicated
    arrays only when a lookup needs them. The arrays have spare capacity, so the usual bag pattern (new samples
    later than all earlier ones, a lookup per cloud in between) costs O(new samples) per merge, not O(all).
    """

    __slots__ = ("parent", "static", "_stamps", "_poses", "_size", "_new_stamps", "_new_poses")

    def __init__(self, parent: str, static: np.ndarray | None = None) -> None:
        self.parent = parent
        self.static = static  # (4, 4) for a static edge, None for a dynamic one
        self._stamps = np.empty(0, dtype=np.int64)  # [:_size] sorted, unique; the rest is spare capacity
        self._poses = np.empty((0, 7))  # x, y, z, qx, qy, qz, qw per stamp
        self._size = 0
        self._new_stamps: list[int] = []
        self._new_poses: list[tuple[float, ...]] = []

    def append(self, stamp_ns: int, pose: tuple[float, ...]) -> None:
        self._new_stamps.append(stamp_ns)
        self._new_poses.append(pose)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique stamps and their poses; on duplicate stamps the last added sample wins."""
        if self._new_stamps:
            self._merge(np.array(self._new_stamps, dtype=np.int64),
                        np.array(self._new_poses, dtype=np.float64).reshape(-1, 7))
            self._new_stamps, self._new_poses = [], []
        return self._stamps[:self._size], self._poses[:self._size]

    def _merge(self, stamps: np.ndarray, poses: np.ndarray) -> None:
        size, end = self._size, self._size + len(stamps)
        if np.all(stamps[1:] > stamps[:-1]) and (size == 0 or stamps[0] > self._stamps[size - 1]):
            if end > len(self._stamps):  # grow geometrically: amortised O(1) per sample
                capacity = max(end, 2 * len(self._stamps), 64)
                self._stamps = np.concatenate([self._stamps[:size], np.empty(capacity - size, np.int64)])
                self._poses = np.concatenate([self._poses[:size], np.empty((capacity - size, 7))])
            self._stamps[size:end], self._poses[size:end] = stamps, poses
            self._size = end
            return
        # out of order or duplicate stamps: full stable sort; among equal stamps older samples come first
        stamps = np.concatenate([self._stamps[:size], stamps])
        poses = np.concatenate([self._poses[:size], poses])
        order = np.argsort(stamps, kind="stable")
        stamps, poses = stamps[order], poses[order]
        last = np.append(stamps[1:] != stamps[:-1], True)
        self._stamps, self._poses = stamps[last], poses[last]
        self._size = len(self._stamps)

    def time_range(self) -> tuple[int, int, int]:
        stamps, _ = self.samples()
        return int(stamps[0]), int(stamps[-1]), len(stamps)

    def matrix_at(self, stamp_ns: int) -> np.ndarray | None:
        """The parent <- child matrix at stamp_ns (interpolated), or None outside the recorded range."""
        if self.static is not None:
            return self.static
        stamps, poses = self.samples()
        if not stamps.size or stamp_ns < stamps[0] or stamp_ns > stamps[-1]:
            return None
        i = int(np.searchsorted(stamps, stamp_ns))  # stamps[i - 1] < stamp_ns <= stamps[i]
        if stamps[i] == stamp_ns:
            return _rigid(Rotation.from_quat(poses[i, 3:]).as_matrix(), poses[i, :3])
        t0, t1 = int(stamps[i - 1]), int(stamps[i])
        frac = (stamp_ns - t0) / (t1 - t0)  # Python ints: exact differences even for 1.7e18 ns stamps
        # Slerp over the bracketing pair only: O(1) per lookup, nothing to rebuild when samples arrive
        rotation = Slerp([0.0, 1.0], Rotation.from_quat(poses[i - 1:i + 1, 3:]))(frac)
        translation = poses[i - 1, :3] + frac * (poses[i, :3] - poses[i - 1, :3])
        return _rigid(rotation.as_matrix(), translation)


class TransformBuffer:
    """Transforms between frames over time, from recorded tf2_msgs/TFMessage messages (tf2 semantics).

    The frames form a tree: each child frame has one parent edge. An edge is static or dynamic according to its
    latest publication, and if a child is published under another parent (or switches between /tf and
    /tf_static) the newest publication wins and the old edge's samples are dropped: they described a different
    tree. A publication that would close a loop (a frame becoming its own ancestor) raises ValueError. All
    samples are kept (no 10 s cache as in live tf2): this is for offline bags.
    """

    def __init__(self) -> None:
        self._edges: dict[str, _Edge] = {}  # child -> edge to its parent
        self._frames: set[str] = set()

    @property
    def frames(self) -> set[str]:
        """Every frame seen as a parent or a child (a copy)."""
        return set(self._frames)

    def add(self, parent: str, child: str, stamp_ns: int, matrix: np.ndarray, static: bool = False) -> None:
        """Add the edge parent <- child: `matrix` maps points in `child` to `parent` (as a TransformStamped with
        header.frame_id = parent, child_frame_id = child). Static edges hold for all times."""
        parent, child = normalize_frame(parent), normalize_frame(child)
        stamp = _as_stamp(stamp_ns)
        m = check_rigid(matrix, f"transform '{parent}' <- '{child}'")
        if static:
            self._add(parent, child, stamp, None, m)
        else:
            quat = Rotation.from_matrix(m[:3, :3]).as_quat()
            self._add(parent, child, stamp, (*m[:3, 3].tolist(), *quat.tolist()), None)

    def add_tf_message(self, msg: Any, static: bool = False) -> int:
        """Add every transform of a tf2_msgs/TFMessage (pass static=True for /tf_static). Returns how many were
        added. The message is checked whole first, so a bad transform (ValueError naming it) adds nothing."""
        parsed: list[tuple[str, str, int, tuple[float, ...]]] = []
        for index, t in enumerate(msg.transforms):
            parent, child = normalize_frame(t.header.frame_id), normalize_frame(t.child_frame_id)
            stamp = stamp_ns(t.header.stamp)
            pose = _pose_values(t.transform)
            x, y, z, qx, qy, qz, qw = pose
            quat_norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
            # one cheap test on the hot path (a NaN or Inf anywhere makes the sum non-finite); details on failure
            if (not parent or not child or parent == child or not math.isfinite(x + y + z + quat_norm)
                    or quat_norm < _MIN_QUAT_NORM):
                what = f"transform {index} ('{parent}' <- '{child}' at {_format_stamp(stamp)})"
                self._check_frames(parent, child, what)
                if not all(math.isfinite(v) for v in pose):
                    raise ValueError(f"{what} has a non-finite value: {pose}")
                raise ValueError(f"{what} has a (near) zero quaternion {pose[3:]}")
            parsed.append((parent, child, stamp, pose))
        for parent, child, stamp, values in parsed:
            if static:
                self._add(parent, child, stamp, None, matrix_from_pose(values[:3], values[3:]))
            else:
                self._add(parent, child, stamp, values, None)
        return len(parsed)

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> np.ndarray:
        """(4, 4) matrix mapping points in source_frame to target_frame at stamp_ns, like tf2's
        lookup_transform(target, source, time).

        Chains are composed through the common ancestor, each dynamic edge interpolated at the stamp (linear
        translation, Slerp rotation). No extrapolation: a stamp outside a dynamic edge's samples raises
        TransformError. stamp_ns == 0 means the latest time at which every edge of the chain has data (tf2's
        Time(0)). source == target gives the identity.
        """
        target, source = normalize_frame(target_frame), normalize_frame(source_frame)
        stamp = _as_stamp(stamp_ns)
        if target == source:
            return np.eye(4)
        what = f"cannot transform from '{source}' to '{target}'"
        unknown = [frame for frame in (source, target) if frame not in self._frames]
        if unknown:
            raise TransformError(f"{what}: unknown frame {' and '.join(repr(f) for f in unknown)}; "
                                 f"known frames: {self._known()}")
        source_chain, target_chain = self._chain(source), self._chain(target)
        common = next((frame for frame in source_chain if frame in set(target_chain)), None)
        if common is None:
            raise TransformError(f"{what}: the frames are not connected ('{source}' is in the tree of "
                                 f"'{source_chain[-1]}', '{target}' in the tree of '{target_chain[-1]}'); "
                                 f"known frames: {self._known()}")
        # children whose edges lead up to the common ancestor
        source_edges = source_chain[:source_chain.index(common)]
        target_edges = target_chain[:target_chain.index(common)]
        when = _format_stamp(stamp)
        if stamp == 0:
            stamp, when = self._latest_common(source_edges + target_edges)
        common_from_source = self._compose(source_edges, stamp, what, when)
        common_from_target = self._compose(target_edges, stamp, what, when)
        result: np.ndarray = _inverse(common_from_target) @ common_from_source
        return result

    # -- internals --------------------------------------------------------------------------------------------

    def _check_frames(self, parent: str, child: str, what: str) -> None:
        if not parent or not child:
            raise ValueError(f"{what}: frame ids must not be empty")
        if parent == child:
            raise ValueError(f"{what}: a frame cannot be its own parent")

    def _add(self, parent: str, child: str, stamp: int, pose: tuple[float, ...] | None,
             static: np.ndarray | None) -> None:
        edge = self._edges.get(child)
        # fast path (every /tf message after the first of an edge): same parent, same kind
        if edge is None or edge.parent != parent or (edge.static is None) != (static is None):
            self._check_frames(parent, child, f"transform '{parent}' <- '{child}'")
            if child in self._chain(parent):
                raise ValueError(f"transform '{parent}' <- '{child}' would make a loop: '{child}' is already an "
                                 f"ancestor of '{parent}' ({' <- '.join(reversed(self._chain(parent)))})")
            edge = self._edges[child] = _Edge(parent, static)
            self._frames.update((parent, child))
        if static is not None:
            edge.static = static  # the latest /tf_static publication wins
        else:
            assert pose is not None
            edge.append(stamp, pose)

    def _chain(self, frame: str) -> list[str]:
        """frame, its parent, ..., its root. Finite: _add refuses loops."""
        chain = [frame]
        while (edge := self._edges.get(chain[-1])) is not None:
            chain.append(edge.parent)
        return chain

    def _known(self) -> str:
        return ", ".join(sorted(self._frames)) or "(none: no transforms were added)"

    def _latest_common(self, children: Iterable[str]) -> tuple[int, str]:
        dynamic = [child for child in children if self._edges[child].static is None]
        if not dynamic:
            return 0, "latest (all edges static)"
        # the latest time every dynamic edge covers; an edge starting after it is reported by _compose
        stamp = min(self._edges[child].time_range()[1] for child in dynamic)
        return stamp, f"latest common time {_format_stamp(stamp)} (stamp 0)"

    def _compose(self, children: list[str], stamp: int, what: str, when: str) -> np.ndarray:
        """parent-most <- children[0] by chaining the edges children[0] -> children[1] -> ..."""
        result = np.eye(4)
        for child in children:
            edge = self._edges[child]
            matrix = edge.matrix_at(stamp)
            if matrix is None:
                first, last, count = edge.time_range()
                raise TransformError(
                    f"{what} at {when}: edge '{edge.parent}' <- '{child}' has {count} sample(s) from "
                    f"{_format_stamp(first)} to {_format_stamp(last)}, and tf does not extrapolate")
            result = matrix @ result
        return result


def _as_stamp(stamp_ns: Any) -> int:
    # an integer, so that seconds passed by mistake (a float) fail loudly instead of looking up 1970
    try:
        stamp = operator.index(stamp_ns)
    except TypeError:
        raise TypeError(f"stamp_ns must be an integer number of nanoseconds, got {stamp_ns!r} "
                        f"({type(stamp_ns).__name__})") from None
    if stamp < 0:
        raise ValueError(f"stamp_ns must be >= 0 (0 = latest), got {stamp}")
    return stamp
