"""Multi-object tracking of PointGroup instances across frames, by voxel overlap in a fixed frame. ROS-free.

Per frame the tracker takes a Segmentation, the input cloud's points and the pose of the input frame in a fixed
frame (odom, map), and gives every instance a track id that stays with the object:

1. Each instance's points go into the fixed frame and into voxels (TrackerConfig.voxel_size): a set of int64 keys.
2. Every (instance, live track) pair is gated: same class (the track's majority vote), centroid within
   max_distance of one of the track's centroids (latest observation's, predicted = latest + velocity * dt, or its
   remembered voxels': a large object seen part by part), voxel IoU >= min_iou. A track offers two voxel sets
   and a pair takes the better IoU: (a) all its remembered voxels where they were, for static objects seen
   from a moving camera; (b) its latest observation's voxels moved by the predicted motion (when faster than
   moving_speed), for moving objects. The IoU of all pairs comes from one sort of the keys (voxels.voxel_iou),
   never from per-pair set operations.
3. linear_sum_assignment on cost 1 - IoU, gated pairs costing 1 (no gain), so the matching maximises the total
   IoU of allowed pairs; a match on a gated pair is discarded.
4. Matched tracks take the observation; the others count a miss; unmatched instances start tentative tracks.

Life cycle: a track is tentative until it is seen confirm_hits times within its last confirm_window frames, then
confirmed for good. A confirmed track survives max_missed frames without a match (occlusion), a tentative one
tentative_max_missed; then it is dropped. Ids come from a counter that never goes back (not even on reset()).

Each track keeps a bounded summary: its voxel keys, class votes, best score, centroid, velocity, box, counters.
Voxel update rule: the latest observation's keys merged with older ones; each key remembers the observation
that last saw it, keys not seen for voxel_memory observations are forgotten and beyond max_voxels the least
recently seen go first. So the views of a static object accumulate, while a moving object is matched through
its latest observation (set (b) above) and older keys fade out. The box follows the summary: the latest
observation's points plus the remembered voxels, or the latest observation alone while the track moves (its
match came from the moved latest voxels and its speed is above moving_speed).

A frame whose pose is missing or unusable (None, NaN, not rigid) is skipped: nothing changes, no miss is
counted, and the result says why. Only programming errors (arrays that do not fit each other) raise ValueError.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..config import ConfigError
from ..transforms import check_rigid
from .voxels import column_keys, decode_keys, group_unique, key_centers, shift_keys, voxel_iou, voxel_keys

if TYPE_CHECKING:  # the pipeline module pulls in torch; the tracker only reads a Segmentation's arrays
    from ..pipeline import Segmentation

__all__ = ["TrackerConfig", "Track", "TrackingResult", "Tracker"]

_NS = 1e-9  # seconds per stamp unit


def _check(ok: bool, key: str, what: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"tracking.{key}: {what}, got {value!r}")


@dataclass(frozen=True)
class TrackerConfig:
    """Tracking thresholds. All may change between frames (Tracker.config = new); a new voxel_size re-voxelises
    the tracks' remembered voxels (each old voxel becomes the new ones it covers)."""

    voxel_size: float = 0.05  # metres; cell of the overlap test in the fixed frame
    min_iou: float = 0.1  # voxel IoU an instance needs with a track to join it
    max_distance: float = 1.0  # metres between the instance's centroid and the track's (see the module doc)
    class_gate: bool = True  # an instance joins only tracks of its class (the track's majority vote)
    confirm_hits: int = 3  # observations (within confirm_window frames) before a track is confirmed (published)
    confirm_window: int = 5  # frames, counting the current one
    # frames a confirmed track survives unseen (occlusion, or out of view while the camera looks elsewhere); 30:
    # chosen on the tuning camera sequences (BENCHMARKS.md, tracking)
    max_missed: int = 30
    tentative_max_missed: int = 2  # frames a tentative track survives unseen
    max_voxels: int = 8192  # voxel keys kept per track
    voxel_memory: int = 30  # observations a track remembers a voxel not seen again; 0 = until max_voxels
    moving_speed: float = 0.15  # m/s; a faster track is also looked for at its predicted place
    velocity_smoothing: float = 0.5  # weight of the newest velocity measurement (exponential average)
    score_weighted_votes: bool = True  # class votes weighted by score (else one vote per observation)

    def validate(self) -> None:
        """Raise ConfigError (a ValueError) naming the first key out of range."""
        for key in ("class_gate", "score_weighted_votes"):
            _check(isinstance(getattr(self, key), (bool, np.bool_)), key, "must be true or false", getattr(self, key))
        for key in ("confirm_hits", "confirm_window", "max_missed", "tentative_max_missed", "max_voxels",
                    "voxel_memory"):
            value = getattr(self, key)
            _check(isinstance(value, (int, np.integer)) and not isinstance(value, bool), key, "must be an integer",
                   value)
        for key in ("voxel_size", "min_iou", "max_distance", "moving_speed", "velocity_smoothing"):
            value = getattr(self, key)
            _check(isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
                   and np.isfinite(value), key, "must be a finite number", value)
        _check(0.005 <= self.voxel_size <= 1.0, "voxel_size", "must be in [0.005, 1] metres", self.voxel_size)
        _check(0.0 <= self.min_iou <= 1.0, "min_iou", "must be in [0, 1]", self.min_iou)
        _check(self.max_distance > 0, "max_distance", "must be > 0 metres", self.max_distance)
        _check(self.confirm_hits >= 1, "confirm_hits", "must be >= 1", self.confirm_hits)
        _check(self.confirm_hits <= self.confirm_window <= 64, "confirm_window", "must be in [confirm_hits, 64]",
               self.confirm_window)
        _check(self.max_missed >= 0, "max_missed", "must be >= 0", self.max_missed)
        _check(0 <= self.tentative_max_missed <= self.max_missed, "tentative_max_missed",
               "must be in [0, max_missed]", self.tentative_max_missed)
        _check(self.max_voxels >= 1, "max_voxels", "must be >= 1", self.max_voxels)
        _check(self.voxel_memory >= 0, "voxel_memory", "must be >= 0 (0: until max_voxels)", self.voxel_memory)
        _check(self.moving_speed >= 0, "moving_speed", "must be >= 0 m/s", self.moving_speed)
        _check(0 < self.velocity_smoothing <= 1, "velocity_smoothing", "must be in (0, 1]", self.velocity_smoothing)

    def replace(self, **changes: Any) -> "TrackerConfig":
        """A validated copy with some keys changed."""
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Track:
    """A read-only snapshot of one track. Positions in metres in the fixed frame; stamps in ns."""

    id: int
    class_index: int  # majority of the class votes
    class_name: str
    score: float  # best score seen
    box_min: np.ndarray  # float64 (3,), axis-aligned box of the track's summary (latest points + kept voxels)
    box_max: np.ndarray
    centroid: np.ndarray  # float64 (3,), of the latest observation
    velocity: np.ndarray  # float64 (3,), m/s (smoothed centroid motion)
    hits: int  # frames with an observation
    misses: int  # consecutive frames without one (0: seen in the latest processed frame)
    age: int  # processed frames since birth, the birth frame counting 1
    first_stamp_ns: int
    last_stamp_ns: int  # stamp of the latest observation
    confirmed: bool
    moving: bool  # matched at its predicted place at speed > moving_speed; its box is then its latest view's
    num_voxels: int  # voxel keys in the summary


