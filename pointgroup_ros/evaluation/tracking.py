"""Identity metrics for instance tracking on camera sequences (CLEAR MOT and IDF1, computed with motmetrics).

Every frame, the ground-truth thing instances (the room's instance ids, stable over a sequence; instance >= 0)
and the published hypotheses (the confirmed track ids) are point sets over the frame's valid points. Their
distance is 1 - IoU of the point sets; a pair farther than max_distance (default 0.5, i.e. IoU < 0.5) cannot
match. motmetrics then matches frame by frame (CLEAR MOT: MOTA, identity switches) and over the whole sequence
(IDF1, IDP, IDR: the best one-to-one assignment of hypothesis ids to ground-truth ids).

Functions:
    frame_distances(gt, hyp, max_distance): the motmetrics distance matrix of one frame, from per-point ids
        (sparse intersection counts with one np.bincount, no per-point loop).
    accumulate(frames, max_distance): a motmetrics MOTAccumulator over (gt, hyp) per-point id pairs.
    identity_metrics(accumulators, frames): per sequence and overall IDF1, IDP, IDR, MOTA, switches, ...
    track_sequence(pipe, seq, ...): run the pipeline and a Tracker over a camera sequence, in the odom frame.
    evaluate_tracking(pipe, seeds, frames, ...): the whole evaluation of `pointgroup-ros eval --track`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

if TYPE_CHECKING:  # motmetrics (no type information) is imported where it is used: accumulators are Any
    from ..config import GroupingConfig, PostprocessConfig, PreprocessConfig
    from ..data.camera import CameraConfig, Sequence
    from ..pipeline import Pipeline
    from ..tracking import TrackerConfig

__all__ = ["MAX_DISTANCE", "METRICS", "frame_distances", "ignore_small_objects", "accumulate", "identity_metrics",
           "SequenceTracking", "track_sequence", "evaluate_tracking", "format_tracking_table"]

MAX_DISTANCE = 0.5  # 1 - IoU: a ground-truth instance and a hypothesis match only with IoU >= 0.5

# motmetrics names of the figures reported per sequence and overall
METRICS = ("idf1", "idp", "idr", "mota", "motp", "num_switches", "num_unique_objects", "num_frames", "num_objects",
           "num_predictions", "num_matches", "num_false_positives", "num_misses", "mostly_tracked",
           "mostly_lost", "num_fragmentations")


def frame_distances(gt: np.ndarray, hyp: np.ndarray, max_distance: float = MAX_DISTANCE
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's (gt_ids, hyp_ids, distances) for MOTAccumulator.update.

    gt, hyp: int (N,), the ground-truth instance and the hypothesis (track) id of each of the frame's points, < 0
    for none. distances: float64 (G, H), 1 - IoU of the point sets, NaN where above max_distance (no match)."""
    gt = np.asarray(gt).ravel()
    hyp = np.asarray(hyp).ravel()
    if gt.shape != hyp.shape:
        raise ValueError(f"gt and hyp must label the same points, got {gt.shape} and {hyp.shape}")
    gt_ids, gt_inv = np.unique(gt[gt >= 0], return_inverse=True)
    hyp_ids, hyp_inv = np.unique(hyp[hyp >= 0], return_inverse=True)
    g, h = gt_ids.size, hyp_ids.size
    dist = np.full((g, h), np.nan)
    if g == 0 or h == 0:
        return gt_ids, hyp_ids, dist
    gt_size = np.bincount(gt_inv, minlength=g)
    hyp_size = np.bincount(hyp_inv, minlength=h)
    both = (gt >= 0) & (hyp >= 0)
    gi = np.searchsorted(gt_ids, gt[both])
    hi = np.searchsorted(hyp_ids, hyp[both])
    inter = np.bincount(gi * h + hi, minlength=g * h).reshape(g, h).astype(np.float64)
    iou = inter / (gt_size[:, None] + hyp_size[None, :] - inter)
    d = 1.0 - iou
    ok = d <= max_distance
    dist[ok] = d[ok]
    return gt_ids, hyp_ids, dist


