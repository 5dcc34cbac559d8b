"""`pointgroup-ros run --track --tracking-frame FRAME`: track ids in all four outputs of a bag, colours that stay
with the object, tentative tracks unpublished, a cloud without a tracking transform skipped; and the message
builders' InstanceLabels (ids and colours from the given ids, unpublished instances left out)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest
from bag_builders import CLOUD, KIT, TF, Item, header, read_output, tf_message, transform, write_bag
from ros_testing_fakes import make_segmentation
from scipy.spatial.transform import Rotation

from pointgroup_ros.cloud_io import GREY, instance_colours, make_cloud
from pointgroup_ros.config import Config
from pointgroup_ros.pipeline import Segmentation
from pointgroup_ros.ros.cloud import InstanceLabels, decode_cloud, encode_cloud, encode_labeled_cloud
from pointgroup_ros.ros.messages import BOX_NS, LABEL_NS, build_detections, build_instances, build_markers
from pointgroup_ros.ros.processing import FrameProcessor, TrackingInput
from pointgroup_ros.tools import run as runner
from pointgroup_ros.tracking import Tracker, TrackerConfig

T0 = 1_700_000_000_000_000_000
STEP = 100_000_000  # 10 Hz
TOPIC = "/camera/points"
CAMERA = "camera_link"  # x forward, z up
OUT = {name: f"/pointgroup/{name}" for name in ("labeled_points", "detections", "markers", "instances")}
NUM_FRAMES = 9
MISSING_TF = 5  # this frame's cloud is in a frame the tf tree does not know: no tracking pose
N_BOX, N_BACKGROUND = 700, 300
# two static boxes in odom: (centre, half size, class index)
BOXES = (((3.0, 0.6, 0.4), 0.15, 1), ((3.2, -0.6, 0.5), 0.2, 2))
A = np.arange(N_BOX)  # box 0's points in every cloud
B = np.arange(N_BOX, 2 * N_BOX)  # box 1's points


def odom_camera(k: int) -> tuple[tuple[float, float, float], np.ndarray]:
    """The camera's pose in odom at frame k: driving forward and sideways while turning."""
    return (0.15 * k, 0.05 * k, 0.3), Rotation.from_euler("z", 3.0 * k, degrees=True).as_quat()


def _matrix(k: int) -> np.ndarray:
    t, q = odom_camera(k)
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(q).as_matrix()
    m[:3, 3] = t
    return m


def _points(k: int) -> np.ndarray:
    """Frame k's points in the camera frame: box 0, box 1 (fresh samples of the same static boxes), then
    background scattered far from both."""
    rng = np.random.default_rng(100 + k)
    parts = [np.asarray(c) + rng.uniform(-h, h, (N_BOX, 3)) for c, h, _ in BOXES]
    parts.append(rng.uniform((5.0, -3.0, 0.0), (6.0, 3.0, 2.0), (N_BACKGROUND, 3)))
    odom = np.concatenate(parts)
    inv = np.linalg.inv(_matrix(k))
    return (odom @ inv[:3, :3].T + inv[:3, 3]).astype(np.float32)


def _items() -> list[Item]:
    items = []
    for k in range(NUM_FRAMES):
        ns = T0 + k * STEP
        items.append(Item("/tf", TF, ns, tf_message(transform("odom", CAMERA, ns, *odom_camera(k)))))
        frame = "lidar_link" if k == MISSING_TF else CAMERA
        rgb = np.full((2 * N_BOX + N_BACKGROUND, 3), 128, np.uint8)
        items.append(Item(TOPIC, CLOUD, ns + 1, encode_cloud(KIT, header(frame, ns), _points(k), rgb)))
    return items


class SwappingPipeline:
    """Knows the cloud's layout (box 0, box 1, background): two instances whose order by score alternates from
    call to call (rank 0 is box 0 on even calls, box 1 on odd ones), so rank ids would swap every frame."""

    def __init__(self) -> None:
        self.cfg = Config()
        self.max_points = 300_000
        self.calls = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.data.class_names

    def segment(self, xyz, rgb=None, valid=None, grouping=None, postprocess=None, preprocess=None,
                gravity_transform=None) -> Segmentation:
        n = xyz.shape[0]
        order = [0, 1] if self.calls % 2 == 0 else [1, 0]
        self.calls += 1
        pts = np.asarray(xyz, np.float64)
        if gravity_transform is not None:
            g = np.asarray(gravity_transform, np.float64)
            pts = pts @ g[:3, :3].T + g[:3, 3]
        members = [A, B]
        instance = np.full(n, -1, np.int32)
        for rank, box in enumerate(order):
            instance[members[box]] = rank
        point_idx = np.concatenate([members[box] for box in order]).astype(np.int64)
        semantic = np.zeros(n, np.int32)
        semantic[A], semantic[B] = BOXES[0][2], BOXES[1][2]
        return Segmentation(
            semantic=semantic, instance=instance,
            instance_class=np.array([BOXES[box][2] for box in order], np.int32),
            instance_score=np.array([0.9, 0.8], np.float32), instance_point_idx=point_idx,
            instance_offsets=np.array([0, N_BOX, 2 * N_BOX], np.int64),
            box_min=np.stack([pts[members[box]].min(axis=0) for box in order]).astype(np.float32),
            box_max=np.stack([pts[members[box]].max(axis=0) for box in order]).astype(np.float32),
            class_names=tuple(self.class_names), frame="input" if gravity_transform is None else "gravity")


