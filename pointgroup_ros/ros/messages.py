"""Segmentation -> vision_msgs/Detection3DArray, visualization_msgs/MarkerArray, pointgroup_ros/InstanceArray.

Builders take a MessageKit (kit.py), so they make rclpy messages on a robot and rosbags messages offline.
One Python step per instance (M is tens), none per point. Each builder takes an optional cloud.InstanceLabels
(which instances are published, under which id); without it instance m is published under its rank m. The
instance published under id i is Detection3D.id == str(i), marker id i in namespaces 'boxes' and 'labels',
Instance.id == i and value i in the labeled cloud's 'instance' field, in the palette colour of i (with tracking
i is a track id, so the id and colour stay with the object across frames). Boxes with a non-finite coordinate
(impossible from the pipeline, guarded anyway) are left out of detections and markers, since RViz rejects a
marker with NaN / Inf; the instance message keeps them with an all-zero box.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..cloud_io import instance_colours
from .cloud import InstanceLabels, header_of
from .kit import MessageKit

if TYPE_CHECKING:
    from ..pipeline import Segmentation

# visualization_msgs/Marker constants (the same in every ROS 2 distribution)
LINE_LIST, TEXT_VIEW_FACING = 5, 9
ADD, DELETEALL = 0, 3
BOX_NS, LABEL_NS = "boxes", "labels"
LINE_WIDTH = 0.01  # metres (scale.x of LINE_LIST)
TEXT_HEIGHT = 0.08  # metres (scale.z of TEXT_VIEW_FACING)
TEXT_GAP = 0.05  # metres between a box's top and its label

# The 12 edges of a box as pairs of corner numbers; corner c has x = max if c & 1, y = max if c & 2, z = max if c & 4
_EDGES = np.array([(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)])
_CORNER_BITS = (np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1  # (8, 3)


def box_edges(box_min: np.ndarray, box_max: np.ndarray) -> np.ndarray:
    """float64 (M, 24, 3): the end points of each box's 12 edges, in LINE_LIST order."""
    lo, hi = np.asarray(box_min, np.float64), np.asarray(box_max, np.float64)
    corners = np.where(_CORNER_BITS[None].astype(bool), hi[:, None, :], lo[:, None, :])  # (M, 8, 3)
    return corners[:, _EDGES.reshape(-1)]


def finite_boxes(seg: "Segmentation") -> np.ndarray:
    """bool (M,): instances whose box is finite (and therefore publishable as detection and marker)."""
    return np.isfinite(seg.box_min).all(axis=1) & np.isfinite(seg.box_max).all(axis=1)


def _vec(kit: MessageKit, typename: str, v: np.ndarray) -> Any:
    return kit.make(typename, x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _pose(kit: MessageKit, centre: np.ndarray) -> Any:
    orientation = kit.make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)
    return kit.make("geometry_msgs/msg/Pose", position=_vec(kit, "geometry_msgs/msg/Point", centre),
                    orientation=orientation)


def _bbox(kit: MessageKit, lo: np.ndarray, hi: np.ndarray) -> Any:
    return kit.make("vision_msgs/msg/BoundingBox3D", center=_pose(kit, (lo + hi) / 2),
                    size=_vec(kit, "geometry_msgs/msg/Vector3", hi - lo))


def build_detections(kit: MessageKit, header: Any, seg: "Segmentation",
                     labels: InstanceLabels | None = None) -> Any:
    """vision_msgs/Detection3DArray: per published instance one Detection3D with id str(its id: labels, default
    the rank m), the axis-aligned box (centre, size; identity orientation) and one hypothesis (class_id = class
    name, score); header copied."""
    hdr = header_of(kit, header)
    lab = InstanceLabels.of(seg, labels)
    names = seg.instance_class_names()
    zero_cov = kit.float64_array(np.zeros(36))
    detections = []
    for m in np.flatnonzero(finite_boxes(seg) & lab.publish):
        lo, hi = seg.box_min[m].astype(np.float64), seg.box_max[m].astype(np.float64)
        hypothesis = kit.make("vision_msgs/msg/ObjectHypothesis", class_id=names[m],
                              score=float(seg.instance_score[m]))
        pose = kit.make("geometry_msgs/msg/PoseWithCovariance", pose=_pose(kit, (lo + hi) / 2),
                        covariance=zero_cov)
        result = kit.make("vision_msgs/msg/ObjectHypothesisWithPose", hypothesis=hypothesis, pose=pose)
        detections.append(kit.make("vision_msgs/msg/Detection3D", header=hdr, results=[result],
                                   bbox=_bbox(kit, lo, hi), id=str(int(lab.ids[m]))))
    return kit.make("vision_msgs/msg/Detection3DArray", header=hdr, detections=detections)


