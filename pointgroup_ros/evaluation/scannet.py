"""The ScanNet v2 instance-segmentation benchmark protocol (AP, AP50, AP25), vectorised.

Reproduces BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py of the ScanNet repository, quirks
included:
- IoU thresholds 0.50, 0.55, ..., 0.90 (np.arange(0.5, 0.95, 0.05): nine values) and 0.25; a match needs
  IoU strictly greater than the threshold.
- Ground truth per vertex is label_id * 1000 + instance (0 = unannotated); a vertex whose gt_id // 1000 is
  not an evaluated class (unannotated, groups with ids < 1000, other classes) is void.
- Ground-truth instances and predictions under 100 vertices are dropped (small ground truth still counts
  for the ignore rule below and can still excuse a prediction that overlaps it).
- Matching is greedy in ground-truth order (ascending id), each ground truth scanning its overlapping
  predictions in prediction order: the first unused one above the threshold matches; every further one
  above the threshold is a false positive at the lower of the two confidences (and is not marked used).
- An unmatched prediction that overlaps no same-class ground truth above the threshold is a false positive
  unless the fraction of its vertices on void or on small same-class ground truth exceeds the threshold.
- AP: the script's precision/recall curve over unique confidences with the appended (recall 0,
  precision 1) point, integrated by np.convolve(recall, [-0.5, 0, 0.5], 'valid') after padding. A class
  with ground truth and no predictions scores 0, a class without ground truth NaN (None in results).
  AP is the nanmean over classes x the nine thresholds 0.50-0.90, AP50 / AP25 over classes.
One deliberate difference: where a class has ground truth and predictions but no curve point at a
threshold (every prediction excused by the ignore rule), the script crashes (IndexError); we score 0.

Intersections come from one np.unique over (prediction, ground-truth instance) pairs of the predictions'
points, so the cost is O(points in predictions); the only Python loop is the greedy matching, run over
candidate pairs and only for a scene and threshold where one prediction is a candidate for two ground-truth
instances (possible at 0.25 only); otherwise matching is vectorised.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .predictions import ScenePredictions

SCANNET_EVAL_IDS: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SCANNET_EVAL_NAMES: tuple[str, ...] = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture", "counter", "desk",
    "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "otherfurniture",
)
# Exactly the script's values (0.6000000000000001 and so on), so strict comparisons agree bit for bit.
IOU_THRESHOLDS: np.ndarray = np.append(np.arange(0.5, 0.95, 0.05), 0.25)
IOU_THRESHOLDS.flags.writeable = False
NUM_AP_THRESHOLDS = 9  # the first nine (0.50-0.90) make AP; index 0 is AP50, index 9 is AP25
MIN_REGION_SIZE = 100


def gt_ids_from_labels(semantic: Any, instance: Any, *, no_instance: int | None = 0) -> np.ndarray:
    """Build benchmark ground truth (label_id * 1000 + instance) from per-point labels.

    semantic: int (N,), the label id of each point in the evaluation id space (ScanNet: NYU40 id);
        values < 1 mean unannotated.
    instance: int (N,), instance id of each point; negative values and `no_instance` (default 0, as in
        ScanNet's raw labels; pass None for 0-based instance ids) mean "no instance".
    Returns int64 (N,): 0 for unannotated points and points without instance, else label * 1000 + k with
    k = 1, 2, ... numbering the (label, instance) pairs of each label in ascending instance order.
    Raises ValueError for mismatched shapes or more than 999 instances of one label.
    """
    sem = np.asarray(semantic).astype(np.int64, copy=False).ravel()
    ins = np.asarray(instance).astype(np.int64, copy=False).ravel()
    if sem.shape != ins.shape:
        raise ValueError(f"semantic has {sem.shape[0]} points but instance has {ins.shape[0]}")
    has = (sem >= 1) & (ins >= 0)
    if no_instance is not None:
        has &= ins != no_instance
    out = np.zeros(sem.shape[0], np.int64)
    if not has.any():
        return out
    pairs, inv = np.unique(np.stack([sem[has], ins[has]], axis=1), axis=0, return_inverse=True)
    # rank of each pair within its label (pairs are sorted by label, then instance)
    first_of_label = np.searchsorted(pairs[:, 0], pairs[:, 0], side="left")
    k = np.arange(pairs.shape[0]) - first_of_label + 1
    if k.max() >= 1000:
        worst = int(pairs[np.argmax(k), 0])
        raise ValueError(f"label {worst} has more than 999 instances; label*1000+instance cannot encode them")
    out[has] = (pairs[:, 0] * 1000 + k)[inv.ravel()]
    return out


@dataclass
class _ThresholdRows:
    """Curve rows of one scene at one threshold: class index, confidence, 1 = TP / 0 = FP."""

    cls: list[np.ndarray] = field(default_factory=list)
    score: list[np.ndarray] = field(default_factory=list)
    true: list[np.ndarray] = field(default_factory=list)


class InstanceEvaluator:
    """Accumulates scenes one at a time (bounded memory), then reports the benchmark's AP figures.

    class_ids: the evaluated label ids (positive ints, compared with gt_ids // 1000 and the predictions'
        label_ids); class_names: their names, same order. Defaults: the 18 ScanNet benchmark classes.
    """

    def __init__(self, class_ids: Sequence[int] = SCANNET_EVAL_IDS, class_names: Sequence[str] = SCANNET_EVAL_NAMES,
                 min_region_size: int = MIN_REGION_SIZE) -> None:
        ids = np.asarray(class_ids, dtype=np.int64).ravel()
        if ids.size == 0 or ids.size != len(class_names):
            raise ValueError(f"need one name per class id: {ids.size} ids, {len(class_names)} names")
        if np.any(ids < 1) or np.unique(ids).size != ids.size:
            raise ValueError(f"class ids must be unique and >= 1 (0 marks unannotated / groups), got {ids.tolist()}")
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class names must be unique, got {list(class_names)}")
        self.class_ids = ids
        self.class_names = tuple(str(n) for n in class_names)
        self.min_region_size = int(min_region_size)
        self._sorted_ids = np.sort(ids)
        self._sorted_to_cls = np.argsort(ids)
        c, t = ids.size, IOU_THRESHOLDS.size
        self._rows = [_ThresholdRows() for _ in range(t)]
        self._hard_fn = np.zeros((t, c), np.int64)
        self._num_gt = np.zeros(c, np.int64)
        self._num_pred = np.zeros(c, np.int64)
        self.num_scenes = 0

    def _class_index(self, label_ids: np.ndarray) -> np.ndarray:
        """int64 like label_ids: index into class_ids, -1 for labels that are not evaluated."""
        pos = np.searchsorted(self._sorted_ids, label_ids)
        pos_c = np.minimum(pos, self._sorted_ids.size - 1)
        ok = self._sorted_ids[pos_c] == label_ids
        return np.where(ok, self._sorted_to_cls[pos_c], -1)

    def add_scene(self, predictions: ScenePredictions, gt_ids: Any) -> None:
        """Match one scene. gt_ids: int (N,) label_id * 1000 + instance per vertex, 0 = unannotated."""
        gt = np.asarray(gt_ids)
        if gt.ndim != 1 or not (np.issubdtype(gt.dtype, np.integer) or gt.size == 0):
            raise ValueError(f"gt_ids must be a 1-D integer array, got shape {gt.shape} dtype {gt.dtype}")
        gt = gt.astype(np.int64, copy=False)
        if gt.size and gt.min() < 0:
            raise ValueError(f"gt_ids must be >= 0, found {int(gt.min())}")
        n = gt.shape[0]
        ncls = self.class_ids.size

        # ground-truth instances: unique ids among non-void vertices, ascending (the script's order)
        pt_cls = self._class_index(gt // 1000)
        void = pt_cls < 0
        gt_uid, gt_inv, gt_size = np.unique(gt[~void], return_inverse=True, return_counts=True)
        gt_of_pt = np.full(n, -1, np.int64)
        gt_of_pt[~void] = gt_inv.ravel()
        gt_cls = self._class_index(gt_uid // 1000)
        gt_valid = gt_size >= self.min_region_size
        num_gt = gt_uid.size
        self._num_gt += np.bincount(gt_cls[gt_valid], minlength=ncls)

        # predictions of evaluated classes with at least min_region_size vertices, in their given order
        inst, pts = predictions.members(n)
        size_all = np.bincount(inst, minlength=predictions.num_instances)
        cls_all = self._class_index(predictions.label_ids)
        kept = np.flatnonzero((cls_all >= 0) & (size_all >= self.min_region_size))
        new_id = np.full(predictions.num_instances, -1, np.int64)
        new_id[kept] = np.arange(kept.size)
        p_cls, p_size, p_conf = cls_all[kept], size_all[kept], predictions.confidences[kept]
        self._num_pred += np.bincount(p_cls, minlength=ncls)
        sel = new_id[inst] >= 0
        inst, pts = new_id[inst[sel]], pts[sel]
        npred = kept.size

        void_inter = np.bincount(inst[void[pts]], minlength=npred)
        # (prediction, same-class ground truth) intersections, sorted by prediction then ground truth
        g = gt_of_pt[pts]
        same = g >= 0
        same[same] = gt_cls[g[same]] == p_cls[inst[same]]
        key, inter = np.unique(inst[same] * max(num_gt, 1) + g[same], return_counts=True)
        pair_p, pair_g = key // max(num_gt, 1), key % max(num_gt, 1)
        iou = inter / (gt_size[pair_g] + p_size[pair_p] - inter).astype(np.float64)
        small_inter = np.bincount(pair_p[~gt_valid[pair_g]], weights=inter[~gt_valid[pair_g]], minlength=npred)
        ignore_frac = (void_inter + small_inter) / p_size.astype(np.float64) if npred else np.zeros(0)
        # matching scans ground truth first, then predictions
        by_gt = np.lexsort((pair_p, pair_g))
        pair_p, pair_g, iou = pair_p[by_gt], pair_g[by_gt], iou[by_gt]

        for ti, th in enumerate(IOU_THRESHOLDS):
            cand = iou > th
            has_cand = np.zeros(npred, bool)
            has_cand[pair_p[cand]] = True
            m = cand & gt_valid[pair_g]
            tp_g, tp_s, fp_p, fp_s = _greedy_match(pair_g[m], pair_p[m], p_conf)
            matched = np.zeros(num_gt, bool)
            matched[tp_g] = True
            self._hard_fn[ti] += np.bincount(gt_cls[gt_valid & ~matched], minlength=ncls)
            # unmatched predictions: false positive unless mostly on void / small ground truth
            lone = np.flatnonzero(~has_cand & (ignore_frac <= th))
            rows = self._rows[ti]
            rows.cls += [gt_cls[tp_g], p_cls[fp_p], p_cls[lone]]
            rows.score += [tp_s, fp_s, p_conf[lone]]
            rows.true += [np.ones(tp_g.size), np.zeros(fp_p.size), np.zeros(lone.size)]
        self.num_scenes += 1

    def ap_matrix(self) -> np.ndarray:
        """float64 (C, 10): AP per class and threshold (IOU_THRESHOLDS order); NaN for classes without GT."""
        ncls = self.class_ids.size
        ap = np.full((ncls, IOU_THRESHOLDS.size), np.nan)
        for ti, rows in enumerate(self._rows):
            cls = np.concatenate(rows.cls) if rows.cls else np.zeros(0, np.int64)
            score = np.concatenate(rows.score) if rows.score else np.zeros(0)
            true = np.concatenate(rows.true) if rows.true else np.zeros(0)
            for c in range(ncls):
                if self._num_gt[c] == 0:
                    continue  # NaN, whatever was predicted
                if self._num_pred[c] == 0:
                    ap[c, ti] = 0.0
                    continue
                sel = cls == c
                ap[c, ti] = average_precision(score[sel], true[sel], int(self._hard_fn[ti, c]))
        return ap

    def result(self) -> dict[str, Any]:
        """{"AP", "AP50", "AP25": float | None, "classes": {name: {"AP", "AP50", "AP25"}}}; None = no GT."""
        ap = self.ap_matrix()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, reported as None
            # same element order as the script's aps[d, :, oAllBut25] (thresholds outer, classes inner)
            overall = np.nanmean(np.ascontiguousarray(ap[:, :NUM_AP_THRESHOLDS].T))
            ap50 = np.nanmean(ap[:, 0])
            ap25 = np.nanmean(ap[:, NUM_AP_THRESHOLDS])
            per_class = np.mean(ap[:, :NUM_AP_THRESHOLDS], axis=1)
        classes = {name: {"AP": _num(per_class[c]), "AP50": _num(ap[c, 0]), "AP25": _num(ap[c, NUM_AP_THRESHOLDS])}
                   for c, name in enumerate(self.class_names)}
        return {"AP": _num(overall), "AP50": _num(ap50), "AP25": _num(ap25), "classes": classes}


def _greedy_match(gts: np.ndarray, preds: np.ndarray, conf: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The script's greedy assignment over candidate pairs (IoU above threshold, valid ground truth).

    gts, preds: int64 (P,), the pairs sorted by ground truth, then prediction. Returns (matched ground truth
    int64, their TP confidence float64, duplicate-FP prediction int64, their FP confidence float64).
    """
    if gts.size == 0:
        return gts, np.zeros(0), preds, np.zeros(0)
    if np.bincount(preds).max() <= 1:
        # Each prediction is a candidate of one ground truth only, so "used" never blocks a candidate: the
        # first candidate matches, and the running max/min of the script leaves the TP at the highest
        # confidence and one FP at each of the other confidences.
        order = np.lexsort((-conf[preds], gts))
        g, p = gts[order], preds[order]
        first = np.ones(g.size, bool)
        first[1:] = g[1:] != g[:-1]
        return g[first], conf[p[first]], p[~first], conf[p[~first]]
    # General case (a prediction above threshold with two ground truths, IoU <= 0.5): sequential.
    used: set[int] = set()
    tp_g: list[int] = []
    tp_s: list[float] = []
    fp_p: list[int] = []
    fp_s: list[float] = []
    current = -1
    for gi, pi in zip(gts.tolist(), preds.tolist()):
        if pi in used:
            continue
        c = float(conf[pi])
        if gi != current:  # first free candidate of this ground truth: match
            current = gi
            used.add(pi)
            tp_g.append(gi)
            tp_s.append(c)
        else:  # duplicate: FP at the lower confidence, the match keeps the higher
            fp_p.append(pi)
            fp_s.append(min(tp_s[-1], c))
            tp_s[-1] = max(tp_s[-1], c)
    return (np.asarray(tp_g, np.int64), np.asarray(tp_s, np.float64), np.asarray(fp_p, np.int64),
            np.asarray(fp_s, np.float64))


def average_precision(scores: np.ndarray, true: np.ndarray, hard_false_negatives: int) -> float:
    """The script's AP of one class at one threshold.

    scores: float64 (R,), confidence of each curve row; true: (R,) 1 for a TP row, 0 for an FP row;
    hard_false_negatives: unmatched ground truth. Returns 0.0 when there is no row (the script crashes).
    """
    if scores.size == 0:
        return 0.0
    order = np.argsort(scores)
    s = scores[order]
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(true, np.float64)[order])])
    _, first = np.unique(s, return_index=True)  # first row of each unique confidence, ascending
    before = cum[first]  # TPs below this confidence
    tp = cum[-1] - before
    fp = (s.size - first) - tp
    fn = before + hard_false_negatives
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    widths = np.convolve(np.concatenate([recall[:1], recall, [0.0]]), [-0.5, 0.0, 0.5], "valid")
    return float(np.dot(precision, widths))


