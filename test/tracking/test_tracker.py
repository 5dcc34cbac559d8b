"""The instance tracker: association in the fixed frame, track life cycle, moving objects, bad poses, the
vectorised voxel IoU against a plain set computation, bounded summaries. Segmentations and clouds built by hand."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pytest

from pointgroup_ros.config import ConfigError
from pointgroup_ros.pipeline import Segmentation
from pointgroup_ros.tracking import Track, Tracker, TrackerConfig, TrackingResult
from pointgroup_ros.tracking.voxels import decode_keys, encode_cells, group_unique, shift_keys, voxel_iou, voxel_keys

NAMES = ("floor", "wall", "chair", "table", "cabinet")
CHAIR, TABLE, CABINET = 2, 3, 4
S = 1_000_000_000
T0 = 1_700_000_000 * S  # realistic ROS 2 stamps
DT = S // 10  # 10 Hz


def stamp(k: int) -> int:
    return T0 + k * DT


def box_points(centre: Sequence[float] | np.ndarray, size: Sequence[float] = (0.4, 0.4, 0.4),
               spacing: float = 0.04) -> np.ndarray:
    """A filled grid of points (float64 (n, 3)) in an axis-aligned box."""
    axes = [np.arange(-s / 2, s / 2 + 1e-9, spacing) for s in size]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid + np.asarray(centre, np.float64)


def make_seg(groups: Sequence[np.ndarray], classes: Sequence[int], scores: Sequence[float] | np.ndarray,
             n: int) -> Segmentation:
    """A Segmentation of n points whose instances are the given point-index arrays, sorted by descending score
    as the pipeline sorts them."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    groups = [np.unique(np.asarray(groups[i], np.int64)) for i in order]
    counts = np.array([g.shape[0] for g in groups], np.int64)
    offsets = np.zeros(len(groups) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    idx = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    cls = np.asarray(classes, np.int32)[order]
    semantic = np.full(n, -1, np.int32)
    instance = np.full(n, -1, np.int32)
    for m in range(len(groups) - 1, -1, -1):  # the best-scoring instance wins overlapping points
        semantic[groups[m]] = cls[m]
        instance[groups[m]] = m
    box_min = np.array([[0.0] * 3] * len(groups), np.float32).reshape(-1, 3)
    return Segmentation(semantic=semantic, instance=instance, instance_class=cls,
                        instance_score=np.asarray(scores, np.float32)[order], instance_point_idx=idx,
                        instance_offsets=offsets, box_min=box_min, box_max=box_min.copy(), class_names=NAMES)


def pose(yaw: float = 0.0, translation: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    m[:3, 3] = translation
    return m


def frame(objects: Sequence[tuple[np.ndarray, int, float]], fixed_from_input: np.ndarray | None = None,
          nan_points: int = 7) -> tuple[Segmentation, np.ndarray]:
    """A cloud (in the input frame of fixed_from_input, identity when None) of the objects (points in the fixed
    frame, class, score) plus some NaN points, and its Segmentation (one instance per object)."""
    parts, groups, start = [], [], 0
    for points, _, _ in objects:
        parts.append(points)
        groups.append(np.arange(start, start + points.shape[0]))
        start += points.shape[0]
    xyz = np.concatenate(parts + [np.full((nan_points, 3), np.nan)]) if parts else np.full((nan_points, 3), np.nan)
    if fixed_from_input is not None:  # express the fixed-frame points in the input frame
        inv = np.linalg.inv(fixed_from_input)
        xyz = xyz @ inv[:3, :3].T + inv[:3, 3]
    seg = make_seg(groups, [o[1] for o in objects], [o[2] for o in objects], xyz.shape[0])
    return seg, xyz.astype(np.float32)


def ids_by_class(result: TrackingResult, seg: Segmentation) -> dict[int, int]:
    return {int(c): int(t) for c, t in zip(seg.instance_class, result.track_ids)}


def live(tracker: Tracker) -> dict[int, Track]:
    return {t.id: t for t in tracker.tracks}


CHAIR_PTS = box_points((1.0, 0.0, 0.4))
TABLE_PTS = box_points((2.5, 1.0, 0.4), (0.8, 0.6, 0.4))


# -- association -------------------------------------------------------------------------------------------------

def test_two_objects_keep_ids_in_shuffled_score_order() -> None:
    tracker = Tracker()
    rng = np.random.default_rng(0)
    seen: dict[int, int] = {}
    for k in range(8):
        s = rng.permutation([0.9, 0.5])  # which object ranks first changes from frame to frame
        seg, xyz = frame([(CHAIR_PTS, CHAIR, s[0]), (TABLE_PTS, TABLE, s[1])])
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
        assert result.skipped_reason is None and not result.skipped
        assert result.track_ids.dtype == np.int64 and result.track_ids.shape == (2,)
        ids = ids_by_class(result, seg)
        if k == 0:
            seen = ids
            assert len(set(ids.values())) == 2
        assert ids == seen, f"frame {k}"
        assert result.confirmed.tolist() == [k >= 2, k >= 2]  # confirm_hits = 3
        assert result.update_ms >= 0
    tracks = {t.id: t for t in result.tracks}
    assert set(tracks) == set(seen.values())
    chair = tracks[seen[CHAIR]]
    assert (chair.class_index, chair.class_name, chair.hits, chair.age, chair.misses) == (CHAIR, "chair", 8, 8, 0)
    assert chair.first_stamp_ns == stamp(0) and chair.last_stamp_ns == stamp(7)
    assert chair.score == pytest.approx(0.9)
    np.testing.assert_allclose(chair.box_min, CHAIR_PTS.min(axis=0), atol=0.05)
    np.testing.assert_allclose(chair.box_max, CHAIR_PTS.max(axis=0), atol=0.05)
    np.testing.assert_allclose(chair.centroid, CHAIR_PTS.mean(axis=0), atol=1e-6)
    with pytest.raises(ValueError):
        chair.box_min[0] = 5.0  # a read-only view


def test_moving_camera_keeps_ids_because_association_is_in_the_fixed_frame() -> None:
    tracker, naive = Tracker(), Tracker()
    first: dict[int, int] = {}
    naive_ids: list[dict[int, int]] = []
    for k in range(12):
        cam = pose(yaw=0.15 * k, translation=(-0.3 * k, 0.2 * k, 1.2))  # the camera drives and turns
        seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.8), (TABLE_PTS, TABLE, 0.7)], cam)
        result = tracker.update(seg, xyz, cam, stamp(k))
        ids = ids_by_class(result, seg)
        first = first or ids
        assert ids == first, f"frame {k}"
        # the same frames with the input frame taken as fixed: the objects jump, ids do not survive
        naive_ids.append(ids_by_class(naive.update(seg, xyz, np.eye(4), stamp(k)), seg))
    assert len(result.tracks) == 2
    assert len({d[CHAIR] for d in naive_ids}) > 1
    chair = next(t for t in result.tracks if t.class_index == CHAIR)
    np.testing.assert_allclose(chair.centroid, CHAIR_PTS.mean(axis=0), atol=1e-4)  # fixed-frame position
    assert np.linalg.norm(chair.velocity) < 1e-3


