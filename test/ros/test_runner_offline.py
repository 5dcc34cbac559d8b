"""`pointgroup-ros run` end to end with the fake pipeline: real bags (ROS 1, rosbag2 sqlite3 / MCAP) and a real
PCD capture; input untouched, output readable, refusal to overwrite, temp-then-rename."""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest
from ros_testing_fakes import FakePipeline

from pointgroup_ros.cloud_io import read_cloud
from pointgroup_ros.ros.cloud import decode_cloud
from pointgroup_ros.tools import run as runner

CLOUD_TOPIC = "/euclidean_cluster_indices_decomposer/output00"
OUT_TOPICS = {"/pointgroup/labeled_points": "sensor_msgs/msg/PointCloud2",
              "/pointgroup/detections": "vision_msgs/msg/Detection3DArray",
              "/pointgroup/markers": "visualization_msgs/msg/MarkerArray",
              "/pointgroup/instances": "pointgroup_ros/msg/InstanceArray"}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args([*argv, "--no-progress"])


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


BAGS = {"ros1": "watercan_ros1.bag", "sqlite3": "watercan_ros2_sqlite3", "mcap": "watercan_ros2_mcap",
        "mcap-file": "watercan_ros2_mcap/watercan_ros2_mcap.mcap"}


@pytest.mark.parametrize("which", list(BAGS))
def test_bag_end_to_end(realdata, tmp_path, which):
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import Reader

    src = realdata / "bags" / BAGS[which]
    before = _digest(src)
    out = tmp_path / "segmented"
    pipe = FakePipeline(cell=0.05)
    assert runner.run(_args(str(src), "--out", str(out)), pipeline=pipe) == 0
    assert _digest(src) == before  # input never modified
    assert _leftovers(tmp_path) == []  # no temporary folder left behind
    assert len(pipe.calls) == 1 and pipe.calls[0]["rgb"]

    with AnyReader([src]) as reader:
        in_topics = {c.topic: c.msgtype for c in reader.connections}
        in_count = reader.message_count
        (cloud_conn,) = [c for c in reader.connections if c.topic == CLOUD_TOPIC]
        stamp_in, raw_in = next((t, raw) for _, t, raw in reader.messages([cloud_conn]))
        cloud_in = decode_cloud(reader.deserialize(raw_in, cloud_conn.msgtype))

    with Reader(out) as bag:  # a plain rosbag2 reader sees every topic, with definitions
        topics = {c.topic: c.msgtype for c in bag.connections}
        assert bag.message_count == in_count + 4
        assert all(c.msgdef.data for c in bag.connections)
    assert [p.suffix for p in out.iterdir() if p.name != "metadata.yaml"] == [".mcap"]
    expected = {t: ("tf2_msgs/msg/TFMessage" if m == "tf/msg/tfMessage" else m) for t, m in in_topics.items()}
    assert topics == {**expected, **OUT_TOPICS}

    with AnyReader([out]) as reader:  # typed from the bag's own definitions (no typestore given)
        got = {}
        for conn, stamp, raw in reader.messages():
            if conn.topic in OUT_TOPICS:
                assert stamp == stamp_in  # outputs at the input's time
                got[conn.topic] = reader.deserialize(raw, conn.msgtype)
    labeled = got["/pointgroup/labeled_points"]
    np.testing.assert_array_equal(decode_cloud(labeled).xyz, cloud_in.xyz)
    assert labeled.header.frame_id == "/ground"
    n_inst = len(got["/pointgroup/instances"].instances)
    assert n_inst >= 1 and len(got["/pointgroup/detections"].detections) == n_inst
    assert len(got["/pointgroup/markers"].markers) == 1 + 2 * n_inst


