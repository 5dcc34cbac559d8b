"""`pointgroup-ros run --gravity-frame` on bags (transforms from the bag's /tf_static and /tf at each cloud's
stamp), `--gravity-transform` on one cloud file, the preprocessing options, and an answer for every frame
(empty and all-invalid clouds are frames, not malformed input)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest
from bag_builders import (CLOUD, TF, Item, cloud, digest, matrix, output_qos, read_output, tf_message, transform,
                          transient_local, write_bag)
from ros_testing_fakes import FakePipeline
from scipy.spatial.transform import Rotation

from pointgroup_ros.config import PreprocessConfig
from pointgroup_ros.pipeline import Segmentation
from pointgroup_ros.tools import run as runner
from pointgroup_ros.transforms import parse_pose, transform_points

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000
TOPIC = "/camera/depth/points"
OPTICAL = "camera_optical_frame"
OUT = {name: f"/pointgroup/{name}" for name in ("labeled_points", "detections", "markers", "instances")}

# base_link <- camera_link (1 m up, 0.2 m ahead, pitched 10 degrees down), camera_link <- optical (REP 103)
BASE_CAMERA = ((0.2, 0.0, 1.0), tuple(Rotation.from_euler("y", 10, degrees=True).as_quat()))
CAMERA_OPTICAL = ((0.0, 0.0, 0.0), (-0.5, 0.5, -0.5, 0.5))
# odom <- base_link at T0, T0 + 1 s, T0 + 2 s: driving and turning about z
ODOM_BASE = [(T0 + k * SEC, (1.0 * k, 0.5 * k * k, 0.0), 30.0 * k) for k in range(3)]


def _odom_base(ns: int) -> np.ndarray:
    """Hand interpolation of odom <- base_link: linear translation, linear yaw (slerp about one axis)."""
    for (t0, p0, y0), (t1, p1, y1) in zip(ODOM_BASE, ODOM_BASE[1:]):
        if t0 <= ns <= t1:
            f = (ns - t0) / (t1 - t0)
            yaw = np.radians(y0 + f * (y1 - y0))
            m = np.eye(4)
            m[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
            m[:3, 3] = np.array(p0) + f * (np.array(p1) - np.array(p0))
            return m
    raise AssertionError(f"{ns} outside the /tf samples")


def expected_odom_optical(ns: int) -> np.ndarray:
    return _odom_base(ns) @ matrix(*BASE_CAMERA) @ matrix(*CAMERA_OPTICAL)


# (what, frame, stamp, points, invalid); in bag order
CLOUDS = [("first", OPTICAL, T0 + SEC // 4, 2000, False),
          ("lidar", "lidar_link", T0 + SEC // 2, 300, False),  # a frame the tf tree does not have
          ("empty", OPTICAL, T0 + 3 * SEC // 4, 0, False),  # width 0
          ("all-nan", OPTICAL, T0 + 5 * SEC // 4, 400, True),
          ("second", OPTICAL, T0 + 3 * SEC // 2, 2000, False),
          ("late", OPTICAL, T0 + 5 * SEC, 500, False)]  # after the last /tf sample: tf does not extrapolate


def _items() -> list[Item]:
    static = tf_message(transform("base_link", "camera_link", T0, *BASE_CAMERA),
                        transform("camera_link", OPTICAL, T0, *CAMERA_OPTICAL))
    items = [Item("/tf_static", TF, T0, static)]
    items += [Item("/tf", TF, ns, tf_message(transform("odom", "base_link", ns, p,
                                                        Rotation.from_euler("z", yaw, degrees=True).as_quat())))
              for ns, p, yaw in ODOM_BASE]
    items += [Item(TOPIC, CLOUD, ns, cloud(frame, ns, n, seed=i, invalid=bad))
              for i, (_, frame, ns, n, bad) in enumerate(CLOUDS)]
    return sorted(items, key=lambda item: item.ns)


class Recorder(FakePipeline):
    """FakePipeline that records what each segment() call got, including gravity_transform and preprocess."""

    def __init__(self) -> None:
        super().__init__(cell=0.5)
        self.seen: list[dict] = []

    def segment(self, xyz, rgb=None, valid=None, grouping=None, postprocess=None, preprocess=None,
                gravity_transform=None):
        self.seen.append({"n": xyz.shape[0], "preprocess": preprocess,
                          "gravity": None if gravity_transform is None else np.array(gravity_transform)})
        frame = "input" if gravity_transform is None else "gravity"
        usable = np.isfinite(xyz).all(axis=1) if valid is None else valid & np.isfinite(xyz).all(axis=1)
        if not usable.any():
            return Segmentation.empty(xyz.shape[0], tuple(self.class_names), frame)
        seg = FakePipeline.segment(self, xyz, rgb, valid, grouping, postprocess)
        seg.frame = frame
        return seg


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("robot") / "robot"
    write_bag(folder, _items(), qos={"/tf_static": transient_local()})
    return folder


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args([*argv, "--no-progress"])


def _frames(got: dict, topic: str) -> list[str]:
    """The frame of each output message (a MarkerArray's: the one frame all its markers share)."""
    frames = []
    for _, msg in got[topic]:
        if hasattr(msg, "header"):
            frames.append(msg.header.frame_id)
        else:
            (frame,) = {m.header.frame_id for m in msg.markers}
            frames.append(frame)
    return frames


def test_gravity_frame_from_the_bags_tf(robot_bag, tmp_path, caplog):
    before = digest(robot_bag)
    pipe = Recorder()
    with caplog.at_level(logging.INFO):
        summary = runner.process_bag(robot_bag, tmp_path / "out", pipe, progress=False, gravity_frame="odom")
    assert digest(robot_bag) == before
    processed = [c for c in CLOUDS if c[0] not in ("lidar", "late")]
    assert (summary.frames, summary.skipped_no_tf, summary.rejected) == (len(processed), 2, 0)
    assert "2 cloud(s) skipped: no transform to 'odom'" in summary.describe()

    # the matrix each cloud was segmented with is the tf chain odom <- base_link <- camera_link <- optical at
    # the cloud's header stamp (/tf interpolated between its samples)
    assert [s["n"] for s in pipe.seen] == [c[3] for c in processed]
    for seen, (what, _, ns, _, _) in zip(pipe.seen, processed):
        np.testing.assert_allclose(seen["gravity"], expected_odom_optical(ns), atol=1e-9, err_msg=what)

    # the skipped clouds are named with their frames and the reason
    skips = [r.getMessage() for r in caplog.records if "skipped:" in r.getMessage() and "cloud in" in r.getMessage()]
    assert len(skips) == 2
    assert "'lidar_link'" in skips[0] and "unknown frame 'lidar_link'" in skips[0]
    assert "'odom'" in skips[1] and "does not extrapolate" in skips[1]

    got = read_output(tmp_path / "out")
    stamps = [ns for _, _, ns, _, _ in processed]
    assert [t for t, _ in got[OUT["labeled_points"]]] == stamps
    assert _frames(got, OUT["labeled_points"]) == [OPTICAL] * len(processed)  # point for point the input
    for name in ("detections", "markers", "instances"):
        assert _frames(got, OUT[name]) == ["odom"] * len(processed), name
    # every frame answered: the empty and the all-NaN clouds have outputs that clear the markers
    empty_like = [i for i, c in enumerate(processed) if c[0] in ("empty", "all-nan")]
    for i in empty_like:
        assert [m.action for m in got[OUT["markers"]][i][1].markers] == [3]  # DELETEALL alone
        assert len(got[OUT["detections"]][i][1].detections) == 0
    assert len(got[OUT["detections"]][0][1].detections) >= 1

    # the input's transforms travel along, /tf_static still transient-local for late-joining viewers
    assert len(got["/tf"]) == len(ODOM_BASE) and len(got["/tf_static"]) == 1
    from rosbags.interfaces import QosDurability

    assert output_qos(tmp_path / "out")["/tf_static"][0].durability == QosDurability.TRANSIENT_LOCAL


def test_every_frame_gets_an_answer_without_gravity(robot_bag, tmp_path):
    pipe = Recorder()
    summary = runner.process_bag(robot_bag, tmp_path / "out", pipe, progress=False)
    assert (summary.frames, summary.rejected, summary.skipped_no_tf) == (len(CLOUDS), 0, 0)
    assert all(s["gravity"] is None for s in pipe.seen)
    got = read_output(tmp_path / "out")
    assert [t for t, _ in got[OUT["instances"]]] == [c[2] for c in CLOUDS]
    assert _frames(got, OUT["detections"]) == [c[1] for c in CLOUDS]  # the input frames
    empty = got[OUT["labeled_points"]][2][1]
    assert (empty.width, empty.height, len(empty.data)) == (0, 1, 0)


def test_skipped_clouds_are_logged_a_few_times_then_counted(tmp_path, caplog):
    items = [Item(TOPIC, CLOUD, T0 + i * SEC, cloud("nowhere", T0 + i * SEC, 20, seed=i)) for i in range(12)]
    items.insert(0, Item("/tf_static", TF, T0, tf_message(transform("base_link", "camera_link", T0, *BASE_CAMERA))))
    bag = tmp_path / "bag"
    write_bag(bag, items)
    with caplog.at_level(logging.INFO):
        summary = runner.process_bag(bag, tmp_path / "out", Recorder(), progress=False, gravity_frame="base_link")
    assert (summary.frames, summary.skipped_no_tf) == (0, 12)
    named = [r for r in caplog.records if "cloud in 'nowhere' skipped" in r.getMessage()]
    assert len(named) == runner.LOGGED_SKIPS
    assert "further clouds without a transform are only counted" in named[-1].getMessage()
    assert any("12 cloud(s) skipped" in r.getMessage() for r in caplog.records)


def test_bag_without_tf_segments_only_clouds_already_in_the_frame(tmp_path, caplog):
    items = [Item(TOPIC, CLOUD, T0, cloud("base_link", T0, 50)),
             Item(TOPIC, CLOUD, T0 + SEC, cloud(OPTICAL, T0 + SEC, 50))]
    write_bag(tmp_path / "bag", items)
    pipe = Recorder()
    with caplog.at_level(logging.INFO):
        summary = runner.process_bag(tmp_path / "bag", tmp_path / "out", pipe, progress=False,
                                     gravity_frame="base_link")
    assert (summary.frames, summary.skipped_no_tf) == (1, 1)
    np.testing.assert_array_equal(pipe.seen[0]["gravity"], np.eye(4))  # already z-up: identity
    assert any("has no /tf or /tf_static" in r.getMessage() for r in caplog.records)


def test_preprocess_options_reach_the_pipeline(robot_bag, tmp_path):
    pipe = Recorder()
    argv = [str(robot_bag), "--out", str(tmp_path / "out"), "--voxel-size", "0.05", "--max-range", "4"]
    assert runner.run(_args(*argv), pipeline=pipe) == 0
    assert {s["preprocess"] for s in pipe.seen} == {PreprocessConfig(voxel_size=0.05, min_range=0.0, max_range=4.0)}
    pipe = Recorder()  # no option: the pipeline's own configuration
    assert runner.run(_args(str(robot_bag), "--out", str(tmp_path / "out2")), pipeline=pipe) == 0
    assert {s["preprocess"] for s in pipe.seen} == {None}


@pytest.mark.parametrize("argv, message", [
    (["--min-range", "3", "--max-range", "1"], "preprocess.max_range"),
    (["--voxel-size", "-1"], "preprocess.voxel_size"),
    (["--gravity-transform", "0,0,1,0,0,0,1"], "--gravity-transform is for one cloud file"),
    (["--gravity-frame", "/"], "--gravity-frame: give a frame id"),
])
def test_bad_bag_options_are_refused(robot_bag, tmp_path, caplog, argv, message):
    with caplog.at_level(logging.INFO):
        assert runner.run(_args(str(robot_bag), "--out", str(tmp_path / "out"), *argv), pipeline=Recorder()) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- one cloud file

@pytest.fixture
def cloud_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    pts = np.concatenate([rng.uniform(-1, 1, (3000, 3)) + (0, 0, 3), rng.integers(0, 256, (3000, 3))], axis=1)
    path = tmp_path / "scan.npy"
    np.save(path, pts.astype(np.float32))
    return path


def test_gravity_transform_for_one_cloud(cloud_file, tmp_path, monkeypatch):
    import pointgroup_ros.cloud_io as cloud_io

    drawn = {}
    real_render = cloud_io.render_png

    def render(path, cloud, instance, **kw):
        drawn["xyz"], drawn["view"] = cloud.xyz.copy(), kw.get("view")
        real_render(path, cloud, instance, **kw)

    monkeypatch.setattr(cloud_io, "render_png", render)
    pose = "0.1,0,1.2,-0.5,0.5,-0.5,0.5"  # an optical frame 1.2 m above a z-up frame
    pipe = Recorder()
    out = tmp_path / "labeled.npz"
    argv = [str(cloud_file), "--out", str(out), "--gravity-transform", pose, "--min-range", "0.5"]
    assert runner.run(_args(*argv), pipeline=pipe) == 0
    (seen,) = pipe.seen
    np.testing.assert_allclose(seen["gravity"], parse_pose(pose))
    assert seen["preprocess"] == PreprocessConfig(min_range=0.5)
    xyz = np.load(cloud_file)[:, :3]
    np.testing.assert_allclose(drawn["xyz"], transform_points(parse_pose(pose), xyz), atol=1e-5)  # drawn z-up
    assert drawn["view"] == "oblique"
    with np.load(out) as z:
        np.testing.assert_array_equal(z["xyz"], xyz)  # the labeled file keeps the input coordinates
    assert (tmp_path / "labeled.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--gravity-frame", "base_link"], "--gravity-frame needs a bag"),
    (["--gravity-transform", "1,2,3"], "--gravity-transform: expected"),
    (["--gravity-transform", "0,0,0,0,0,0,0"], "zero"),
])
def test_bad_cloud_options_are_refused(cloud_file, tmp_path, caplog, argv, message):
    with caplog.at_level(logging.INFO):
        assert runner.run(_args(str(cloud_file), "--out", str(tmp_path / "o.ply"), *argv), pipeline=Recorder()) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "o.ply").exists()