@pytest.fixture(scope="module")
def moving_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tracking") / "moving"
    write_bag(folder, _items())
    return folder


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args([*argv, "--no-progress"])


_LABELED = np.dtype({"names": ["rgb", "instance"], "formats": ["<u4", "<i4"], "offsets": [12, 20],
                     "itemsize": 24})


def _per_frame(got: dict) -> list[dict]:
    """Per output stamp: the labeled cloud's instance field and colours, and the ids of the other outputs."""
    frames: dict[int, dict] = {}
    for name, topic in OUT.items():
        for stamp, msg in got.get(topic, []):
            frames.setdefault(stamp, {})[name] = msg
    out = []
    for stamp in sorted(frames):
        f = frames[stamp]
        assert set(f) == set(OUT), stamp
        rec = np.frombuffer(f["labeled_points"].data.tobytes(), _LABELED)
        markers = [m for m in f["markers"].markers if m.ns in (BOX_NS, LABEL_NS)]
        out.append({
            "stamp": stamp, "instance": rec["instance"].copy(), "rgb": decode_cloud(f["labeled_points"]).rgb,
            "detections": {d.id: d for d in f["detections"].detections},
            "boxes": {m.id: m for m in markers if m.ns == BOX_NS},
            "labels": {m.id: m for m in markers if m.ns == LABEL_NS},
            "instances": {i.id: i for i in f["instances"].instances}})
    return out


def _check_tracked_sequence(frames: list[dict], confirm_hits: int) -> tuple[int, int]:
    """The published ids of the two boxes (checked the same in every frame and output); returns them."""
    tentative, confirmed = frames[:confirm_hits - 1], frames[confirm_hits - 1:]
    assert tentative and confirmed
    for f in tentative:  # tentative tracks are not published anywhere
        assert (f["instance"] == -1).all()
        assert (f["rgb"] == GREY).all()
        assert f["detections"] == {} and f["boxes"] == {} and f["labels"] == {} and f["instances"] == {}
    id_a, id_b = int(confirmed[0]["instance"][A[0]]), int(confirmed[0]["instance"][B[0]])
    assert id_a >= 1 and id_b >= 1 and id_a != id_b  # track ids, not ranks 0 / 1
    colour_a, colour_b = instance_colours(np.array([id_a, id_b]))
    assert not (colour_a == colour_b).all()
    for f in confirmed:
        inst = f["instance"]
        assert (inst[A] == id_a).all() and (inst[B] == id_b).all() and (inst[2 * N_BOX:] == -1).all()
        assert (f["rgb"][A] == colour_a).all() and (f["rgb"][B] == colour_b).all()  # colour stays with the object
        assert set(f["detections"]) == {str(id_a), str(id_b)}
        assert set(f["boxes"]) == set(f["labels"]) == set(f["instances"]) == {id_a, id_b}
        for track_id, box, colour in ((id_a, A, colour_a), (id_b, B, colour_b)):
            np.testing.assert_array_equal(np.asarray(f["instances"][track_id].point_indices), box)
            cls = f["instances"][track_id].class_name
            assert f["detections"][str(track_id)].results[0].hypothesis.class_id == cls
            marker = f["boxes"][track_id]
            got = np.array([marker.color.r, marker.color.g, marker.color.b]) * 255
            np.testing.assert_allclose(got, colour, atol=0.5)
            assert f["labels"][track_id].text.startswith(cls)
    return id_a, id_b


