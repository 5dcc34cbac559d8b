"""The shipped model on clouds in a robot's frames: the same instances wherever the frame's origin is, and from
a tilted camera's optical frame once the pipeline is given the camera's pose on a z-up base."""
from __future__ import annotations

import numpy as np
import pytest

from pointgroup_ros.data.synthetic import generate_scene
from pointgroup_ros.evaluation.views import FAR_OFFSET, camera_rig, view_points
from pointgroup_ros.pipeline import DEMO_WEIGHTS, Pipeline
from pointgroup_ros.training.sources import HELD_OUT_SEED_BASE
from pointgroup_ros.transforms import matrix_from_pose, transform_points

pytestmark = pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="the shipped demo model is missing")


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(None, None, device="cpu", warmup=False)


@pytest.fixture(scope="module")
def room():
    return generate_scene(HELD_OUT_SEED_BASE + 3)


def member_sets(seg) -> list[frozenset[int]]:
    return [frozenset(seg.instance_points(m).tolist()) for m in range(seg.num_instances)]


def matched_fraction(a: list[frozenset[int]], b: list[frozenset[int]], iou: float = 0.9) -> float:
    """Fraction of a's instances that have an instance in b overlapping them by more than `iou`."""
    def best(s: frozenset[int]) -> float:
        return max((len(s & t) / len(s | t) for t in b), default=0.0)
    return float(np.mean([best(s) > iou for s in a])) if a else 1.0


def found_objects(seg, scene) -> int:
    """Ground-truth thing instances matched by a predicted instance with IoU > 0.5."""
    found = 0
    for gid in np.unique(scene.instance[scene.instance >= 0]):
        gt = set(np.flatnonzero(scene.instance == gid).tolist())
        found += any(len(gt & s) / len(gt | s) > 0.5 for s in member_sets(seg))
    return found


def test_a_room_far_from_the_origin_gives_the_same_instances(pipe, room) -> None:
    near = pipe.segment(room.xyz, room.rgb)
    far_xyz, gravity = view_points(room.xyz, "far")
    assert gravity is None and np.abs(far_xyz).max() > 35
    far = pipe.segment(far_xyz, room.rgb)
    assert near.num_instances >= 4 and found_objects(near, room) >= 4
    assert abs(far.num_instances - near.num_instances) <= 1
    assert matched_fraction(member_sets(near), member_sets(far)) >= 0.9
    assert (np.mean(near.semantic == far.semantic)) > 0.99
    # boxes come back in the caller's coordinates
    m = 0
    pts = far_xyz[far.instance_points(m)]
    np.testing.assert_allclose(far.box_min[m], pts.min(0), atol=1e-4)
    np.testing.assert_allclose(far.box_max[m], pts.max(0), atol=1e-4)


def test_a_level_camera_frame_with_its_gravity_transform_gives_the_room_result(pipe, room) -> None:
    # a camera looking along +x, not tilted: the optical frame is an exact axis permutation of the room's, so the
    # network must see (nearly) the very same points as in the room frame
    base_from_optical = matrix_from_pose([0.3, -0.2, 1.2], (-0.5, 0.5, -0.5, 0.5))
    optical = transform_points(np.linalg.inv(base_from_optical), room.xyz.astype(np.float64)).astype(np.float32)
    assert np.allclose(optical[:, 1], 1.2 - room.xyz[:, 2], atol=1e-4)  # y points down in the optical frame
    ref = pipe.segment(room.xyz, room.rgb)
    seg = pipe.segment(optical, room.rgb, gravity_transform=base_from_optical)
    raw = pipe.segment(optical, room.rgb)  # what the node did before: the optical frame as if it were z-up
    assert seg.frame == "gravity" and raw.frame == "input"
    assert matched_fraction(member_sets(ref), member_sets(seg)) >= 0.9
    assert found_objects(seg, room) >= found_objects(ref, room) - 1
    assert found_objects(raw, room) < found_objects(ref, room)
    # boxes are in the gravity frame (here: the room's own coordinates)
    for m in range(seg.num_instances):
        pts = transform_points(base_from_optical, optical[seg.instance_points(m)].astype(np.float64))
        np.testing.assert_allclose(seg.box_min[m], pts.min(0), atol=1e-4)
        np.testing.assert_allclose(seg.box_max[m], pts.max(0), atol=1e-4)


def test_a_tilted_turned_camera_finds_the_objects_with_upright_boxes(pipe, room) -> None:
    optical, gravity = view_points(room.xyz, "optical", seed=5)
    rig = camera_rig(room.xyz, seed=5)
    ref = pipe.segment(room.xyz, room.rgb)
    seg = pipe.segment(optical, room.rgb, gravity_transform=gravity)
    assert found_objects(seg, room) >= found_objects(ref, room) - 1
    # upright: each box's z extent is the extent of its points' heights above the floor in the room
    base_from_room = np.linalg.inv(rig.room_from_base)
    room_in_base = transform_points(base_from_room, room.xyz.astype(np.float64))
    lo, hi = room_in_base.min(0), room_in_base.max(0)
    assert np.all(seg.box_min >= lo - 1e-3) and np.all(seg.box_max <= hi + 1e-3)  # inside the room
    for m in range(seg.num_instances):
        z = room_in_base[seg.instance_points(m), 2]
        assert seg.box_min[m, 2] == pytest.approx(z.min(), abs=1e-3)
        assert seg.box_max[m, 2] == pytest.approx(z.max(), abs=1e-3)

