"""The S3DIS instance protocol of ASIS / 3D-BoNet / PointGroup: mPrec50, mRec50, mCov, mWCov (vectorised).

- Proposals scoring under min_score (PointGroup: 0.2) are dropped first.
- A proposal's class is its given label, or (pred_semantic given) the majority predicted semantic label
  of its points; a ground-truth instance's class is the majority ground-truth label of its points. Ties
  go to the smaller label (scipy.stats.mode, as in ASIS).
- A proposal is a true positive when its best IoU with a same-class ground-truth instance is >= 0.5; no
  confidence ranking and no one-to-one matching (two proposals on one object can both be TPs).
- Per class: Prec = TP / (TP + FP) over all rooms, Rec = TP / #GT instances.
- Coverage (ASIS): per room and class, the mean over ground-truth instances of their best IoU with a
  same-class proposal (0 when none), and that mean weighted by ground-truth point count; Cov / WCov of a
  class is the mean over the rooms that hold the class.
- Class means (mPrec50, mRec50, mCov, mWCov) run over the classes that have ground truth, as 3D-BoNet
  does for mPrec / mRec: a class with ground truth and no proposal counts 0, a class without ground truth
  is None and left out (its false positives are not counted), mirroring the ScanNet convention. On S3DIS
  Area 5, where every class has ground truth and proposals, this equals ASIS's mean over all 13 classes.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..config import S3DIS_CLASSES
from .predictions import ScenePredictions

S3DIS_IOU_THRESHOLD = 0.5
S3DIS_MIN_SCORE = 0.2


def _majority(owner: np.ndarray, label: np.ndarray, num_owners: int, num_labels: int) -> np.ndarray:
    """int64 (num_owners,): most frequent label per owner (ties -> smaller label), -1 for owners without any.

    owner, label: int64 (K,), label must be in 0..num_labels-1.
    """
    out = np.full(num_owners, -1, np.int64)
    if owner.size == 0:
        return out
    key, count = np.unique(owner * num_labels + label, return_counts=True)
    own, lab = key // num_labels, key % num_labels
    order = np.lexsort((lab, -count, own))  # per owner: highest count first, then smallest label
    own, lab = own[order], lab[order]
    first = np.ones(own.size, bool)
    first[1:] = own[1:] != own[:-1]
    out[own[first]] = lab[first]
    return out


class S3DISEvaluator:
    """Accumulates rooms one at a time, then reports mPrec50 / mRec50 / mCov / mWCov and per-class figures.

    class_names: the C classes; labels are class indices 0..C-1 (default: the 13 S3DIS classes).
    iou_threshold: a TP needs best IoU >= this; min_score: proposals below it are dropped (None keeps all).
    """

    def __init__(self, class_names: Sequence[str] = S3DIS_CLASSES, iou_threshold: float = S3DIS_IOU_THRESHOLD,
                 min_score: float | None = S3DIS_MIN_SCORE) -> None:
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(f"class names must be non-empty and unique, got {list(class_names)}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.class_names = tuple(str(n) for n in class_names)
        self.iou_threshold = float(iou_threshold)
        self.min_score = None if min_score is None else float(min_score)
        c = len(self.class_names)
        self._tp = np.zeros(c, np.int64)
        self._fp = np.zeros(c, np.int64)
        self._num_gt = np.zeros(c, np.int64)
        self._cov_sum = np.zeros(c)  # sums over rooms of the room's per-class mean coverage
        self._wcov_sum = np.zeros(c)
        self._rooms = np.zeros(c, np.int64)  # rooms holding each class
        self.num_scenes = 0

    def add_scene(self, predictions: ScenePredictions, gt_semantic: Any, gt_instance: Any,
                  pred_semantic: Any | None = None) -> None:
        """Add one room.

        gt_semantic: int (N,), class index per point (values outside 0..C-1 are ignored for the majority);
        gt_instance: int (N,), instance id per point, negative = none;
        pred_semantic: int (N,) or None, predicted class per point; when given, each proposal's class is the
        majority of it over the proposal's points, else predictions.label_ids (class indices).
        """
        sem = np.asarray(gt_semantic).astype(np.int64, copy=False).ravel()
        ins = np.asarray(gt_instance).astype(np.int64, copy=False).ravel()
        n, ncls = sem.shape[0], len(self.class_names)
        if ins.shape[0] != n:
            raise ValueError(f"gt_semantic has {n} points but gt_instance has {ins.shape[0]}")

        # ground-truth instances and their classes
        has = ins >= 0
        _, g_inv, g_size = np.unique(ins[has], return_inverse=True, return_counts=True)
        g_of_pt = np.full(n, -1, np.int64)
        g_of_pt[has] = g_inv.ravel()
        ok = has & (sem >= 0) & (sem < ncls)
        g_cls = _majority(g_of_pt[ok], sem[ok], g_size.size, ncls)

        # proposals: score filter, then class
        inst, pts = predictions.members(n)
        keep = np.ones(predictions.num_instances, bool)
        if self.min_score is not None:
            keep &= predictions.confidences >= self.min_score
        if pred_semantic is not None:
            psem = np.asarray(pred_semantic).astype(np.int64, copy=False).ravel()
            if psem.shape[0] != n:
                raise ValueError(f"pred_semantic has {psem.shape[0]} points but the scene has {n}")
            lab = psem[pts]
            valid = (lab >= 0) & (lab < ncls)
            p_cls = _majority(inst[valid], lab[valid], predictions.num_instances, ncls)
        else:
            p_cls = predictions.label_ids
            bad = keep & ((p_cls < 0) | (p_cls >= ncls))
            if bad.any():
                raise ValueError(f"prediction {int(np.flatnonzero(bad)[0])} has label "
                                 f"{int(p_cls[bad][0])}, outside the class indices 0..{ncls - 1}")
        keep &= p_cls >= 0
        p_size = np.bincount(inst, minlength=predictions.num_instances)

        # same-class intersections over the kept proposals' points
        g = g_of_pt[pts]
        sel = keep[inst] & (g >= 0)
        sel[sel] = g_cls[g[sel]] == p_cls[inst[sel]]
        ng = max(g_size.size, 1)
        key, inter = np.unique(inst[sel] * ng + g[sel], return_counts=True)
        pp, pg = key // ng, key % ng
        iou = inter / (p_size[pp] + g_size[pg] - inter).astype(np.float64)

        best_p = np.zeros(predictions.num_instances)
        np.maximum.at(best_p, pp, iou)
        best_g = np.zeros(g_size.size)
        np.maximum.at(best_g, pg, iou)

        tp = keep & (best_p >= self.iou_threshold)
        self._tp += np.bincount(p_cls[tp], minlength=ncls)
        self._fp += np.bincount(p_cls[keep & ~tp], minlength=ncls)
        gk = g_cls >= 0
        gc = g_cls[gk]
        count = np.bincount(gc, minlength=ncls)
        self._num_gt += count
        room = count > 0
        cov = np.bincount(gc, weights=best_g[gk], minlength=ncls)
        wcov = np.bincount(gc, weights=best_g[gk] * g_size[gk], minlength=ncls)
        pts_per_cls = np.bincount(gc, weights=g_size[gk], minlength=ncls)
        self._cov_sum[room] += cov[room] / count[room]
        self._wcov_sum[room] += wcov[room] / pts_per_cls[room]
        self._rooms += room
        self.num_scenes += 1

    def result(self) -> dict[str, Any]:
        """{"mPrec50", "mRec50", "mCov", "mWCov": float | None, "classes": {name: {"Prec50", "Rec50", "Cov",
        "WCov": float | None, "num_gt", "num_pred": int}}}; None for a class without ground truth."""
        has = self._num_gt > 0
        npred = self._tp + self._fp
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = np.where(npred > 0, self._tp / np.maximum(npred, 1), 0.0)
            rec = self._tp / np.maximum(self._num_gt, 1)
            cov = self._cov_sum / np.maximum(self._rooms, 1)
            wcov = self._wcov_sum / np.maximum(self._rooms, 1)
        per = {"Prec50": prec, "Rec50": rec, "Cov": cov, "WCov": wcov}
        classes: dict[str, dict[str, Any]] = {}
        for c, name in enumerate(self.class_names):
            row: dict[str, Any] = {k: (float(v[c]) if has[c] else None) for k, v in per.items()}
            row.update(num_gt=int(self._num_gt[c]), num_pred=int(npred[c]))
            classes[name] = row
        means = {f"m{k}": (float(np.mean(v[has])) if has.any() else None) for k, v in per.items()}
        return {"mPrec50": means["mPrec50"], "mRec50": means["mRec50"], "mCov": means["mCov"],
                "mWCov": means["mWCov"], "classes": classes}


def evaluate_s3dis(predictions: Sequence[ScenePredictions], gt_semantic: Sequence[Any], gt_instance: Sequence[Any],
                   pred_semantic: Sequence[Any] | None = None, class_names: Sequence[str] = S3DIS_CLASSES,
                   iou_threshold: float = S3DIS_IOU_THRESHOLD,
                   min_score: float | None = S3DIS_MIN_SCORE) -> dict[str, Any]:
    """The S3DIS figures over rooms: predictions[i] against gt_semantic[i] / gt_instance[i] (int (N_i,)).

    pred_semantic: per-room int (N_i,) predicted labels to take each proposal's class by majority, or None
    to use the proposals' label_ids. See S3DISEvaluator.result for the returned dict.
    """
    n = len(predictions)
    if len(gt_semantic) != n or len(gt_instance) != n or (pred_semantic is not None and len(pred_semantic) != n):
        raise ValueError("predictions, gt_semantic, gt_instance (and pred_semantic) must list the same rooms")
    ev = S3DISEvaluator(class_names, iou_threshold, min_score)
    for i in range(n):
        try:
            ev.add_scene(predictions[i], gt_semantic[i], gt_instance[i],
                         None if pred_semantic is None else pred_semantic[i])
        except ValueError as exc:
            raise ValueError(f"room {i}: {exc}") from exc
    return ev.result()


def format_s3dis_table(result: dict[str, Any]) -> str:
    """Per-class table of Prec50 / Rec50 / Cov / WCov with the class means, '-' where undefined."""
    def cell(v: float | None) -> str:
        return f"{'-':>8}" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:8.3f}"

    width = max([10] + [len(n) for n in result["classes"]])
    head = f"{'class':<{width}} {'Prec50':>8} {'Rec50':>8} {'Cov':>8} {'WCov':>8}"
    lines = [head, "-" * len(head)]
    for name, v in result["classes"].items():
        lines.append(f"{name:<{width}} {cell(v['Prec50'])} {cell(v['Rec50'])} {cell(v['Cov'])} {cell(v['WCov'])}")
    lines.append("-" * len(head))
    lines.append(f"{'mean':<{width}} {cell(result['mPrec50'])} {cell(result['mRec50'])} {cell(result['mCov'])} "
                 f"{cell(result['mWCov'])}")
    return "\n".join(lines)