def test_track_ids_are_stable_in_all_four_outputs(moving_bag, tmp_path, caplog):
    pipe = SwappingPipeline()
    with caplog.at_level(logging.INFO):
        summary = runner.process_bag(moving_bag, tmp_path / "out", pipe, progress=False, tracking_frame="odom")
    # the cloud without a tracking pose is skipped (not segmented, nothing written) and counted
    assert (summary.frames, summary.skipped_no_tracking_tf, summary.skipped_no_tf) == (NUM_FRAMES - 1, 1, 0)
    assert pipe.calls == NUM_FRAMES - 1
    assert summary.tracks == 2
    text = summary.describe()
    assert "2 track(s) published, tracked in frame 'odom'" in text
    assert "1 cloud(s) skipped: no transform to the tracking frame 'odom'" in text
    skips = [r.getMessage() for r in caplog.records if "no tracking pose" in r.getMessage()]
    assert len(skips) == 1 and "'lidar_link'" in skips[0]

    frames = _per_frame(read_output(tmp_path / "out"))
    assert [f["stamp"] for f in frames] == [T0 + k * STEP + 1 for k in range(NUM_FRAMES) if k != MISSING_TF]
    confirm_hits = TrackerConfig().confirm_hits
    _check_tracked_sequence(frames, confirm_hits)
    assert summary.instances == 2 * (len(frames) - (confirm_hits - 1))  # published instances only

    # without tracking the same bag publishes ranks, which swap every frame (what tracking fixes)
    plain = _per_frame(read_output(_plain_run(moving_bag, tmp_path)))
    assert [int(f["instance"][A[0]]) for f in plain[:3]] == [0, 1, 0]


def _plain_run(bag: Path, tmp_path: Path) -> Path:
    runner.process_bag(bag, tmp_path / "plain", SwappingPipeline(), progress=False)
    return tmp_path / "plain"


def test_track_from_the_command_line_with_gravity_and_set(moving_bag, tmp_path):
    out = tmp_path / "cli"
    args = _args(str(moving_bag), "--out", str(out), "--gravity-frame", "odom", "--track", "--tracking-frame",
                 "/odom", "--set", "tracking.confirm_hits=2", "--set", "tracking.min_iou=0.2")
    assert runner.run(args, pipeline=SwappingPipeline()) == 0
    got = read_output(out)
    frames = _per_frame(got)
    assert len(frames) == NUM_FRAMES - 1  # the lidar_link cloud has neither a gravity nor a tracking transform
    _check_tracked_sequence(frames, confirm_hits=2)
    _, first = got[OUT["detections"]][0]
    assert first.header.frame_id == "odom"  # boxes in the gravity frame, ids from the tracker


@pytest.mark.parametrize("argv, message", [
    (["--track"], "--track needs --tracking-frame"),
    (["--tracking-frame", "odom"], "only used with --track"),
    (["--set", "tracking.confirm_hits=2"], "only used with --track"),
    (["--track", "--tracking-frame", "odom", "--set", "tracking.nonsense=1"], "expected tracking.KEY=VALUE"),
    (["--track", "--tracking-frame", "odom", "--set", "grouping.radius=1"], "expected tracking.KEY=VALUE"),
    (["--track", "--tracking-frame", "odom", "--set", "tracking.confirm_hits=0"], "tracking.confirm_hits"),
])
def test_tracking_options_are_checked(moving_bag, tmp_path, caplog, argv, message):
    pipe = SwappingPipeline()
    with caplog.at_level(logging.ERROR):
        assert runner.run(_args(str(moving_bag), "--out", str(tmp_path / "x"), *argv), pipeline=pipe) == 1
    assert message in caplog.text
    assert not (tmp_path / "x").exists() and pipe.calls == 0


def test_track_refuses_one_cloud_file(tmp_path, caplog):
    src = tmp_path / "one.npz"
    np.savez(src, xyz=np.zeros((10, 3), np.float32))
    args = _args(str(src), "--out", str(tmp_path / "one_labeled.ply"), "--track", "--tracking-frame", "odom")
    with caplog.at_level(logging.ERROR):
        assert runner.run(args, pipeline=SwappingPipeline()) == 1
    assert "--track needs a bag" in caplog.text


# ---------------------------------------------------------------------------------------- builders, processor