def duration(kit: MessageKit, seconds: float) -> Any:
    """builtin_interfaces/Duration of `seconds` (>= 0)."""
    ns = int(round(max(float(seconds), 0.0) * 1e9))
    return kit.make("builtin_interfaces/msg/Duration", sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def build_markers(kit: MessageKit, header: Any, seg: "Segmentation", lifetime: float = 0.0,
                  labels: InstanceLabels | None = None) -> Any:
    """visualization_msgs/MarkerArray: a DELETEALL marker first (clears the previous frame), then per published
    instance its box edges (LINE_LIST, 24 points, ns 'boxes', id = its id: labels, default the rank m) and a
    TEXT_VIEW_FACING label 'class 0.87' above the box (ns 'labels', same id), in the id's colour (that of the
    labeled cloud). lifetime: seconds the box and label
    markers live (0: until replaced; a positive value lets RViz drop them when the input stops). Without
    instances, the DELETEALL alone (the frame clears the previous boxes)."""
    hdr = header_of(kit, header)
    lab = InstanceLabels.of(seg, labels)
    ok = np.flatnonzero(finite_boxes(seg) & lab.publish)
    markers = [kit.make("visualization_msgs/msg/Marker", header=hdr, ns="", id=0, action=DELETEALL,
                        pose=_pose(kit, np.zeros(3)))]
    if ok.size == 0:
        return kit.make("visualization_msgs/msg/MarkerArray", markers=markers)
    edges = box_edges(seg.box_min[ok], seg.box_max[ok])
    colours = instance_colours(lab.ids[ok]).astype(np.float64) / 255.0
    names = seg.instance_class_names()
    origin = _pose(kit, np.zeros(3))
    life = duration(kit, lifetime)
    for j, m in enumerate(ok):
        colour = kit.make("std_msgs/msg/ColorRGBA", r=float(colours[j, 0]), g=float(colours[j, 1]),
                          b=float(colours[j, 2]), a=1.0)
        points = [_vec(kit, "geometry_msgs/msg/Point", p) for p in edges[j]]
        markers.append(kit.make(
            "visualization_msgs/msg/Marker", header=hdr, ns=BOX_NS, id=int(lab.ids[m]), type=LINE_LIST, action=ADD,
            pose=origin, scale=kit.make("geometry_msgs/msg/Vector3", x=LINE_WIDTH, y=0.0, z=0.0), color=colour,
            points=points, lifetime=life, frame_locked=False))
        lo, hi = seg.box_min[m].astype(np.float64), seg.box_max[m].astype(np.float64)
        top = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2] + TEXT_GAP])
        markers.append(kit.make(
            "visualization_msgs/msg/Marker", header=hdr, ns=LABEL_NS, id=int(lab.ids[m]), type=TEXT_VIEW_FACING,
            action=ADD, pose=_pose(kit, top), scale=kit.make("geometry_msgs/msg/Vector3", x=0.0, y=0.0,
                                                              z=TEXT_HEIGHT),
            color=colour, lifetime=life, text=f"{names[m]} {float(seg.instance_score[m]):.2f}", frame_locked=False))
    return kit.make("visualization_msgs/msg/MarkerArray", markers=markers)


def build_instances(kit: MessageKit, header: Any, seg: "Segmentation", height: int, width: int,
                    labels: InstanceLabels | None = None) -> Any:
    """pointgroup_ros/InstanceArray: every published instance with its id (labels, default the rank m), class,
    score, point count, box and the sorted indices of its points in the input cloud (height x width,
    row-major); header copied."""
    hdr = header_of(kit, header)
    lab = InstanceLabels.of(seg, labels)
    names = seg.instance_class_names()
    finite = finite_boxes(seg)
    instances = []
    for m in np.flatnonzero(lab.publish).tolist():
        idx = np.sort(seg.instance_points(m))
        lo, hi = (seg.box_min[m], seg.box_max[m]) if finite[m] else (np.zeros(3), np.zeros(3))
        instances.append(kit.make(
            "pointgroup_ros/msg/Instance", id=int(lab.ids[m]), class_index=int(seg.instance_class[m]),
            class_name=names[m], score=float(seg.instance_score[m]), point_count=int(idx.shape[0]),
            bbox=_bbox(kit, np.asarray(lo, np.float64), np.asarray(hi, np.float64)),
            point_indices=kit.uint32_seq(idx)))
    return kit.make("pointgroup_ros/msg/InstanceArray", header=hdr, height=int(height), width=int(width),
                    class_names=list(seg.class_names), instances=instances)
