"""Camera-like sequences (data/camera.py): geometry through the bag's TF, occlusion, field of view and range,
noise, the robot's path, determinism, the ground-truth file, the bag through the offline runner, the CLI."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pointgroup_ros.data.camera import (BASE_FRAME, CLOUD_TOPIC, ODOM_FRAME, OPTICAL_FRAME, SEQUENCE_SEED_BASE,
                                        CameraConfig, Renderer, Sequence, generate_sequence, groundtruth_path,
                                        read_groundtruth, write_sequence_bag)
from pointgroup_ros.data.scene import IGNORE, DataError, Scene
from pointgroup_ros.data.synthetic import generate_scene
from pointgroup_ros.transforms import OPTICAL_IN_CAMERA_LINK
from pointgroup_ros.transforms import TransformBuffer, matrix_from_pose, transform_points

SMALL = CameraConfig(width=160, height=120, noise_k=0.0)  # noise-free: geometry to the splat's tolerance
FRAMES = 6
SPACING = 0.025


@pytest.fixture(scope="module")
def clean() -> Sequence:
    return generate_sequence(4, frames=FRAMES, config=SMALL)


@pytest.fixture(scope="module")
def clean_bag(clean: Sequence, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sequence_bag(clean, tmp_path_factory.mktemp("bags")).bag


def read_bag(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    """topic -> [(log time, message)], typed from the bag's own definitions."""
    from rosbags.highlevel import AnyReader

    got: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([bag]) as reader:
        for conn, stamp, raw in reader.messages():
            got.setdefault(conn.topic, []).append((stamp, reader.deserialize(raw, conn.msgtype)))
    return got