def test_builders_take_ids_and_colours_from_the_labels():
    seg = make_segmentation(40)  # instances 0 (points 0..9) and 1 (points 20..24)
    cloud = make_cloud(np.random.default_rng(0).uniform(-1, 1, (40, 3)).astype(np.float32))
    hdr = header("cam", T0)
    labels = InstanceLabels(np.array([17, 4]), np.array([True, True]))
    rec = np.frombuffer(encode_labeled_cloud(KIT, hdr, cloud, seg, labels).data.tobytes(), _LABELED)
    assert (rec["instance"][:10] == 17).all() and (rec["instance"][20:25] == 4).all()
    assert (rec["instance"][10:20] == -1).all() and (rec["instance"][25:] == -1).all()
    decoded = decode_cloud(encode_labeled_cloud(KIT, hdr, cloud, seg, labels))
    assert (decoded.rgb[:10] == instance_colours(np.array([17]))).all()
    assert (decoded.rgb[20:25] == instance_colours(np.array([4]))).all()
    assert [d.id for d in build_detections(KIT, hdr, seg, labels).detections] == ["17", "4"]
    markers = build_markers(KIT, hdr, seg, labels=labels).markers
    assert [(m.ns, m.id) for m in markers[1:]] == [(BOX_NS, 17), (LABEL_NS, 17), (BOX_NS, 4), (LABEL_NS, 4)]
    colour = np.array([markers[1].color.r, markers[1].color.g, markers[1].color.b]) * 255
    np.testing.assert_allclose(colour, instance_colours(np.array([17]))[0], atol=0.5)
    assert [i.id for i in build_instances(KIT, hdr, seg, 1, 40, labels).instances] == [17, 4]

    # an unpublished instance (a tentative track) is in none of the outputs; its points are -1 and grey
    only = InstanceLabels(np.array([17, 4]), np.array([False, True]))
    rec = np.frombuffer(encode_labeled_cloud(KIT, hdr, cloud, seg, only).data.tobytes(), _LABELED)
    assert (rec["instance"][:10] == -1).all() and (rec["instance"][20:25] == 4).all()
    assert (decode_cloud(encode_labeled_cloud(KIT, hdr, cloud, seg, only)).rgb[:10] == GREY).all()
    assert [d.id for d in build_detections(KIT, hdr, seg, only).detections] == ["4"]
    assert {m.id for m in build_markers(KIT, hdr, seg, labels=only).markers[1:]} == {4}
    assert [i.id for i in build_instances(KIT, hdr, seg, 1, 40, only).instances] == [4]

    # without labels: ranks, as before
    assert [d.id for d in build_detections(KIT, hdr, seg).detections] == ["0", "1"]
    assert [i.id for i in build_instances(KIT, hdr, seg, 1, 40).instances] == [0, 1]


def test_instance_labels_are_checked():
    with pytest.raises(ValueError, match="publish flags"):
        InstanceLabels(np.array([1, 2]), np.array([True]))
    with pytest.raises(ValueError, match="distinct"):
        InstanceLabels(np.array([3, 3]), np.array([True, True]))
    with pytest.raises(ValueError, match=">= 0|\\[0, 2"):
        InstanceLabels(np.array([-1, 2]), np.array([True, True]))
    InstanceLabels(np.array([-1, -1]), np.array([False, False]))  # unpublished ids are not checked
    with pytest.raises(ValueError, match="the segmentation has 2"):
        build_detections(KIT, header("cam", T0), make_segmentation(40), InstanceLabels.ranks(3))


def test_processor_tracks_and_times_it():
    pipe = SwappingPipeline()
    processor = FrameProcessor(pipe, KIT)
    tracker = Tracker(TrackerConfig(confirm_hits=1, confirm_window=1))
    msgs = [encode_cloud(KIT, header(CAMERA, T0 + k * STEP), _points(k), colour="none") for k in range(3)]
    first = processor.process(msgs[0], tracking=TrackingInput(tracker, _matrix(0)))
    assert "tracking" in first.timings_ms and first.tracking is not None and not first.tracking.skipped
    ids = dict(zip(first.published.ids.tolist(), first.published.publish.tolist()))
    assert len(ids) == 2 and all(ids.values())
    second = processor.process(msgs[1], tracking=TrackingInput(tracker, _matrix(1)))  # ranks swapped
    assert second.published.ids.tolist() == first.published.ids[::-1].tolist()

    # no pose: the tracker skips the frame; it is published without instances (never with rank ids)
    skipped = processor.process(msgs[2], tracking=TrackingInput(tracker, None))
    assert skipped.tracking is not None and skipped.tracking.skipped
    assert skipped.published.num_published == 0
    assert skipped.messages["detections"].detections == [] and skipped.messages["instances"].instances == []
    assert len(skipped.messages["markers"].markers) == 1  # DELETEALL only
    rec = np.frombuffer(skipped.messages["labeled_points"].data.tobytes(), _LABELED)
    assert (rec["instance"] == -1).all()

    # without tracking: ranks, every instance published, no tracking timing
    plain = processor.process(msgs[0])
    assert plain.tracking is None and plain.labels is None and "tracking" not in plain.timings_ms
    assert plain.published.ids.tolist() == [0, 1] and plain.published.num_published == 2