def evaluate_instances(predictions: Sequence[ScenePredictions], gt_ids: Sequence[Any],
                       class_ids: Sequence[int] = SCANNET_EVAL_IDS,
                       class_names: Sequence[str] = SCANNET_EVAL_NAMES,
                       min_region_size: int = MIN_REGION_SIZE) -> dict[str, Any]:
    """The benchmark's figures over scenes: predictions[i] against gt_ids[i] (int (N_i,)).

    Returns {"AP", "AP50", "AP25", "classes": {name: {"AP", "AP50", "AP25"}}}, floats, None for a class
    without ground truth (and for an average when no class has ground truth).
    """
    if len(predictions) != len(gt_ids):
        raise ValueError(f"{len(predictions)} scenes of predictions but {len(gt_ids)} of ground truth")
    ev = InstanceEvaluator(class_ids, class_names, min_region_size)
    for i, (pred, gt) in enumerate(zip(predictions, gt_ids)):
        try:
            ev.add_scene(pred, gt)
        except ValueError as exc:
            raise ValueError(f"scene {i}: {exc}") from exc
    return ev.result()


def format_table(result: dict[str, Any]) -> str:
    """The per-class table the script prints (AP / AP50 / AP25), '-' for classes without ground truth."""
    def cell(v: float | None) -> str:
        return f"{'-':>8}" if v is None else f"{v:8.3f}"

    width = max([15] + [len(n) for n in result["classes"]])
    lines = [f"{'class':<{width}} {'AP':>8} {'AP50':>8} {'AP25':>8}", "-" * (width + 27)]
    for name, v in result["classes"].items():
        lines.append(f"{name:<{width}} {cell(v['AP'])} {cell(v['AP50'])} {cell(v['AP25'])}")
    lines.append("-" * (width + 27))
    lines.append(f"{'average':<{width}} {cell(result['AP'])} {cell(result['AP50'])} {cell(result['AP25'])}")
    return "\n".join(lines)


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x