# -- life cycle --------------------------------------------------------------------------------------------------

def test_birth_tentative_until_confirm_hits() -> None:
    tracker = Tracker(TrackerConfig(confirm_hits=4, confirm_window=6))
    for k in range(6):
        seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9)])
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
        assert result.track_ids.tolist() == [1]  # ids start at 1 and the tentative track keeps its id
        assert result.confirmed.tolist() == [k >= 3]
        assert [t.id for t in result.tracks] == ([1] if k >= 3 else [])
        assert live(tracker)[1].confirmed == (k >= 3)


def test_one_frame_false_positive_is_never_confirmed() -> None:
    cfg = TrackerConfig()
    tracker = Tracker(cfg)
    ghost = box_points((-1.0, -1.0, 0.3), (0.3, 0.3, 0.3))
    ghost_id = None
    for k in range(10):
        objects = [(CHAIR_PTS, CHAIR, 0.9)] + ([(ghost, CABINET, 0.95)] if k == 3 else [])
        seg, xyz = frame(objects)
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
        if k == 3:
            ghost_id = ids_by_class(result, seg)[CABINET]
            assert not result.confirmed[list(seg.instance_class).index(CABINET)]
        assert all(t.class_index == CHAIR for t in result.tracks)
        if ghost_id is not None:
            # kept (unconfirmed) through tentative_max_missed misses, then dropped
            assert (ghost_id in live(tracker)) == (k <= 3 + cfg.tentative_max_missed)