@pytest.mark.parametrize("suffix", [".ply", ".npz"])
def test_pcd_capture_end_to_end(realdata, tmp_path, suffix):
    src = realdata / "pcl" / "milk_cartoon_all_small_clorox.pcd"
    before = _digest(src)
    out = tmp_path / f"labeled{suffix}"
    assert runner.run(_args(str(src), "--out", str(out)), pipeline=FakePipeline(cell=0.1)) == 0
    assert _digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, "labeled.png"])
    cloud = read_cloud(src)
    if suffix == ".npz":
        with np.load(out, allow_pickle=False) as z:
            np.testing.assert_array_equal(z["xyz"], cloud.xyz)
            assert z["semantic"].shape == (cloud.num_points,) and int(z["height"]) == 480
            assert (z["semantic"][~cloud.valid] == -1).all()
    else:
        back = read_cloud(out)
        np.testing.assert_array_equal(back.xyz, cloud.xyz)
        assert set(back.extra) == {"label", "instance"}
    from PIL import Image

    with Image.open(tmp_path / "labeled.png") as png:
        assert png.size == (2 * 640 + 8, 480)


def test_refuses_to_overwrite_unless_asked(realdata, tmp_path):
    src = realdata / "bags" / "watercan_ros2_sqlite3"
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert runner.run(_args(str(src), "--out", str(out)), pipeline=FakePipeline()) == 1
    assert (out / "keep.txt").read_text() == "mine"
    assert runner.run(_args(str(src), "--out", str(out), "--overwrite"), pipeline=FakePipeline()) == 0
    assert not (out / "keep.txt").exists() and (out / "metadata.yaml").is_file()
    assert _leftovers(tmp_path) == []


class _Boom(RuntimeError):
    pass


class _FailingPipeline(FakePipeline):
    def segment(self, *args, **kwargs):
        raise _Boom("interrupted in the middle of the bag")


def test_interrupted_run_leaves_no_output(realdata, tmp_path):
    src = realdata / "bags" / "watercan_ros1.bag"
    out = tmp_path / "out"
    with pytest.raises(_Boom):
        runner.process_bag(src, out, _FailingPipeline(), progress=False)
    assert not out.exists() and _leftovers(tmp_path) == []
    # an existing output stays as it was when a replacement fails
    out.mkdir()
    with pytest.raises(_Boom):
        runner.process_bag(src, out, _FailingPipeline(), overwrite=True, progress=False)
    assert out.is_dir() and list(out.iterdir()) == [] and _leftovers(tmp_path) == []


def test_bad_arguments_are_refused(realdata, tmp_path):
    bag = realdata / "bags" / "watercan_ros2_mcap"
    pcd = realdata / "pcl" / "office1.pcd"
    for argv in ([str(bag), "--out", str(tmp_path / "x.ply")],  # a bag cannot become a .ply
                 [str(pcd), "--out", str(tmp_path / "x")],  # one cloud needs .ply / .npz
                 [str(bag), "--out", str(bag / "inside")],  # never write into the input
                 [str(bag), "--out", str(tmp_path / "o"), "--topic", "/nope"],
                 [str(tmp_path / "missing.bag"), "--out", str(tmp_path / "o")],
                 [str(tmp_path), "--out", str(tmp_path / "o")]):  # a folder that is not a bag
        assert runner.run(_args(*argv), pipeline=FakePipeline()) == 1, argv
    assert not (tmp_path / "o").exists()


def test_selected_topic_and_output_namespaces():
    assert runner.output_topics(["/a"]) == {"/a": "/pointgroup"}
    assert runner.output_topics(["/a", "/cam/points"]) == {"/a": "/pointgroup/a",
                                                           "/cam/points": "/pointgroup/cam/points"}


def test_rerun_on_an_output_bag_replaces_the_old_outputs(realdata, tmp_path):
    from rosbags.rosbag2 import Reader

    first, second = tmp_path / "first", tmp_path / "second"
    src = realdata / "bags" / "watercan_ros2_mcap"
    assert runner.run(_args(str(src), "--out", str(first)), pipeline=FakePipeline()) == 0
    assert runner.run(_args(str(first), "--out", str(second)), pipeline=FakePipeline()) == 0
    with Reader(second) as bag:
        topics = sorted(c.topic for c in bag.connections)
        assert bag.message_count == 1 + 4
    assert topics == sorted([CLOUD_TOPIC, *OUT_TOPICS])
