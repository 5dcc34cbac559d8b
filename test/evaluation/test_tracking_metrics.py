"""Identity metrics of tracking (pointgroup_ros.evaluation.tracking) against hand-computed cases; no model."""
from __future__ import annotations

import numpy as np
import pytest

from pointgroup_ros.evaluation.tracking import (accumulate, format_tracking_table, frame_distances,
                                                hypothesis_ids, identity_metrics, ignore_small_objects,
                                                track_sequence)
from pointgroup_ros.pipeline import Segmentation

PTS = 10  # points per object in the synthetic frames


def _gt_frame(objects: list[int], background: int = 5) -> np.ndarray:
    """Per-point ground truth: PTS points for each object id, then `background` stuff points (-100)."""
    return np.concatenate([np.repeat(np.asarray(objects, np.int64), PTS), np.full(background, -100, np.int64)])


def _rename(gt: np.ndarray, names: dict[int, int]) -> np.ndarray:
    out = np.full(gt.shape, -1, np.int64)
    for g, h in names.items():
        out[gt == g] = h
    return out


def _metrics(frames: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    return identity_metrics({"seq": accumulate(frames)})["seq"]


def test_frame_distances_are_one_minus_iou_with_the_threshold() -> None:
    gt = np.array([3, 3, 3, 3, 7, 7, -100, -100, 7, 7])
    hyp = np.array([20, 20, 20, -1, 20, -1, -1, 5, 5, 5])
    gt_ids, hyp_ids, d = frame_distances(gt, hyp, max_distance=1.0)
    assert gt_ids.tolist() == [3, 7] and hyp_ids.tolist() == [5, 20]
    # gt 3 (4 pts) vs hyp 5 (3 pts): no overlap; vs hyp 20 (4 pts): 3 shared -> IoU 3/5
    # gt 7 (4 pts) vs hyp 5: 2 shared -> IoU 2/5; vs hyp 20: 1 shared -> IoU 1/7
    np.testing.assert_allclose(d, [[1.0, 1 - 3 / 5], [1 - 2 / 5, 1 - 1 / 7]])
    _, _, d = frame_distances(gt, hyp)  # default: IoU >= 0.5 only
    assert np.isnan(d).tolist() == [[True, False], [True, True]]
    assert d[0, 1] == pytest.approx(0.4)


def test_frame_distances_without_instances() -> None:
    g, h, d = frame_distances(np.full(4, -100), np.array([1, 1, -1, -1]))
    assert g.size == 0 and h.tolist() == [1] and d.shape == (0, 1)
    with pytest.raises(ValueError):
        frame_distances(np.zeros(3), np.zeros(4))


def test_perfect_tracker_with_renamed_ids() -> None:
    frames = []
    for f in range(20):
        objects = [0, 1, 2] if f < 10 else [1, 2, 5]  # object 0 leaves, 5 appears
        gt = _gt_frame(objects)
        frames.append((gt, _rename(gt, {0: 40, 1: 7, 2: 13, 5: 2})))
    m = _metrics(frames)
    assert m["idf1"] == pytest.approx(1.0) and m["idp"] == pytest.approx(1.0) and m["idr"] == pytest.approx(1.0)
    assert m["mota"] == pytest.approx(1.0)
    assert m["num_switches"] == 0 and m["switches_per_object_per_100_frames"] == 0.0
    assert m["num_unique_objects"] == 4 and m["num_frames"] == 20 and m["num_objects"] == 60


def test_swapped_ids_halfway() -> None:
    # two objects over 10 frames; the tracker swaps their ids from frame 6 on
    frames = []
    for f in range(10):
        gt = _gt_frame([1, 2])
        frames.append((gt, _rename(gt, {1: 10, 2: 11} if f < 6 else {1: 11, 2: 10})))
    m = _metrics(frames)
    # by hand: the best global id assignment is 1<->10, 2<->11, right for 6 of 10 frames each:
    # IDTP = 12 of 20 ground-truth and 20 hypothesis detections -> IDF1 = IDP = IDR = 0.6
    assert m["idf1"] == pytest.approx(0.6) and m["idp"] == pytest.approx(0.6) and m["idr"] == pytest.approx(0.6)
    assert m["num_switches"] == 2  # one per object, at frame 6
    assert m["mota"] == pytest.approx(1 - 2 / 20)  # no miss, no false positive, 2 switches over 20 detections
    assert m["switches_per_object_per_100_frames"] == pytest.approx(2 / 2 * 100 / 10)
    assert m["switches_per_100_object_frames"] == pytest.approx(2 * 100 / 20)


def test_missed_frame_lowers_idr_not_idp() -> None:
    frames = []
    for f in range(10):
        gt = _gt_frame([4])
        frames.append((gt, np.full(gt.shape, -1) if f == 3 else _rename(gt, {4: 9})))
    m = _metrics(frames)
    assert m["idp"] == pytest.approx(1.0)
    assert m["idr"] == pytest.approx(0.9)  # 9 of 10 ground-truth detections
    assert m["idf1"] == pytest.approx(2 * 9 / (10 + 9))
    assert m["num_misses"] == 1 and m["num_switches"] == 0 and m["mota"] == pytest.approx(0.9)


def test_iou_threshold_decides_the_match() -> None:
    gt = _gt_frame([1])  # 10 points of object 1, then 5 stuff points
    part = np.full(gt.shape, -1)
    part[:4] = 8  # covers 40 % of the object: IoU 0.4 < 0.5, no match
    m = _metrics([(gt, part)] * 5)
    assert m["num_matches"] == 0 and m["num_false_positives"] == 5 and m["num_misses"] == 5
    assert m["idf1"] == pytest.approx(0.0)
    more = np.full(gt.shape, -1)
    more[:6] = 8  # 60 %: IoU 0.6, a match
    m = _metrics([(gt, more)] * 5)
    assert m["num_matches"] == 5 and m["idf1"] == pytest.approx(1.0)
    leaky = np.full(gt.shape, -1)
    leaky[5:] = 8  # half the object plus the 5 stuff points: IoU 5/15
    assert _metrics([(gt, leaky)])["num_matches"] == 0


def test_overall_rate_over_sequences() -> None:
    a = []  # 2 objects, 10 frames, one swap -> 2 switches
    for f in range(10):
        gt = _gt_frame([1, 2])
        a.append((gt, _rename(gt, {1: 10, 2: 11} if f < 5 else {1: 11, 2: 10})))
    b = [(gt, _rename(gt, {3: 1})) for gt in [_gt_frame([3])] * 20]  # 1 object, 20 frames, perfect
    out = identity_metrics({"a": accumulate(a), "b": accumulate(b)})
    assert out["a"]["num_switches"] == 2 and out["b"]["num_switches"] == 0
    assert out["overall"]["num_switches"] == 2 and out["overall"]["num_frames"] == 30
    # total switches per 100 frames per object: 2 * 100 / (2 objects x 10 frames + 1 object x 20 frames)
    assert out["overall"]["switches_per_object_per_100_frames"] == pytest.approx(2 * 100 / 40)
    assert out["overall"]["idf1"] == pytest.approx((10 + 20) / 40)


def test_hypothesis_ids_publish_confirmed_tracks_only() -> None:
    seg_instance = np.array([0, 0, 1, -1, 2, 2])
    hyp = hypothesis_ids(seg_instance, np.array([7, 3, -1]), np.array([True, False, False]))
    assert hyp.tolist() == [7, 7, -1, -1, -1, -1]


class OraclePipeline:
    """Stands in for Pipeline: returns each frame's ground-truth thing instances, in frame order."""

    def __init__(self, seq) -> None:
        self.frames = [f.cloud(organized=False) for f in seq.frames]
        self.class_names = seq.class_names
        self.calls = 0

    def segment(self, xyz, rgb, grouping=None, postprocess=None, preprocess=None, gravity_transform=None):
        _, _, semantic, instance = self.frames[self.calls]
        self.calls += 1
        assert len(xyz) == len(instance) and gravity_transform is not None
        ids, inverse = np.unique(instance, return_inverse=True)
        inst = np.where(instance >= 0, inverse - np.count_nonzero(ids < 0), -1).astype(np.int32)
        m = int(np.count_nonzero(ids >= 0))
        order = np.argsort(inst, kind="stable")
        order = order[inst[order] >= 0]
        offsets = np.concatenate([[0], np.cumsum(np.bincount(inst[inst >= 0], minlength=m))]).astype(np.int64)
        cls = np.array([semantic[inst == k][0] for k in range(m)], np.int32)
        return Segmentation(semantic.astype(np.int32), inst, cls, np.ones(m, np.float32), order.astype(np.int64),
                            offsets, np.zeros((m, 3), np.float32), np.zeros((m, 3), np.float32),
                            tuple(self.class_names), frame="gravity")


def test_track_sequence_with_ground_truth_instances() -> None:
    from pointgroup_ros.data.camera import generate_sequence

    seq = generate_sequence(0, frames=12)
    run = track_sequence(OraclePipeline(seq), seq)
    assert len(run.update_ms) == len(run.pipeline_ms) == 12 and run.skipped == 0
    out = identity_metrics({seq.name: run.accumulator})
    m = out[seq.name]
    assert m["num_frames"] == 12 and m["num_switches"] == 0
    assert m["idp"] == pytest.approx(1.0)  # perfect instances: every published track is right
    assert m["idr"] < 1.0  # tracks are published from their third sighting on
    result = {"sequences": out, "overall": out.pop("overall"), "max_distance": 0.5}
    for r in list(result["sequences"].values()) + [result["overall"]]:
        r.update(update_ms={"mean": 1.0, "median": 1.0, "max": 1.0},
                 pipeline_ms={"mean": 2.0, "median": 2.0, "max": 2.0})
    table = format_tracking_table(result)
    assert seq.name in table and "overall" in table and "IDF1" in table


def test_small_objects_are_ignored_not_missed_and_hypotheses_on_them_not_false() -> None:
    """Object 1 has 120 points, object 2 only 30 (at the image border). With min_points 100, object 2 is gone
    from the frame; hypothesis 8 (16 of object 2's points and 14 background points: IoU 16 / 44 with object 2, no
    match, but mostly on it) goes with it; hypothesis 7 (object 1 plus 10 of object 2's points) stays."""
    gt = np.concatenate([np.full(120, 1), np.full(30, 2), np.full(20, -100)])
    hyp = np.full(gt.size, -1)
    hyp[:120] = 7
    hyp[120:130] = 7
    hyp[130:146] = 8
    hyp[150:164] = 8
    kept_gt, kept_hyp = ignore_small_objects(gt, hyp, 100)
    assert set(np.unique(kept_gt)) == {-100, -1, 1}
    assert np.array_equal(kept_gt[:120], gt[:120]) and np.all(kept_gt[120:150] == -1)
    assert set(np.unique(kept_hyp)) == {-1, 7} and np.count_nonzero(kept_hyp == 7) == 130
    # counted as a miss and a false positive without the rule; ignored with it
    without = _metrics([(gt, hyp)])
    with_rule = _metrics([ignore_small_objects(gt, hyp, 100)])
    assert (without["num_misses"], without["num_false_positives"]) == (1, 1)
    assert (with_rule["num_misses"], with_rule["num_false_positives"], with_rule["num_matches"]) == (0, 0, 1)
    # 0 or 1: the frame as it is
    assert all(np.array_equal(a, b) for a, b in zip(ignore_small_objects(gt, hyp, 0), (gt, hyp)))


def test_eval_refuses_a_bad_min_gt_points() -> None:
    from pointgroup_ros.cli import main

    assert main(["eval", "--sequences", "1", "--frames", "2", "--track", "--min-gt-points", "-1"]) == 2
    assert main(["eval", "--sequences", "1", "--frames", "2", "--min-gt-points", "100"]) == 2  # needs --track