def test_flickering_object_confirms_within_the_window() -> None:
    tracker = Tracker(TrackerConfig(confirm_hits=3, confirm_window=5, tentative_max_missed=1))
    seen = [True, False, True, False, True]  # 3 of 5 frames
    for k, present in enumerate(seen):
        seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9)] if present else [])
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
    assert result.track_ids.tolist() == [1] and result.confirmed.tolist() == [True]


def test_occlusion_survives_short_gaps_and_new_id_after_max_missed() -> None:
    tracker = Tracker(TrackerConfig(max_missed=6))
    k = 0

    def step(present: bool) -> TrackingResult:
        nonlocal k
        seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9)] if present else [])
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
        k += 1
        return result

    for _ in range(4):
        result = step(True)
    chair_id = int(result.track_ids[0])
    for gap in range(1, 7):  # hidden for max_missed frames: still there, still published as a track
        result = step(False)
        assert [(t.id, t.misses) for t in result.tracks] == [(chair_id, gap)]
    result = step(True)
    assert result.track_ids.tolist() == [chair_id] and result.confirmed.tolist() == [True]
    assert live(tracker)[chair_id].misses == 0
    for _ in range(7):  # one miss more than max_missed: dropped
        result = step(False)
    assert result.tracks == () and tracker.tracks == ()
    result = step(True)
    assert int(result.track_ids[0]) > chair_id and not result.confirmed[0]  # a new, tentative track


def test_moving_object_keeps_its_id() -> None:
    tracker = Tracker()
    ids = set()
    for k in range(30):  # 10 cm per frame at 10 Hz: 1 m/s
        seg, xyz = frame([(CHAIR_PTS + [0.1 * k, 0.0, 0.0], CHAIR, 0.9), (TABLE_PTS, TABLE, 0.8)])
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
        ids.add(ids_by_class(result, seg)[CHAIR])
    assert len(ids) == 1
    chair = next(t for t in result.tracks if t.class_index == CHAIR)
    np.testing.assert_allclose(chair.velocity, [1.0, 0.0, 0.0], atol=1e-3)
    assert chair.moving
    np.testing.assert_allclose(chair.box_min, CHAIR_PTS.min(axis=0) + [2.9, 0, 0], atol=1e-6)  # follows it
    np.testing.assert_allclose(chair.box_max, CHAIR_PTS.max(axis=0) + [2.9, 0, 0], atol=1e-6)
    table = next(t for t in result.tracks if t.class_index == TABLE)
    assert not table.moving and np.linalg.norm(table.velocity) < 1e-6


def test_moving_object_is_matched_at_its_predicted_place() -> None:
    # at 10 cm per frame consecutive observations of the 40 cm box overlap with voxel IoU ~0.6 only; once the
    # track knows its velocity, its voxels moved by the prediction overlap the next observation almost fully
    a, b = (voxel_keys(CHAIR_PTS + [0.0, 0.1 * k, 0.0], 0.05)[0] for k in range(2))
    raw = voxel_iou(*group_unique(a, np.zeros(len(a)), 1), *group_unique(b, np.zeros(len(b)), 1))
    assert raw[0, 0] < 0.7
    tracker = Tracker()
    ids = set()
    for k in range(20):
        if k == 5:
            tracker.config = tracker.config.replace(min_iou=0.75)
        seg, xyz = frame([(CHAIR_PTS + [0.0, 0.1 * k, 0.0], CHAIR, 0.9)])
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
        ids.add(int(result.track_ids[0]))
    assert ids == {1} and result.confirmed.tolist() == [True]


def test_large_object_seen_part_by_part_is_recognised_from_its_remembered_views() -> None:
    # a camera pans along a 2 m sofa (its visible part slides), looks away, and comes back to the first end:
    # that view does not overlap the latest one at all, but the track remembers the voxels of the whole pan
    sofa = box_points((0.0, 2.0, 0.4), (2.0, 0.8, 0.03), spacing=0.03)
    tracker = Tracker()
    views = [x for x in np.linspace(-0.7, 0.7, 15)] + [None] * 4 + [-0.7] * 3
    ids = []
    for k, x in enumerate(views):
        part = [] if x is None else [(sofa[np.abs(sofa[:, 0] - x) < 0.3], CABINET, 0.8)]
        seg, xyz = frame(part)
        result = tracker.update(seg, xyz, np.eye(4), stamp(k))
        ids.extend(result.track_ids.tolist())
    assert set(ids) == {1} and result.confirmed.all()
    (track,) = tracker.tracks
    one_view = np.unique(voxel_keys(sofa[np.abs(sofa[:, 0] + 0.7) < 0.3], 0.05)[0]).size
    whole = np.unique(voxel_keys(sofa, 0.05)[0]).size
    assert track.num_voxels > 0.9 * whole > 2 * one_view  # the whole pan, not the latest view