@dataclass(frozen=True)
class TrackingResult:
    """One frame's tracking.

    track_ids: int64 (M,), the track of each instance of the Segmentation (-1 when the frame was skipped, or for
        an instance without a finite point).
    confirmed: bool (M,), whether that track is confirmed: only these are for publishing.
    tracks: the confirmed tracks after this frame, by id (those unseen in it have misses > 0).
    skipped_reason: None, or why the frame was not used (missing or bad pose); tracks were left unchanged.
    update_ms: wall time of the update in milliseconds.
    """

    track_ids: np.ndarray
    confirmed: np.ndarray
    tracks: tuple[Track, ...]
    skipped_reason: str | None
    update_ms: float

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None


class _TrackState:
    """A live track's mutable summary (bounded: max_voxels keys, one vote per class)."""

    __slots__ = ("id", "birth_frame", "first_stamp", "last_stamp", "hits", "misses", "history", "confirmed",
                 "votes", "score", "centroid", "summary_centroid", "velocity", "measured_velocity", "moving", "keys", "key_hit",
                 "box_min", "box_max")

    def __init__(self, track_id: int, frame: int, stamp: int) -> None:
        self.id = track_id
        self.birth_frame = frame
        self.first_stamp = self.last_stamp = stamp
        self.hits = self.misses = 0
        self.history = 0  # bit i set: observed i frames ago (confirm_window bits)
        self.confirmed = False
        self.votes = np.zeros(0, np.float64)
        self.score = 0.0
        self.centroid = np.zeros(3)  # of the latest observation
        self.summary_centroid = np.zeros(3)  # of the remembered voxels
        self.velocity = np.zeros(3)
        self.measured_velocity = False
        self.moving = False  # the latest match came from the moved latest voxels at speed > moving_speed
        self.keys = np.zeros(0, np.int64)  # sorted, unique
        self.key_hit = np.zeros(0, np.int64)  # per key: the hits count of the observation that last saw it
        self.box_min = np.zeros(3)
        self.box_max = np.zeros(3)

    @property
    def class_index(self) -> int:
        return int(np.argmax(self.votes)) if self.votes.size else -1

    def displacement(self, stamp: int) -> np.ndarray:
        """Predicted motion since the latest observation, metres (stamps going back predict none)."""
        return self.velocity * max(0.0, (stamp - self.last_stamp) * _NS)

    def latest_keys(self) -> np.ndarray:
        return self.keys[self.key_hit == self.hits]


