"""The issue's acceptance case, end to end: held-out rooms recorded as a camera would publish them (its optical
frame, the camera's pose on the robot in /tf_static), segmented by `pointgroup-ros run --gravity-frame
base_link` with the shipped model, find the same instances as the same rooms given z-up (in base_link, i.e.
turned by the robot's heading) and at least as many as in the training frame; 40 m from the origin changes
nothing. Boxes come out upright in base_link, inside the room."""
from __future__ import annotations

import numpy as np
import pytest
from bag_builders import CLOUD, KIT, TF, Item, header, read_output, tf_message, transform, transient_local, write_bag
from scipy.spatial.transform import Rotation

from pointgroup_ros.data.synthetic import generate_scene
from pointgroup_ros.evaluation.model_eval import label_ids_for, scene_gt_ids
from pointgroup_ros.evaluation.predictions import ScenePredictions
from pointgroup_ros.evaluation.scannet import evaluate_instances
from pointgroup_ros.evaluation.views import camera_rig, view_points
from pointgroup_ros.pipeline import DEMO_WEIGHTS, Pipeline
from pointgroup_ros.ros.cloud import encode_cloud
from pointgroup_ros.tools.run import process_bag
from pointgroup_ros.training.sources import HELD_OUT_SEED_BASE
from pointgroup_ros.transforms import transform_points

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="no shipped demo model")]
ROOMS = 4
SECOND = 1_000_000_000


def pose_of(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return matrix[:3, 3], Rotation.from_matrix(matrix[:3, :3]).as_quat()


def ap50(pipe: Pipeline, scenes, segs) -> float:
    ids, eval_ids, names = label_ids_for(pipe.cfg)
    preds = [ScenePredictions.from_segmentation(seg, ids) for seg in segs]
    return float(evaluate_instances(preds, [scene_gt_ids(s, ids) for s in scenes], eval_ids, names)["AP50"])


def test_camera_frame_rooms_through_tf_match_the_training_frame(tmp_path) -> None:
    pipe = Pipeline(None, None, device="cpu", warmup=False)
    scenes = [generate_scene(HELD_OUT_SEED_BASE + i) for i in range(ROOMS)]
    rigs = [camera_rig(s.xyz, seed=i) for i, s in enumerate(scenes)]
    # the robot's camera mount is one static transform pair for the whole recording
    static = tf_message(transform("base_link", "camera_link", 0, *pose_of(rigs[0].base_from_camera)),
                        transform("camera_link", "camera_optical_frame", 0, *pose_of(rigs[0].camera_from_optical)))
    items = [Item("/tf_static", TF, 1, static)]
    for i, scene in enumerate(scenes):
        optical, gravity = view_points(scene.xyz, "optical", seed=i)
        np.testing.assert_allclose(gravity, rigs[i].base_from_optical)
        stamp = (i + 1) * SECOND
        msg = encode_cloud(KIT, header("camera_optical_frame", stamp), optical, scene.rgb.clip(0, 255).astype(np.uint8))
        items.append(Item("/camera/depth/points", CLOUD, stamp, msg))
    write_bag(tmp_path / "in", items, qos={"/tf_static": transient_local()})
    segs: dict[int, object] = {}
    summary = process_bag(tmp_path / "in", tmp_path / "out", pipe, progress=False, gravity_frame="base_link",
                          on_frame=lambda topic, stamp, result: segs.__setitem__(stamp, result.seg))
    assert summary.frames == ROOMS
    camera = [segs[(i + 1) * SECOND] for i in range(ROOMS)]
    rgb = [s.rgb.clip(0, 255).astype(np.uint8) for s in scenes]
    room = [pipe.segment(s.xyz, c) for s, c in zip(scenes, rgb)]
    far = [pipe.segment(view_points(s.xyz, "far")[0], c) for s, c in zip(scenes, rgb)]
    # the z-up scene the camera frame must come down to: the room in base_link (turned by the robot's yaw)
    turned = [pipe.segment(transform_points(np.linalg.inv(r.room_from_base), s.xyz.astype(np.float64)), c)
              for s, c, r in zip(scenes, rgb, rigs)]
    ap_room, ap_far, ap_camera, ap_turned = (ap50(pipe, scenes, segs_) for segs_ in (room, far, camera, turned))
    assert ap_room > 0.8
    assert abs(ap_far - ap_room) <= 0.02 and abs(ap_camera - ap_turned) <= 0.02, (ap_room, ap_far, ap_camera, ap_turned)
    # the camera path is exactly the turned room (checked point by point below); turning the room by the robot's
    # yaw is the model's own business: trained with z rotations, it may score a little differently on 4 rooms
    # (one object of about 25 moves AP50 by 0.04)
    assert ap_camera >= ap_room - 0.1, (ap_room, ap_camera)
    for a, b in zip(camera, turned):  # the very same instances
        assert a.num_instances == b.num_instances
        assert all(np.array_equal(a.instance_points(m), b.instance_points(m)) for m in range(a.num_instances))

    # the outputs: detections and markers in base_link, boxes upright and inside the room
    out = read_output(tmp_path / "out")
    assert {"/tf_static", "/camera/depth/points"} <= set(out)
    for stamp, detections in out["/pointgroup/detections"]:
        i = stamp // SECOND - 1
        assert detections.header.frame_id == "base_link"
        room_in_base = transform_points(np.linalg.inv(rigs[i].room_from_base), scenes[i].xyz.astype(np.float64))
        lo, hi = room_in_base.min(0), room_in_base.max(0)
        assert len(detections.detections) == camera[i].num_instances > 0
        for det in detections.detections:
            q = det.bbox.center.orientation
            assert (q.x, q.y, q.z, q.w) == (0.0, 0.0, 0.0, 1.0)  # axis-aligned in base_link: upright
            c, size = det.bbox.center.position, det.bbox.size
            centre, half = np.array([c.x, c.y, c.z]), np.array([size.x, size.y, size.z]) / 2
            assert np.all(centre - half >= lo - 1e-3) and np.all(centre + half <= hi + 1e-3)
    for _, markers in out["/pointgroup/markers"]:
        assert {m.header.frame_id for m in markers.markers} == {"base_link"}
    for _, labeled in out["/pointgroup/labeled_points"]:
        assert labeled.header.frame_id == "camera_optical_frame"