def test_touching_objects_of_different_classes_do_not_swap() -> None:
    tracker = Tracker()
    rng = np.random.default_rng(3)
    chair = box_points((0.0, 0.0, 0.3), (0.4, 0.4, 0.4))
    cabinet = box_points((0.44, 0.0, 0.3), (0.4, 0.4, 0.4))  # the faces 4 cm apart: one voxel
    both = np.concatenate([chair, cabinet])
    n_chair = chair.shape[0]
    first: dict[int, int] = {}
    for k in range(20):
        # masks bleed across the contact, differently each frame
        bleed_c = n_chair + np.flatnonzero((cabinet[:, 0] < 0.36) & (rng.random(cabinet.shape[0]) < 0.5))
        bleed_k = np.flatnonzero((chair[:, 0] > 0.08) & (rng.random(n_chair) < 0.5))
        groups = [np.concatenate([np.arange(n_chair), bleed_c]), np.concatenate([n_chair + np.arange(len(cabinet)),
                                                                                 bleed_k])]
        s = rng.permutation([0.9, 0.8])
        seg = make_seg(groups, [CHAIR, CABINET], s, both.shape[0])
        result = tracker.update(seg, both.astype(np.float32), np.eye(4), stamp(k))
        ids = ids_by_class(result, seg)
        first = first or ids
        assert ids == first, f"frame {k}"
    assert {t.class_index for t in result.tracks} == {CHAIR, CABINET}


def test_class_gate_keeps_another_class_out_of_a_track() -> None:
    tracker = Tracker()
    for k in range(3):
        seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9)])
        chair_id = int(tracker.update(seg, xyz, np.eye(4), stamp(k)).track_ids[0])
    seg, xyz = frame([(CHAIR_PTS, TABLE, 0.95)])  # same points, another class
    result = tracker.update(seg, xyz, np.eye(4), stamp(3))
    assert int(result.track_ids[0]) != chair_id and not result.confirmed[0]
    assert live(tracker)[chair_id].misses == 1 and live(tracker)[chair_id].class_index == CHAIR
    # without the gate the same detection continues the track
    tracker2 = Tracker(TrackerConfig(class_gate=False))
    for k in range(3):
        seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9)])
        chair_id = int(tracker2.update(seg, xyz, np.eye(4), stamp(k)).track_ids[0])
    seg, xyz = frame([(CHAIR_PTS, TABLE, 0.5)])
    assert int(tracker2.update(seg, xyz, np.eye(4), stamp(3)).track_ids[0]) == chair_id
    assert live(tracker2)[chair_id].class_index == CHAIR  # majority vote: 3 chair votes against one table


def test_distance_gate() -> None:
    # a big object seen in two parts far apart from frame to frame: overlap is not enough beyond max_distance
    long_box = box_points((0.0, 0.0, 0.2), (3.0, 0.2, 0.2))
    left, right = long_box[long_box[:, 0] < 0.4], long_box[long_box[:, 0] > -0.4]
    for max_distance, same in ((0.5, False), (2.0, True)):
        tracker = Tracker(TrackerConfig(max_distance=max_distance, min_iou=0.05))
        seg, xyz = frame([(left, TABLE, 0.9)])
        a = int(tracker.update(seg, xyz, np.eye(4), stamp(0)).track_ids[0])
        seg, xyz = frame([(right, TABLE, 0.9)])
        b = int(tracker.update(seg, xyz, np.eye(4), stamp(1)).track_ids[0])
        assert (a == b) == same