@dataclass
class _Observations:
    """This frame's instances in the fixed frame: voxel keys (CSR), centroids, boxes, finite point counts."""

    keys: np.ndarray
    offsets: np.ndarray
    centroid: np.ndarray  # (M, 3), NaN for an instance without a finite point
    box_min: np.ndarray
    box_max: np.ndarray
    count: np.ndarray  # (M,) finite points


class Tracker:
    """Gives the instances of successive frames persistent track ids (see the module docstring).

    Not thread-safe: call update() from one thread (the node's callback) or guard it.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self._config = config if config is not None else TrackerConfig()
        self._config.validate()
        self._tracks: dict[int, _TrackState] = {}
        self._next_id = 1
        self._frame = 0  # processed (not skipped) frames
        self._class_names: tuple[str, ...] = ()

    @property
    def config(self) -> TrackerConfig:
        return self._config

    @config.setter
    def config(self, new: TrackerConfig) -> None:
        new.validate()
        if new.voxel_size != self._config.voxel_size:
            for track in self._tracks.values():
                self._revoxelize(track, self._config.voxel_size, new.voxel_size)
        self._config = new

    @property
    def tracks(self) -> tuple[Track, ...]:
        """Every live track, tentative ones included, by id."""
        return tuple(self._view(t) for t in sorted(self._tracks.values(), key=lambda t: t.id))

    def reset(self) -> None:
        """Forget every track (after a jump in time or place). Ids keep counting up: none is ever reused."""
        self._tracks.clear()
        self._frame = 0

    def update(self, seg: Segmentation, xyz: np.ndarray, fixed_from_input: Any, stamp_ns: int) -> TrackingResult:
        """Track one frame. xyz: the input cloud's points (N, 3) in the input frame (NaN allowed), the cloud
        seg was computed from; fixed_from_input: 4x4 pose of the input frame in the fixed frame (maps input
        points to fixed-frame points), or None when unknown; stamp_ns: the cloud's stamp."""
        start = time.perf_counter()
        points = self._check_inputs(seg, xyz)
        m = seg.num_instances
        track_ids = np.full(m, -1, np.int64)
        confirmed = np.zeros(m, bool)
        reason, pose = self._check_pose(fixed_from_input)
        if pose is None:
            return TrackingResult(track_ids, confirmed, self._confirmed_views(), reason,
                                  (time.perf_counter() - start) * 1e3)
        stamp = int(stamp_ns)
        self._frame += 1
        self._class_names = tuple(seg.class_names)
        obs = self._observe(seg, points, pose)
        classes = np.asarray(seg.instance_class, np.int64)
        scores = np.asarray(seg.instance_score, np.float64)
        live = sorted(self._tracks.values(), key=lambda t: t.id)
        window = (1 << self._config.confirm_window) - 1

        matched_tracks: set[int] = set()
        for det, col, from_moved in self._associate(obs, classes, live, stamp):
            track = live[col]
            self._observe_track(track, obs, det, int(classes[det]), float(scores[det]), stamp, window, from_moved)
            matched_tracks.add(track.id)
            track_ids[det] = track.id
        for track in live:
            if track.id in matched_tracks:
                continue
            track.misses += 1
            track.history = (track.history << 1) & window
            limit = self._config.max_missed if track.confirmed else self._config.tentative_max_missed
            if track.misses > limit:
                del self._tracks[track.id]
        for new_det in np.flatnonzero((track_ids < 0) & (obs.count > 0)).tolist():  # score order: deterministic ids
            track = _TrackState(self._next_id, self._frame, stamp)
            self._next_id += 1
            self._tracks[track.id] = track
            self._observe_track(track, obs, new_det, int(classes[new_det]), float(scores[new_det]), stamp, window,
                                False)
            track_ids[new_det] = track.id
        for tracked in np.flatnonzero(track_ids >= 0).tolist():
            confirmed[tracked] = self._tracks[int(track_ids[tracked])].confirmed
        return TrackingResult(track_ids, confirmed, self._confirmed_views(), None,
                              (time.perf_counter() - start) * 1e3)

    # -- inputs ---------------------------------------------------------------------------------------------

    @staticmethod
    def _check_inputs(seg: Segmentation, xyz: np.ndarray) -> np.ndarray:
        points = np.asarray(xyz)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"xyz must have shape (N, 3), got {points.shape}")
        n, m = points.shape[0], seg.num_instances
        if seg.semantic.shape[0] != n:
            raise ValueError(f"xyz has {n} points but the segmentation was computed on {seg.semantic.shape[0]}")
        offsets = seg.instance_offsets
        if offsets.shape != (m + 1,) or offsets[0] != 0 or offsets[-1] != seg.instance_point_idx.shape[0] \
                or np.any(np.diff(offsets) < 0):
            raise ValueError(f"instance_offsets must be (M + 1,) = ({m + 1},) running from 0 to "
                             f"{seg.instance_point_idx.shape[0]}, got shape {offsets.shape}")
        if seg.instance_score.shape != (m,):
            raise ValueError(f"instance_score must have shape ({m},), got {seg.instance_score.shape}")
        idx = seg.instance_point_idx
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ValueError(f"instance_point_idx must index the {n} input points, got range "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        return points

    @staticmethod
    def _check_pose(fixed_from_input: Any) -> tuple[str | None, np.ndarray | None]:
        """(None, pose) for a usable pose, else (why, None): a bad pose skips the frame, it does not raise."""
        if fixed_from_input is None:
            return "no pose: the transform from the input frame to the fixed frame is missing", None
        try:
            return None, check_rigid(fixed_from_input, "fixed_from_input")
        except ValueError as exc:
            return f"bad pose: {exc}", None

    def _observe(self, seg: Segmentation, points: np.ndarray, pose: np.ndarray) -> _Observations:
        """Every instance's points in the fixed frame, at once: keys, centroids, boxes (no per-point loop)."""
        m = seg.num_instances
        counts = np.diff(seg.instance_offsets)
        label = np.repeat(np.arange(m, dtype=np.int64), counts)  # non-decreasing: CSR order
        # (3, K) rows: the transform is one BLAS call and every later pass runs over contiguous memory
        rows = np.ascontiguousarray(points[seg.instance_point_idx].T, dtype=np.float64)
        fixed = pose[:3, :3] @ rows + pose[:3, 3:4]
        keys, valid = column_keys(fixed, self._config.voxel_size)
        if not np.all(valid):
            fixed, label, keys = fixed[:, valid], label[valid], keys[valid]
        count = np.bincount(label, minlength=m)
        centroid = np.full((m, 3), np.nan)
        box_min = np.full((m, 3), np.nan)
        box_max = np.full((m, 3), np.nan)
        seen = count > 0
        if np.any(seen):
            sums = np.stack([np.bincount(label, weights=fixed[i], minlength=m) for i in range(3)], axis=1)
            centroid[seen] = sums[seen] / count[seen, None]
            starts = (np.cumsum(count) - count)[seen]
            box_min[seen] = np.minimum.reduceat(fixed, starts, axis=1).T
            box_max[seen] = np.maximum.reduceat(fixed, starts, axis=1).T
        det_keys, det_offsets = group_unique(keys, label, m)
        return _Observations(det_keys, det_offsets, centroid, box_min, box_max, count)

    # -- association ----------------------------------------------------------------------------------------

    def _associate(self, obs: _Observations, classes: np.ndarray, live: list[_TrackState],
                   stamp: int) -> list[tuple[int, int, bool]]:
        """(instance, index into live, matched at the predicted place) triples of the optimal gated matching."""
        cfg = self._config
        m, t = obs.count.shape[0], len(live)
        if m == 0 or t == 0:
            return []
        last = np.stack([track.centroid for track in live])
        centres = np.stack([last, last + np.stack([track.displacement(stamp) for track in live]),
                            np.stack([track.summary_centroid for track in live])], axis=1)  # (T, 3, 3)
        with np.errstate(invalid="ignore"):  # NaN centroids (instances without finite points) fail the gate
            dist = np.linalg.norm(obs.centroid[:, None, None, :] - centres[None], axis=3).min(axis=2)
            allowed = dist <= cfg.max_distance
        if cfg.class_gate:
            allowed &= classes[:, None] == np.array([track.class_index for track in live])[None, :]
        cols = np.flatnonzero(allowed.any(axis=0))
        if cols.size == 0:
            return []
        # only tracks that pass the cheap gates take part in the overlap test: their remembered voxels (a),
        # and where it differs, their latest observation's voxels moved by the prediction (b); one IoU call
        groups = [live[c].keys for c in cols]
        moved_cols: list[int] = []
        for c in cols:
            moved = self._moved_latest_keys(live[c], stamp)
            if moved is not None:
                groups.append(moved)
                moved_cols.append(int(c))
        offsets = np.zeros(len(groups) + 1, np.int64)
        np.cumsum([g.shape[0] for g in groups], out=offsets[1:])
        both = voxel_iou(obs.keys, obs.offsets, np.concatenate(groups), offsets)
        iou = np.zeros((m, t))
        iou[:, cols] = both[:, :cols.size]
        iou_moved = np.zeros((m, t))
        iou_moved[:, moved_cols] = both[:, cols.size:]
        from_moved = iou_moved > iou
        iou = np.maximum(iou, iou_moved)
        allowed &= (iou >= cfg.min_iou) & (iou > 0)
        rows = np.flatnonzero(allowed.any(axis=1))
        cols = np.flatnonzero(allowed.any(axis=0))
        if rows.size == 0:
            return []
        sub_allowed = allowed[np.ix_(rows, cols)]
        # gated pairs cost 1 (= IoU 0, no gain): the solver maximises the total IoU of allowed pairs without
        # being pushed into extra, poorer matches to avoid a large penalty
        cost = np.where(sub_allowed, 1.0 - iou[np.ix_(rows, cols)], 1.0)
        r, c = linear_sum_assignment(cost)
        keep = sub_allowed[r, c]
        return [(int(rows[i]), int(cols[j]), bool(from_moved[rows[i], cols[j]])) for i, j in zip(r[keep], c[keep])]

    def _moved_latest_keys(self, track: _TrackState, stamp: int) -> np.ndarray | None:
        """The latest observation's keys moved by the predicted displacement (whole voxels; none below
        moving_speed), or None where that is the remembered set itself."""
        latest = track.latest_keys()
        shift = np.zeros(3, np.int64)
        if np.linalg.norm(track.velocity) > self._config.moving_speed:
            shift = np.rint(track.displacement(stamp) / self._config.voxel_size).astype(np.int64)
        if not np.any(shift):
            return latest if latest.shape[0] < track.keys.shape[0] else None
        return shift_keys(latest, shift)

    # -- track summary --------------------------------------------------------------------------------------

    def _observe_track(self, track: _TrackState, obs: _Observations, det: int, cls: int, score: float, stamp: int,
                       window: int, from_moved: bool) -> None:
        """Fold instance det of this frame into the track's summary."""
        cfg = self._config
        centroid = obs.centroid[det]
        dt = (stamp - track.last_stamp) * _NS
        if track.hits > 0 and dt > 0:
            measured = (centroid - track.centroid) / dt
            if track.measured_velocity:
                a = cfg.velocity_smoothing
                track.velocity = a * measured + (1.0 - a) * track.velocity
            else:
                track.velocity = measured
                track.measured_velocity = True
        track.hits += 1
        track.misses = 0
        track.history = ((track.history << 1) | 1) & window
        track.confirmed = track.confirmed or bin(track.history).count("1") >= cfg.confirm_hits
        track.centroid = centroid.copy()
        track.moving = from_moved and bool(np.linalg.norm(track.velocity) > cfg.moving_speed)
        track.last_stamp = stamp
        track.score = max(track.score, score)
        if cls >= track.votes.shape[0]:
            track.votes = np.concatenate([track.votes, np.zeros(cls + 1 - track.votes.shape[0])])
        # a floor keeps a zero score from casting no vote at all (argmax of zeros would pick class 0)
        track.votes[cls] += max(score, 1e-3) if cfg.score_weighted_votes else 1.0
        self._merge_keys(track, obs.keys[obs.offsets[det]:obs.offsets[det + 1]], obs.box_min[det], obs.box_max[det])

    def _merge_keys(self, track: _TrackState, new: np.ndarray, box_min: np.ndarray, box_max: np.ndarray) -> None:
        """The latest keys + remembered older ones (seen within voxel_memory observations), at most max_voxels."""
        cfg = self._config
        old, old_hit = track.keys, track.key_hit
        keep = ~np.isin(old, new, assume_unique=True)
        if cfg.voxel_memory > 0:
            keep &= old_hit > track.hits - cfg.voxel_memory
        if new.shape[0] >= cfg.max_voxels:  # the latest view alone fills the cap: an even spread of it
            new = new[np.unique(np.linspace(0, new.shape[0] - 1, cfg.max_voxels).astype(np.int64))]
            keep[:] = False
        spare = cfg.max_voxels - new.shape[0]
        if np.count_nonzero(keep) > spare:  # the most recently seen older keys first
            kept = np.flatnonzero(keep)
            newest = kept[np.argsort(-old_hit[kept], kind="stable")[:spare]]
            keep[:] = False
            keep[newest] = True
        keys = np.concatenate([new, old[keep]])
        key_hit = np.concatenate([np.full(new.shape[0], track.hits, np.int64), old_hit[keep]])
        order = np.argsort(keys, kind="stable")
        track.keys, track.key_hit = keys[order], key_hit[order]
        track.summary_centroid = key_centers(track.keys, cfg.voxel_size).mean(axis=0)
        track.box_min, track.box_max = box_min.copy(), box_max.copy()
        if np.any(keep) and not track.moving:  # a static track's box covers the remembered voxels (centres)
            centres = key_centers(old[keep], cfg.voxel_size)
            track.box_min = np.minimum(track.box_min, centres.min(axis=0))
            track.box_max = np.maximum(track.box_max, centres.max(axis=0))

    @staticmethod
    def _revoxelize(track: _TrackState, old_size: float, new_size: float) -> None:
        """Re-key the remembered voxels at new_size: every new cell an old voxel covers (sampled on a grid
        finer than new_size inside it), each keeping the most recent observation among its old voxels."""
        if track.keys.size == 0:
            return
        per_axis = int(math.ceil(old_size / new_size)) + 1 if new_size < old_size else 1
        steps = (np.arange(per_axis) + 0.5) / per_axis  # fractions of the old voxel
        sub = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3) * old_size
        corners = decode_keys(track.keys) * old_size
        samples = (corners[:, None, :] + sub[None, :, :]).reshape(-1, 3)
        keys, valid = voxel_keys(samples, new_size)
        hits = np.repeat(track.key_hit, sub.shape[0])
        keys, hits = keys[valid], hits[valid]
        order = np.lexsort((-hits, keys))  # by key, the most recent observation first
        keys, hits = keys[order], hits[order]
        first = np.ones(keys.shape[0], bool)
        first[1:] = keys[1:] != keys[:-1]
        track.keys, track.key_hit = keys[first], hits[first]  # max_voxels applies again at the next merge

    # -- views ----------------------------------------------------------------------------------------------

    def _view(self, track: _TrackState) -> Track:
        cls = track.class_index
        name = self._class_names[cls] if 0 <= cls < len(self._class_names) else str(cls)
        return Track(id=track.id, class_index=cls, class_name=name, score=track.score,
                     box_min=_frozen(track.box_min), box_max=_frozen(track.box_max),
                     centroid=_frozen(track.centroid), velocity=_frozen(track.velocity), hits=track.hits,
                     misses=track.misses, age=self._frame - track.birth_frame + 1,
                     first_stamp_ns=track.first_stamp, last_stamp_ns=track.last_stamp, confirmed=track.confirmed,
                     moving=track.moving, num_voxels=int(track.keys.shape[0]))

    def _confirmed_views(self) -> tuple[Track, ...]:
        return tuple(self._view(t) for t in sorted(self._tracks.values(), key=lambda t: t.id) if t.confirmed)