def ignore_small_objects(gt: np.ndarray, hyp: np.ndarray, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(gt, hyp) without the ground-truth objects that have fewer than min_points points in this frame (a chair
    leg at the image border), and without the hypotheses lying mostly (more than half their points) on them: such
    objects are neither a miss when not found nor is finding them a false positive. The ScanNet benchmark ignores
    ground truth under 100 points the same way. min_points <= 1: the frame as it is."""
    gt = np.asarray(gt, np.int64).ravel()
    hyp = np.asarray(hyp, np.int64).ravel()
    if min_points <= 1 or not np.any(gt >= 0):
        return gt, hyp
    ids, inverse, counts = np.unique(gt, return_inverse=True, return_counts=True)
    small = ((ids >= 0) & (counts < min_points))[inverse]
    if not small.any():
        return gt, hyp
    out_hyp = hyp.copy()
    if np.any(hyp >= 0):
        h_ids, h_inv = np.unique(hyp, return_inverse=True)
        on_small = np.bincount(h_inv, weights=small, minlength=h_ids.size)
        total = np.bincount(h_inv, minlength=h_ids.size)
        drop = (h_ids >= 0) & (on_small > 0.5 * total)
        out_hyp[drop[h_inv]] = -1
    return np.where(small, -1, gt), out_hyp


def accumulate(frames: Iterable[tuple[np.ndarray, np.ndarray]], max_distance: float = MAX_DISTANCE
               ) -> Any:
    """A motmetrics accumulator over frames of (gt, hyp) per-point ids (see frame_distances)."""
    import motmetrics as mm  # type: ignore[import-untyped]

    acc = mm.MOTAccumulator(auto_id=True)
    for gt, hyp in frames:
        acc.update(*frame_distances(gt, hyp, max_distance))
    return acc


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    return value


def identity_metrics(accumulators: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per sequence (by name) and "overall" (counts summed over the sequences): the METRICS plus
    switches_per_object_per_100_frames = num_switches / num_unique_objects * 100 / num_frames (overall: total
    switches * 100 / sum over sequences of unique objects x frames, the same rate over all object-sequences) and
    switches_per_100_object_frames = num_switches * 100 / num_objects (per 100 frames in which an object is seen)."""
    import motmetrics as mm  # type: ignore[import-untyped]

    if not accumulators:
        return {}
    names = list(accumulators)
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.INFO))  # motmetrics logs its timings at INFO on the root logger
    try:
        summary = mm.metrics.create().compute_many([accumulators[n] for n in names], metrics=list(METRICS),
                                                   names=names, generate_overall=True)
    finally:
        logging.disable(previous)
    out: dict[str, dict[str, Any]] = {}
    exposure = 0.0
    for name in names + ["OVERALL"]:
        row = {key: _plain(summary.loc[name, key]) for key in METRICS}
        for key in METRICS:
            if key.startswith("num_") or key.startswith("mostly_"):
                row[key] = int(row[key])
        if name != "OVERALL":
            exposure += row["num_unique_objects"] * row["num_frames"]
            objects_frames = row["num_unique_objects"] * row["num_frames"]
        else:
            objects_frames = exposure
        row["switches_per_object_per_100_frames"] = (row["num_switches"] * 100.0 / objects_frames
                                                     if objects_frames else None)
        row["switches_per_100_object_frames"] = (row["num_switches"] * 100.0 / row["num_objects"]
                                                 if row["num_objects"] else None)
        out["overall" if name == "OVERALL" else name] = row
    return out


@dataclass
class SequenceTracking:
    """One sequence run through the pipeline and the tracker: the accumulator and the per-frame costs."""

    name: str
    accumulator: Any  # motmetrics.MOTAccumulator
    update_ms: list[float] = field(default_factory=list)  # Tracker.update per frame
    pipeline_ms: list[float] = field(default_factory=list)  # Pipeline.segment per frame (wall time)
    skipped: int = 0  # frames the tracker skipped (bad pose)
    published: list[int] = field(default_factory=list)  # confirmed instances per frame


def hypothesis_ids(seg_instance: np.ndarray, track_ids: np.ndarray, confirmed: np.ndarray) -> np.ndarray:
    """Per point, the published track id of its instance (-1: no instance, or a tentative track)."""
    seg_instance = np.asarray(seg_instance, np.int64)
    lut = np.where(np.asarray(confirmed, bool), np.asarray(track_ids, np.int64), -1)
    out = np.full(seg_instance.shape, -1, np.int64)
    has = seg_instance >= 0
    out[has] = lut[seg_instance[has]]
    return out


def track_sequence(pipe: "Pipeline", seq: "Sequence", tracker_config: "TrackerConfig | None" = None,
                   max_distance: float = MAX_DISTANCE, grouping: "GroupingConfig | None" = None,
                   postprocess: "PostprocessConfig | None" = None, preprocess: "PreprocessConfig | None" = None,
                   on_frame: Callable[[int], None] | None = None, min_gt_points: int = 0) -> SequenceTracking:
    """Segment every frame of seq (valid points, optical frame, base_link as the gravity frame), track in odom
    (fixed_from_input = seq.room_from_optical(i)) and accumulate the identity metrics of the published tracks.
    min_gt_points: objects with fewer points in a frame are ignored there (ignore_small_objects; 0: none)."""
    import motmetrics as mm  # type: ignore[import-untyped]

    from ..tracking import Tracker

    tracker = Tracker(tracker_config)
    acc = mm.MOTAccumulator(auto_id=True)
    out = SequenceTracking(seq.name, acc)
    for i, frame in enumerate(seq.frames):
        xyz, rgb, _, instance = frame.cloud(organized=False)
        xyz = xyz.astype(np.float32)
        start = time.perf_counter()
        seg = pipe.segment(xyz, rgb, grouping=grouping, postprocess=postprocess, preprocess=preprocess,
                           gravity_transform=seq.base_from_optical)
        out.pipeline_ms.append((time.perf_counter() - start) * 1e3)
        result = tracker.update(seg, xyz, seq.room_from_optical(i), int(frame.stamp_ns))
        out.update_ms.append(float(result.update_ms))
        out.skipped += int(result.skipped)
        hyp = hypothesis_ids(seg.instance, result.track_ids, result.confirmed)
        out.published.append(int(np.count_nonzero(result.confirmed)))
        acc.update(*frame_distances(*ignore_small_objects(instance, hyp, min_gt_points), max_distance))
        if on_frame is not None:
            on_frame(i)
    return out