def test_help_lists_the_new_options(capsys):
    parser = argparse.ArgumentParser(prog="pointgroup-ros run")
    runner.add_arguments(parser)
    text = parser.format_help()
    for option in ("--gravity-frame", "--gravity-transform", "--voxel-size", "--min-range", "--max-range"):
        assert option in text
    assert max(len(line) for line in text.splitlines()) <= 120


# ---------------------------------------------------------------------------------------------- real bag

def test_real_ros1_bag_with_gravity_frames(realdata, tmp_path, caplog):
    """The real ROS 1 bag's cloud is in /ground at a stamp ~6 s before its /tf samples begin: segmenting in its
    own frame needs no transform (identity); in BODY it is skipped, naming the frames and the time range."""
    src = realdata / "bags" / "watercan_ros1.bag"
    pipe = Recorder()
    summary = runner.process_bag(src, tmp_path / "ground", pipe, progress=False, gravity_frame="ground")
    assert (summary.frames, summary.skipped_no_tf) == (1, 0)
    np.testing.assert_array_equal(pipe.seen[0]["gravity"], np.eye(4))
    got = read_output(tmp_path / "ground")
    assert _frames(got, OUT["detections"]) == ["ground"] and _frames(got, OUT["labeled_points"]) == ["/ground"]
    assert len(got["/tf"]) == 893 + 334 + 1434 + 536 + 333 + 2  # every /tf message copied (ROS 1 types converted)
    with caplog.at_level(logging.INFO):
        summary = runner.process_bag(src, tmp_path / "body", Recorder(), progress=False, gravity_frame="BODY")
    assert (summary.frames, summary.skipped_no_tf) == (0, 1)
    (skip,) = [r.getMessage() for r in caplog.records if "cloud in 'ground' skipped" in r.getMessage()]
    assert "'BODY'" in skip and "does not extrapolate" in skip