# -- bad poses ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, words", [
    (np.full((4, 4), np.nan), "non-finite"),
    (np.diag([2.0, 2.0, 2.0, 1.0]), "not rigid"),
    (None, "no pose"),
    (np.eye(3), "4x4"),
    (np.diag([1.0, 1.0, -1.0, 1.0]), "reflection"),
])
def test_bad_pose_skips_the_frame_and_tracks_survive(bad: np.ndarray | None, words: str) -> None:
    tracker = Tracker(TrackerConfig(max_missed=2))
    objects = [(CHAIR_PTS, CHAIR, 0.9), (TABLE_PTS, TABLE, 0.8)]
    for k in range(3):
        seg, xyz = frame(objects)
        ids = ids_by_class(tracker.update(seg, xyz, np.eye(4), stamp(k)), seg)
    seg, xyz = frame(objects[:1])  # the table is missed once
    tracker.update(seg, xyz, np.eye(4), stamp(3))
    before = tracker.tracks
    assert {t.id: t.misses for t in before} == {ids[CHAIR]: 0, ids[TABLE]: 1}
    for k in range(4, 10):  # more bad frames than max_missed: nobody is dropped, no miss is counted
        seg, xyz = frame(objects)
        result = tracker.update(seg, xyz, bad, stamp(k))
        assert result.skipped and words in str(result.skipped_reason)
        assert result.track_ids.tolist() == [-1, -1] and result.confirmed.tolist() == [False, False]
        assert [t.id for t in result.tracks] == sorted(ids.values())
    after = tracker.tracks
    assert [(t.id, t.hits, t.misses, t.age, t.last_stamp_ns) for t in after] == \
        [(t.id, t.hits, t.misses, t.age, t.last_stamp_ns) for t in before]
    seg, xyz = frame(objects)
    result = tracker.update(seg, xyz, np.eye(4), stamp(10))
    assert result.skipped_reason is None
    assert ids_by_class(result, seg) == ids and result.confirmed.all()


def test_programming_errors_raise() -> None:
    tracker = Tracker()
    seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9)])
    with pytest.raises(ValueError, match="points"):
        tracker.update(seg, xyz[:-1], np.eye(4), stamp(0))  # not the cloud seg came from
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        tracker.update(seg, xyz[:, :2], np.eye(4), stamp(0))
    broken = make_seg([np.array([0, 1, 2])], [CHAIR], [0.9], xyz.shape[0])
    broken.instance_point_idx[2] = xyz.shape[0] + 5
    with pytest.raises(ValueError, match="instance_point_idx"):
        tracker.update(broken, xyz, np.eye(4), stamp(0))
    assert tracker.tracks == ()


def test_empty_frames_and_instances_without_finite_points() -> None:
    tracker = Tracker()
    seg, xyz = frame([])
    result = tracker.update(seg, xyz, np.eye(4), stamp(0))
    assert result.track_ids.shape == (0,) and result.tracks == ()
    xyz = np.full((5, 3), np.nan, np.float32)
    seg = make_seg([np.arange(5)], [CHAIR], [0.9], 5)
    result = tracker.update(seg, xyz, np.eye(4), stamp(1))
    assert result.track_ids.tolist() == [-1] and tracker.tracks == ()


# -- configuration -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, key", [
    ({"voxel_size": 0.0}, "tracking.voxel_size"), ({"min_iou": 1.5}, "tracking.min_iou"),
    ({"confirm_hits": 0}, "tracking.confirm_hits"), ({"confirm_window": 2}, "tracking.confirm_window"),
    ({"tentative_max_missed": 40}, "tracking.tentative_max_missed"), ({"max_voxels": 0}, "tracking.max_voxels"),
    ({"max_distance": float("nan")}, "tracking.max_distance"), ({"class_gate": 1}, "tracking.class_gate"),
    ({"max_missed": 2.5}, "tracking.max_missed"), ({"velocity_smoothing": 0.0}, "tracking.velocity_smoothing"),
])
def test_config_validation_names_the_key(changes: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        TrackerConfig().replace(**changes)
    with pytest.raises(ValueError, match=key):
        Tracker(TrackerConfig(**changes))
    tracker = Tracker()
    with pytest.raises(ValueError, match=key):
        tracker.config = TrackerConfig(**changes)
    assert tracker.config == TrackerConfig()


def test_config_replaced_between_frames_and_reset() -> None:
    tracker = Tracker()
    for k in range(12):
        if k == 4:
            tracker.config = tracker.config.replace(voxel_size=0.08)  # tracks' voxels re-keyed, coarser
        if k == 8:
            tracker.config = tracker.config.replace(voxel_size=0.05, min_iou=0.3)  # and finer again
        seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9), (TABLE_PTS, TABLE, 0.8)])
        ids = ids_by_class(tracker.update(seg, xyz, np.eye(4), stamp(k)), seg)
        assert ids == {CHAIR: 1, TABLE: 2}
    tracker.reset()
    assert tracker.tracks == ()
    seg, xyz = frame([(CHAIR_PTS, CHAIR, 0.9)])
    assert tracker.update(seg, xyz, np.eye(4), stamp(20)).track_ids.tolist() == [3]  # ids are never reused