def _costs(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "max": None}
    arr = np.asarray(values, np.float64)
    return {"mean": float(arr.mean()), "median": float(np.median(arr)), "max": float(arr.max())}


def evaluate_tracking(pipe: "Pipeline", seeds: range | list[int], frames: int, tracker_config: "TrackerConfig | None" = None,
                      max_distance: float = MAX_DISTANCE, camera: "CameraConfig | None" = None,
                      grouping: "GroupingConfig | None" = None, postprocess: "PostprocessConfig | None" = None,
                      preprocess: "PreprocessConfig | None" = None,
                      on_frame: Callable[[str, int], None] | None = None, min_gt_points: int = 0) -> dict[str, Any]:
    """Track the held-out camera sequences of `seeds` (frames each) and report the identity metrics.

    Returns {"sequences": {name: metrics}, "overall": metrics, "max_distance", "tracker"}; every metrics dict
    holds the identity_metrics figures plus update_ms and pipeline_ms ({mean, median, max}), skipped_frames and
    mean_published (confirmed instances per frame). on_frame(stage, i): "render" or "track" progress.
    min_gt_points: ignore objects with fewer points in a frame (see ignore_small_objects; 0: count every one)."""
    import dataclasses

    from ..tracking import TrackerConfig
    from .sequences import camera_sequences

    config = tracker_config or TrackerConfig()
    config.validate()
    runs: list[SequenceTracking] = []
    for seq in camera_sequences(seeds, frames, camera,
                                on_frame=None if on_frame is None else (lambda i: on_frame("render", i))):
        runs.append(track_sequence(pipe, seq, config, max_distance, grouping, postprocess, preprocess,
                                   on_frame=None if on_frame is None else (lambda i: on_frame("track", i)),
                                   min_gt_points=min_gt_points))
    metrics = identity_metrics({r.name: r.accumulator for r in runs})
    for r in runs:
        metrics[r.name].update(update_ms=_costs(r.update_ms), pipeline_ms=_costs(r.pipeline_ms),
                               skipped_frames=r.skipped, mean_published=float(np.mean(r.published or [0])))
    if runs:
        metrics["overall"].update(update_ms=_costs([v for r in runs for v in r.update_ms]),
                                  pipeline_ms=_costs([v for r in runs for v in r.pipeline_ms]),
                                  skipped_frames=sum(r.skipped for r in runs),
                                  mean_published=float(np.mean([v for r in runs for v in r.published])))
    overall = metrics.pop("overall", {})
    return {"sequences": metrics, "overall": overall, "max_distance": max_distance, "min_gt_points": min_gt_points,
            "tracker": dataclasses.asdict(config)}


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_tracking_table(result: dict[str, Any]) -> str:
    """The figures of evaluate_tracking as a text table, one row per sequence and one overall."""
    head = (f"{'sequence':<24} {'frames':>6} {'objects':>7} {'IDF1':>6} {'IDP':>6} {'IDR':>6} {'MOTA':>7} "
            f"{'IDsw':>5} {'sw/obj/100f':>11} {'track ms':>15} {'pipeline ms':>17}")
    lines = [head, "-" * len(head)]
    rows = list(result["sequences"].items()) + ([("overall", result["overall"])] if result["overall"] else [])
    for name, r in rows:
        if name == "overall":
            lines.append("-" * len(head))
        track = f"{_f(r['update_ms']['mean'], 2)}/{_f(r['update_ms']['median'], 2)}"
        pipe = f"{_f(r['pipeline_ms']['mean'], 1)}/{_f(r['pipeline_ms']['median'], 1)}"
        lines.append(f"{name:<24} {r['num_frames']:>6} {r['num_unique_objects']:>7} {_f(r['idf1']):>6} "
                     f"{_f(r['idp']):>6} {_f(r['idr']):>6} {_f(r['mota']):>7} {r['num_switches']:>5} "
                     f"{_f(r['switches_per_object_per_100_frames'], 2):>11} {track:>15} {pipe:>17}")
    lines.append(f"(match: IoU >= {1 - result['max_distance']:.2f} of point sets; ms as mean/median per frame)")
    return "\n".join(lines)