def stamp_of(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def label_keys(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    return semantic.astype(np.int64) * 1000 + np.where(instance >= 0, instance, 999)


# ---- geometry: the cloud through the bag's TF chain lands on the room ------------------------------------------

def test_cloud_through_bag_tf_lands_on_room_points_with_same_labels(clean: Sequence, clean_bag: Path) -> None:
    from pointgroup_ros.ros.cloud import decode_cloud

    msgs = read_bag(clean_bag)
    tf = TransformBuffer()
    for _, msg in msgs["/tf_static"]:
        tf.add_tf_message(msg, static=True)
    for _, msg in msgs["/tf"]:
        tf.add_tf_message(msg)
    gt = read_groundtruth(clean_bag)
    room = clean.scene
    room_keys = label_keys(room.semantic, room.instance)
    trees = {int(k): cKDTree(room.xyz[room_keys == k]) for k in np.unique(room_keys)}
    def distance_to_labelled_room(pts: np.ndarray, keys: np.ndarray) -> np.ndarray:
        dist = np.empty(len(pts))
        for k in np.unique(keys):
            sel = keys == k
            dist[sel] = trees[int(k)].query(pts[sel])[0]
        return dist

    clouds = msgs[CLOUD_TOPIC]
    assert len(clouds) == FRAMES
    for log_time, msg in clouds:
        stamp = stamp_of(msg.header)
        assert log_time == stamp and msg.header.frame_id == OPTICAL_FRAME
        cloud = decode_cloud(msg)
        optical = cloud.xyz[cloud.valid].astype(np.float64)
        pts = transform_points(tf.lookup(ODOM_FRAME, OPTICAL_FRAME, stamp), optical)
        semantic, instance = gt.labels(gt.frame_index(stamp))
        keys = label_keys(semantic[cloud.valid], instance[cloud.valid])
        assert len(pts) > 1000 and (instance[cloud.valid] >= 0).any()
        dist = distance_to_labelled_room(pts, keys)
        # a pixel lies on its sample's tangent plane within the splat (0.8 spacing) and 1 spacing in depth
        assert dist.max() < 0.045, f"frame at {stamp}: a point {dist.max():.3f} m from its labelled surface"
        assert np.median(dist) < 0.015 and np.mean(dist < 0.03) > 0.99
    # ... and the stamp matters: the last cloud with the first frame's pose misses the room
    wrong = transform_points(tf.lookup(ODOM_FRAME, OPTICAL_FRAME, stamp_of(clouds[0][1].header)), optical)
    assert np.mean(distance_to_labelled_room(wrong, keys) < 0.03) < 0.8


def test_tf_tree_is_a_robot_rig(clean: Sequence, clean_bag: Path) -> None:
    msgs = read_bag(clean_bag)
    (static_time, static), = msgs["/tf_static"]
    assert static_time == clean.frames[0].stamp_ns
    edges = {(t.header.frame_id, t.child_frame_id): t.transform for t in static.transforms}
    assert set(edges) == {(BASE_FRAME, "camera_link"), ("camera_link", OPTICAL_FRAME)}
    q = edges[("camera_link", OPTICAL_FRAME)].rotation
    np.testing.assert_allclose(np.abs([q.x, q.y, q.z, q.w]), np.abs(OPTICAL_IN_CAMERA_LINK), atol=1e-9)
    mount = edges[(BASE_FRAME, "camera_link")]
    assert 1.2 <= mount.translation.z <= 1.5
    pitch = math.degrees(2 * math.atan2(mount.rotation.y, mount.rotation.w))
    assert 15.0 <= pitch <= 25.0 and abs(mount.rotation.x) < 1e-12 and abs(mount.rotation.z) < 1e-12
    # optical z (forward) points down and ahead in base_link: REP 103 and a downward pitch
    forward = clean.base_from_optical[:3, 2]
    assert forward[0] > 0.9 and forward[2] < -0.2
    tfs = msgs["/tf"]
    assert [t for t, _ in tfs] == [f.stamp_ns for f in clean.frames]
    for (_, msg), frame in zip(tfs, clean.frames):
        (t,) = msg.transforms
        assert (t.header.frame_id, t.child_frame_id) == (ODOM_FRAME, BASE_FRAME)
        assert stamp_of(t.header) == frame.stamp_ns
        assert t.transform.translation.x == pytest.approx(frame.odom_from_base[0, 3])
    from rosbags.rosbag2 import Reader

    with Reader(clean_bag) as reader:
        qos = {c.topic: getattr(c.ext, "offered_qos_profiles") for c in reader.connections}
    assert "transient_local" in str(qos["/tf_static"][0].durability).lower()


# ---- occlusion, field of view, range, noise ------------------------------------------------------------------

def _face(origin: tuple[float, float, float], a: tuple[float, float, float], b: tuple[float, float, float],
          size: tuple[float, float]) -> np.ndarray:
    """Samples SPACING apart on the rectangle origin + u a + v b, u in [0, size0], v in [0, size1]."""
    u, v = np.meshgrid(np.arange(0.0, size[0] + 1e-9, SPACING), np.arange(0.0, size[1] + 1e-9, SPACING))
    return np.asarray(origin) + u.reshape(-1, 1) * np.asarray(a) + v.reshape(-1, 1) * np.asarray(b)


def wall_and_box(box_x: float | None = 1.8) -> Scene:
    """A wall (class 1) at x = 3 facing the origin, and a 0.4 m box (class 4, instance 0) with its front face at
    x = box_x, centred on y = 0, z = 1 (no box when box_x is None)."""
    wall = _face((3.0, -2.0, -0.5), (0, 1, 0), (0, 0, 1), (4.0, 3.0))
    parts, sem, inst = [wall], [np.full(len(wall), 1)], [np.full(len(wall), IGNORE)]
    if box_x is not None:
        x0, x1 = box_x, box_x + 0.4
        box = np.concatenate([
            _face((x0, -0.2, 0.8), (0, 1, 0), (0, 0, 1), (0.4, 0.4)),  # front, facing the camera
            _face((x1, -0.2, 0.8), (0, 1, 0), (0, 0, 1), (0.4, 0.4)),  # back
            _face((x0, -0.2, 0.8), (1, 0, 0), (0, 0, 1), (0.4, 0.4)),  # sides
            _face((x0, 0.2, 0.8), (1, 0, 0), (0, 0, 1), (0.4, 0.4)),
            _face((x0, -0.2, 0.8), (1, 0, 0), (0, 1, 0), (0.4, 0.4)),  # bottom, top
            _face((x0, -0.2, 1.2), (1, 0, 0), (0, 1, 0), (0.4, 0.4))])
        parts.append(box)
        sem.append(np.full(len(box), 4))
        inst.append(np.zeros(len(box), np.int64))
    xyz = np.concatenate(parts)
    return Scene(xyz, np.full((len(xyz), 3), 128, np.uint8), np.concatenate(sem), np.concatenate(inst), "hand")


def camera_at_origin_looking_along_x() -> np.ndarray:
    """optical_from_room of a level camera at (0, 0, 1) looking along +x (camera_link = room axes)."""
    room_from_optical = matrix_from_pose((0.0, 0.0, 1.0), (0, 0, 0, 1)) @ matrix_from_pose((0, 0, 0),
                                                                                           OPTICAL_IN_CAMERA_LINK)
    return np.linalg.inv(room_from_optical)


def in_room(view: Any) -> np.ndarray:
    ok = np.isfinite(view.xyz[:, 0])
    out = np.full(view.xyz.shape, np.nan)
    out[ok] = transform_points(np.linalg.inv(camera_at_origin_looking_along_x()), view.xyz[ok].astype(np.float64))
    return out


def test_box_hides_the_wall_behind_it_and_shows_its_front_face() -> None:
    config = CameraConfig(width=200, height=150, noise_k=0.0, max_range=5.0)
    pose = camera_at_origin_looking_along_x()
    box = Renderer(wall_and_box(1.8), config).render(pose)
    bare = Renderer(wall_and_box(None), config).render(pose)
    # the box's shadow on the wall: rays through its front face (|y|, |z - 1| <= 0.2 at x = 1.8) reach x = 3
    # within 0.2 * 3 / 1.8 = 0.33 m; 0.3 m leaves a margin for the splats' edges
    def shadow(view: Any) -> np.ndarray:
        p = in_room(view)
        return (view.semantic == 1) & (np.abs(p[:, 1]) < 0.3) & (np.abs(p[:, 2] - 1.0) < 0.3)

    assert shadow(bare).sum() > 200  # the wall is there to be hidden ...
    assert shadow(box).sum() == 0  # ... and the box hides it
    front = box.instance == 0
    assert front.sum() > 200
    p = in_room(box)
    # only the front face is seen (sides and top face away from a camera at the box's centre height); its
    # edges are bevelled by at most one spacing (tangent planes fitted across the edge)
    assert np.median(np.abs(p[front, 0] - 1.8)) < 0.002 and np.abs(p[front, 0] - 1.8).max() <= SPACING
    assert np.abs(p[front, 1]).max() < 0.2 + 0.8 * SPACING + 1e-6
    assert ((box.semantic == 1) & (np.abs(p[:, 1]) > 0.5)).sum() > 1000  # the wall around the box is seen
    np.testing.assert_allclose(p[box.semantic == 1, 0], 3.0, atol=SPACING)


def test_too_close_surface_is_a_hole_not_a_window() -> None:
    # as a real sensor: a surface nearer than min_range gives no depth, and does not reveal what is behind it
    config = CameraConfig(width=200, height=150, noise_k=0.0, min_range=0.8)
    view = Renderer(wall_and_box(0.6), config).render(camera_at_origin_looking_along_x())
    u = np.arange(200 * 150) % 200 - 99.5
    v = np.arange(200 * 150) // 200 - 74.5
    centre = (np.abs(u) < 30) & (np.abs(v) < 30)  # well inside the near box's silhouette (43 px)
    assert not np.isfinite(view.xyz[centre]).any()
    assert (view.semantic[centre] == IGNORE).all() and (view.rgb[centre] == 0).all()
    assert (view.semantic[~centre] == 1).sum() > 1000


def test_field_of_view_range_and_organized_layout(clean: Sequence) -> None:
    cfg = clean.config
    for frame in clean.frames:
        assert frame.xyz.shape == (cfg.height * cfg.width, 3) and frame.xyz.dtype == np.float32
        assert frame.rgb.shape == (cfg.height * cfg.width, 3) and frame.rgb.dtype == np.uint8
        valid = frame.valid
        assert 0.2 < valid.mean() < 1.0  # holes (above the low walls) and points
        assert np.isnan(frame.xyz[~valid]).all()
        assert (frame.semantic[~valid] == IGNORE).all() and (frame.instance[~valid] == IGNORE).all()
        assert (frame.semantic[valid] >= 0).all() and (frame.rgb[~valid] == 0).all()
        x, y, z = frame.xyz[valid].T.astype(np.float64)
        assert z.min() >= cfg.min_range and z.max() <= cfg.max_range
        half_h = math.tan(math.radians(cfg.hfov_deg) / 2)
        assert np.abs(x / z).max() <= half_h + 1e-5
        assert np.abs(y / z).max() <= half_h * cfg.height / cfg.width + 1e-5
        # organized: pixel k = (row k // W, column k % W) is on its own ray
        k = np.flatnonzero(valid)
        f, cx, cy = cfg.focal, (cfg.width - 1) / 2, (cfg.height - 1) / 2
        np.testing.assert_allclose(f * x / z + cx, k % cfg.width, atol=1e-3)
        np.testing.assert_allclose(f * y / z + cy, k // cfg.width, atol=1e-3)


def test_max_range_cuts_far_surfaces(clean: Sequence) -> None:
    short = CameraConfig(width=160, height=120, noise_k=0.0, max_range=1.5)
    renderer = Renderer(clean.scene, short)
    pose = np.linalg.inv(clean.room_from_optical(0))
    near = renderer.render(pose)
    z_full = clean.frames[0].xyz[:, 2]
    z_near = near.xyz[:, 2]
    assert np.nanmax(z_near) <= 1.5 and np.nanmax(z_full) > 1.5
    # the same surfaces, cut at the new range: pixels within range are unchanged
    inside = np.isfinite(z_full) & (z_full <= 1.5)
    np.testing.assert_array_equal(z_near[inside], z_full[inside])
    assert not np.isfinite(z_near[np.isfinite(z_full) & (z_full > 1.5)]).any()


def test_depth_noise_grows_with_range(clean: Sequence) -> None:
    noisy = Renderer(clean.scene, CameraConfig(width=160, height=120, noise_k=0.004))
    pose = np.linalg.inv(clean.room_from_optical(2))
    view = noisy.render(pose, np.random.default_rng(0))
    z_clean, z_noisy = clean.frames[2].xyz[:, 2].astype(np.float64), view.xyz[:, 2].astype(np.float64)
    both = np.isfinite(z_clean) & np.isfinite(z_noisy)
    residual = (z_noisy[both] - z_clean[both]) / (0.004 * z_clean[both] ** 2)
    assert 0.9 < residual.std() < 1.1 and abs(residual.mean()) < 0.1
    # noise is along the ray: the pixel stays on its ray
    np.testing.assert_allclose(view.xyz[both, 0] / z_noisy[both], clean.frames[2].xyz[both, 0] / z_clean[both],
                               atol=1e-5)


# ---- the robot's path ----------------------------------------------------------------------------------------

def test_path_stays_on_free_floor_smooth_and_sees_objects() -> None:
    seq = generate_sequence(9, frames=40, config=CameraConfig(width=64, height=48))
    room = seq.scene.xyz.astype(np.float64)
    floor = np.percentile(room[:, 2], 5)
    obstacles = cKDTree(room[room[:, 2] > floor + 0.05, :2])
    lo, hi = room[:, :2].min(0), room[:, :2].max(0)
    base = np.array([f.odom_from_base[:3, 3] for f in seq.frames])
    camera = np.array([seq.room_from_optical(i)[:3, 3] for i in range(len(seq.frames))])
    assert np.allclose(base[:, 2], floor)
    assert (obstacles.query(base[:, :2])[0] >= 0.1 - 0.05).all()  # the base's footprint is clear (grid 5 cm)
    assert ((camera[:, :2] > lo + 0.1) & (camera[:, :2] < hi - 0.1)).all()  # inside the walls
    assert (cKDTree(room).query(camera)[0] > 0.2).all()  # the camera is in free space
    assert (camera[:, 2] - floor > 1.2).all() and (camera[:, 2] - floor < 1.55).all()
    step = np.linalg.norm(np.diff(base[:, :2], axis=0), axis=1)
    assert step.max() <= seq.config.speed / seq.config.fps + 1e-6 and step.sum() > 0.1
    yaw = np.unwrap([math.atan2(f.odom_from_base[1, 0], f.odom_from_base[0, 0]) for f in seq.frames])
    assert np.abs(np.diff(yaw)).max() < math.radians(15)  # smooth at 10 Hz
    assert np.ptp(yaw) > math.radians(20)  # the camera sweeps
    seen = [np.unique(f.instance[f.instance >= 0]) for f in seq.frames]
    assert np.mean([len(s) > 0 for s in seen]) > 0.8
    assert len(np.unique(np.concatenate(seen))) >= 2


# ---- seeds and determinism -----------------------------------------------------------------------------------

def test_sequence_rooms_are_their_own_seed_range() -> None:
    from pointgroup_ros.training.sources import HELD_OUT_SEED_BASE, TUNING_SEED_BASE

    assert SEQUENCE_SEED_BASE >= TUNING_SEED_BASE + HELD_OUT_SEED_BASE
    seq = generate_sequence(3, frames=1, config=CameraConfig(width=32, height=24))
    assert seq.room_seed == SEQUENCE_SEED_BASE + 3 and seq.name == "sequence_000003"
    np.testing.assert_array_equal(seq.scene.xyz, generate_scene(SEQUENCE_SEED_BASE + 3).xyz)
    with pytest.raises(ValueError):
        generate_sequence(-1)


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    config = CameraConfig(width=80, height=60)  # with noise: its stream is seeded too
    a, b = generate_sequence(11, frames=3, config=config), generate_sequence(11, frames=3, config=config)
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa.xyz, fb.xyz)
        np.testing.assert_array_equal(fa.instance, fb.instance)
        np.testing.assert_array_equal(fa.odom_from_base, fb.odom_from_base)
    write_sequence_bag(a, tmp_path / "a")
    write_sequence_bag(b, tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    c = generate_sequence(12, frames=3, config=config)
    assert c.room_seed != a.room_seed
    assert not np.array_equal(c.frames[0].odom_from_base, a.frames[0].odom_from_base)
    assert not np.array_equal(np.isfinite(c.frames[0].xyz), np.isfinite(a.frames[0].xyz))
    # the same room with another path seed: other views of the same instances
    d = generate_sequence(5, frames=3, config=config, scene=a.scene)
    assert d.room_seed == -1 and not np.array_equal(d.frames[0].odom_from_base, a.frames[0].odom_from_base)


# ---- ground truth file ---------------------------------------------------------------------------------------

def test_groundtruth_round_trip_and_alignment_with_the_clouds(clean: Sequence, clean_bag: Path,
                                                             tmp_path: Path) -> None:
    from pointgroup_ros.ros.cloud import decode_cloud

    gt = read_groundtruth(groundtruth_path(clean_bag))
    assert gt.name == clean.name and gt.seed == 4 and gt.room_seed == SEQUENCE_SEED_BASE + 4
    assert gt.class_names == clean.class_names and gt.organized
    np.testing.assert_array_equal(gt.stamps_ns, clean.stamps_ns)
    shape = (FRAMES, SMALL.height, SMALL.width)
    assert gt.semantic.shape == gt.instance.shape == gt.valid.shape == shape
    for i, frame in enumerate(clean.frames):
        np.testing.assert_array_equal(gt.semantic[i].reshape(-1), frame.semantic)
        np.testing.assert_array_equal(gt.instance[i].reshape(-1), frame.instance)
        np.testing.assert_array_equal(gt.valid[i].reshape(-1), frame.valid)
        np.testing.assert_allclose(gt.odom_from_base[i], frame.odom_from_base)
    np.testing.assert_allclose(gt.base_from_camera @ gt.camera_from_optical, clean.base_from_optical)
    np.testing.assert_allclose(gt.intrinsics, SMALL.intrinsics)
    with np.load(groundtruth_path(clean_bag), allow_pickle=False) as data:  # plain arrays, no pickles
        assert data["semantic"].dtype == np.int16 and data["class_names"].dtype.kind == "U"
    with pytest.raises(KeyError):
        gt.frame_index(int(gt.stamps_ns[0]) + 1)

    # unorganized bags: only valid points, and labels() follows them
    loose = Sequence(clean.name, clean.seed, clean.room_seed, clean.scene,
                     CameraConfig(width=160, height=120, noise_k=0.0, organized=False), clean.base_from_camera,
                     clean.camera_from_optical, clean.frames[:2])
    paths = write_sequence_bag(loose, tmp_path)
    loose_gt = read_groundtruth(paths.groundtruth)
    assert not loose_gt.organized
    for i, (_, msg) in enumerate(read_bag(paths.bag)[CLOUD_TOPIC]):
        cloud = decode_cloud(msg)
        assert msg.height == 1 and cloud.valid.all() and msg.is_dense
        np.testing.assert_array_equal(cloud.xyz, clean.frames[i].xyz[clean.frames[i].valid])
        semantic, instance = loose_gt.labels(i)
        np.testing.assert_array_equal(instance, clean.frames[i].instance[clean.frames[i].valid])
        assert len(semantic) == len(cloud.xyz)

    with pytest.raises(FileExistsError):
        write_sequence_bag(loose, tmp_path)
    write_sequence_bag(loose, tmp_path, overwrite=True)
    broken = tmp_path / "broken.groundtruth.npz"
    np.savez(broken, version=np.array(1), name=np.array("x"))
    with pytest.raises(DataError, match="missing key"):
        read_groundtruth(broken)


def test_organized_cloud_in_the_bag_matches_the_frames(clean: Sequence, clean_bag: Path) -> None:
    from pointgroup_ros.ros.cloud import decode_cloud

    for (_, msg), frame in zip(read_bag(clean_bag)[CLOUD_TOPIC], clean.frames):
        assert (msg.height, msg.width) == (SMALL.height, SMALL.width) and not msg.is_dense
        cloud = decode_cloud(msg)
        np.testing.assert_array_equal(cloud.valid, frame.valid)
        np.testing.assert_array_equal(cloud.xyz[cloud.valid], frame.xyz[frame.valid])
        assert cloud.rgb is not None
        np.testing.assert_array_equal(cloud.rgb[cloud.valid], frame.rgb[frame.valid])


# ---- the bag plays through the offline runner ----------------------------------------------------------------

class StubPipeline:
    """Records what the runner passes; segments nothing."""

    max_points = 1_000_000

    def __init__(self) -> None:
        self.calls: list[tuple[int, np.ndarray | None]] = []

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("floor", "wall", "chair", "table", "cabinet", "sofa", "bin")

    def segment(self, xyz: np.ndarray, rgb: np.ndarray | None = None, valid: np.ndarray | None = None,
                grouping: Any = None, postprocess: Any = None, preprocess: Any = None,
                gravity_transform: np.ndarray | None = None) -> Any:
        from pointgroup_ros.pipeline import Segmentation

        self.calls.append((xyz.shape[0], gravity_transform))
        return Segmentation.empty(xyz.shape[0], self.class_names, "gravity")


def test_bag_plays_through_the_offline_runner_with_every_frame(clean: Sequence, clean_bag: Path,
                                                               tmp_path: Path) -> None:
    from pointgroup_ros.tools.run import process_bag

    stub = StubPipeline()
    summary = process_bag(clean_bag, tmp_path / "out", stub, gravity_frame="base_link", progress=False)
    assert summary.frames == FRAMES and summary.skipped_no_tf == 0 and summary.rejected == 0
    assert len(stub.calls) == FRAMES
    for n, gravity in stub.calls:
        assert n == SMALL.width * SMALL.height
        assert gravity is not None
        np.testing.assert_allclose(gravity, clean.base_from_optical, atol=1e-9)


# ---- CLI -----------------------------------------------------------------------------------------------------

def test_prepare_camera_cli(tmp_path: Path) -> None:
    from pointgroup_ros.cli import main

    out = tmp_path / "seqs"
    assert main(["prepare", "camera", "--out", str(out), "--seed", "2", "--count", "2", "--frames", "2",
                 "--unorganized"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sequence_000002", "sequence_000002.groundtruth.npz",
                                                     "sequence_000003", "sequence_000003.groundtruth.npz"]
    gt = read_groundtruth(out / "sequence_000003")
    ref = generate_sequence(3, frames=2, config=CameraConfig(organized=False))
    np.testing.assert_array_equal(gt.instance[1].reshape(-1), ref.frames[1].instance)
    assert not gt.organized and gt.semantic.shape == (2, 240, 320)
    assert main(["prepare", "camera", "--out", str(out), "--seed", "2", "--frames", "2", "--unorganized",
                 "--skip-existing"]) == 0
    assert main(["prepare", "camera", "--out", str(out), "--count", "0"]) == 1