# -- voxels and the IoU matrix -----------------------------------------------------------------------------------

def test_keys_round_trip_and_shift() -> None:
    rng = np.random.default_rng(1)
    cells = rng.integers(-(1 << 20), 1 << 20, (1000, 3))
    keys = encode_cells(cells)
    assert np.all(keys >= 0) and np.unique(keys).size == np.unique(cells, axis=0).shape[0]
    np.testing.assert_array_equal(decode_keys(keys), cells)
    small = np.unique(encode_cells(rng.integers(-50, 50, (200, 3))))
    np.testing.assert_array_equal(shift_keys(small, [1, -2, 3]), np.sort(encode_cells(decode_keys(small) + [1, -2, 3])))
    xyz = np.array([[0.01, -0.01, 0.07], [np.nan, 0, 0], [1e9, 0, 0]])
    k, valid = voxel_keys(xyz, 0.05)
    assert valid.tolist() == [True, False, False]
    np.testing.assert_array_equal(decode_keys(k[:1]), [[0, -1, 1]])


def set_iou(a: list[set[int]], b: list[set[int]]) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = len(x | y)
            out[i, j] = len(x & y) / union if union else 0.0
    return out


@pytest.mark.parametrize("seed", range(12))
def test_iou_matrix_matches_a_set_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)

    def groups(count: int) -> tuple[list[set[int]], np.ndarray, np.ndarray]:
        sets: list[set[int]] = []
        raw, labels = [], []
        for g in range(count):
            size = int(rng.integers(0, 60)) if rng.random() > 0.15 else 0  # some empty groups
            values = encode_cells(rng.integers(-4, 4, (size, 3)))  # small range: many shared and repeated keys
            sets.append(set(values.tolist()))
            raw.append(values)
            labels.append(np.full(size, g))
        keys, offsets = group_unique(np.concatenate(raw), np.concatenate(labels), count)
        return sets, keys, offsets

    sa, ka, oa = groups(int(rng.integers(0, 9)))
    sb, kb, ob = groups(int(rng.integers(0, 9)))
    for g, s in enumerate(sa):  # group_unique: each group's unique keys, sorted
        assert ka[oa[g]:oa[g + 1]].tolist() == sorted(s)
    np.testing.assert_allclose(voxel_iou(ka, oa, kb, ob), set_iou(sa, sb), atol=1e-12)
    np.testing.assert_allclose(voxel_iou(kb, ob, ka, oa), set_iou(sb, sa), atol=1e-12)


# -- bounded summary ---------------------------------------------------------------------------------------------

def test_summary_stays_bounded_over_200_frames_of_a_static_object() -> None:
    rng = np.random.default_rng(7)
    sofa = box_points((0.0, 2.0, 0.4), (2.0, 0.9, 0.03), spacing=0.03)  # a seat: a surface, as sensors see it
    cfg = TrackerConfig(max_voxels=1500)
    tracker = Tracker(cfg)
    counts, ids = [], set()
    for k in range(200):
        cam = pose(yaw=0.02 * k, translation=(0.0, -1.0 + 0.005 * k, 1.0))
        # a partial view that sweeps along the sofa, with sensor noise: new voxels every frame
        view = sofa[np.abs(sofa[:, 0] - math.sin(k / 15.0)) < 0.6]
        view = view + rng.normal(0.0, 0.01, view.shape)
        seg, xyz = frame([(view, CABINET, float(rng.uniform(0.5, 0.9)))], cam)
        result = tracker.update(seg, xyz, cam, stamp(k))
        ids.add(int(result.track_ids[0]))
        (track,) = tracker.tracks
        counts.append(track.num_voxels)
    assert len(ids) == 1
    assert max(counts) <= cfg.max_voxels
    assert max(counts) == cfg.max_voxels  # the views did accumulate up to the cap
    assert track.hits == 200 and track.age == 200
    # the same with the defaults: the object's voxels, however long it is watched
    tracker = Tracker()
    for k in range(200):
        seg, xyz = frame([(CHAIR_PTS + rng.normal(0.0, 0.005, CHAIR_PTS.shape), CHAIR, 0.9)])
        tracker.update(seg, xyz, np.eye(4), stamp(k))
    (track,) = tracker.tracks
    assert track.num_voxels <= 11 ** 3 and np.linalg.norm(track.velocity) < TrackerConfig().moving_speed

