"""S3DIS protocol (ASIS / 3D-BoNet / PointGroup) on hand-built rooms; arithmetic in the comments."""
from __future__ import annotations

import numpy as np
import pytest

from pointgroup_ros.config import S3DIS_CLASSES
from pointgroup_ros.evaluation import S3DISEvaluator, ScenePredictions, evaluate_s3dis, format_s3dis_table

TABLE, CHAIR, CLUTTER = S3DIS_CLASSES.index("table"), S3DIS_CLASSES.index("chair"), S3DIS_CLASSES.index("clutter")


def csr(*members: np.ndarray, labels: list[int], scores: list[float]) -> ScenePredictions:
    offsets = np.concatenate([[0], np.cumsum([m.size for m in members])])
    return ScenePredictions(np.concatenate(members), offsets, labels, scores)


def room1() -> tuple[ScenePredictions, np.ndarray, np.ndarray]:
    # points 0-99 chair A, 100-299 chair B, 300-499 table T, 500-549 clutter
    sem = np.repeat([CHAIR, CHAIR, TABLE, CLUTTER], [100, 200, 200, 50])
    ins = np.repeat([0, 1, 2, 3], [100, 200, 200, 50])
    a, b, t, c = np.arange(100), np.arange(100, 300), np.arange(300, 500), np.arange(500, 550)
    preds = csr(a, b[:100], b[100:180], t, a, c,
                labels=[CHAIR, CHAIR, CHAIR, CHAIR, CHAIR, CLUTTER],
                scores=[0.9, 0.5, 0.6, 0.7, 0.1, 0.19999])
    # P1 = A (IoU 1, TP); P2 = half of B (IoU 100/200 = 0.5 >= 0.5, TP); P3 = 80 of B (IoU 0.4, FP);
    # P4 = the table labelled chair (no chair overlap, FP); P5, P6 score < 0.2: dropped
    return preds, sem, ins


def test_one_room_by_hand() -> None:
    preds, sem, ins = room1()
    r = evaluate_s3dis([preds], [sem], [ins])
    chair, table, clutter = r["classes"]["chair"], r["classes"]["table"], r["classes"]["clutter"]
    # chair: TP 2, FP 2 -> Prec 2/4; Rec 2 TP / 2 GT = 1; Cov (A: 1.0, B: 0.5) -> 0.75;
    #   WCov (100 * 1 + 200 * 0.5) / 300 = 2/3
    assert chair == pytest.approx({"Prec50": 0.5, "Rec50": 1.0, "Cov": 0.75, "WCov": 2 / 3, "num_gt": 2,
                                   "num_pred": 4})
    # table and clutter: GT but no kept proposal of their class -> 0 everywhere
    for row in (table, clutter):
        assert row == {"Prec50": 0.0, "Rec50": 0.0, "Cov": 0.0, "WCov": 0.0, "num_gt": 1, "num_pred": 0}
    # classes without GT: None and left out of the means (over chair, table, clutter)
    assert r["classes"]["sofa"] == {"Prec50": None, "Rec50": None, "Cov": None, "WCov": None, "num_gt": 0,
                                    "num_pred": 0}
    assert r["mPrec50"] == pytest.approx(0.5 / 3)
    assert r["mRec50"] == pytest.approx(1.0 / 3)
    assert r["mCov"] == pytest.approx(0.75 / 3)
    assert r["mWCov"] == pytest.approx((2 / 3) / 3)
    assert "chair" in format_s3dis_table(r)


def test_min_score_is_a_parameter() -> None:
    preds, sem, ins = room1()
    r = evaluate_s3dis([preds], [sem], [ins], min_score=None)
    # P5 (second copy of A) is now a TP as well: chair TP 3, FP 2 -> Prec 3/5, Rec 3/2 (no one-to-one
    # matching: recall counts proposals, as the protocol defines it); clutter's P6 is a TP: Prec 1, Rec 1
    assert r["classes"]["chair"]["Prec50"] == pytest.approx(0.6)
    assert r["classes"]["chair"]["Rec50"] == pytest.approx(1.5)
    assert r["classes"]["clutter"]["Prec50"] == 1.0 and r["classes"]["clutter"]["Cov"] == 1.0


def test_class_by_majority_of_predicted_semantics() -> None:
    sem = np.repeat([CHAIR, TABLE], [100, 100])
    ins = np.repeat([0, 1], [100, 100])
    pred_sem = np.repeat([TABLE, CHAIR, TABLE], [50, 50, 100])  # the chair's points: half table, half chair
    preds = csr(np.arange(100), np.arange(100, 200), labels=[CHAIR, CHAIR], scores=[1.0, 1.0])
    r = evaluate_s3dis([preds], [sem], [ins], pred_semantic=[pred_sem])
    # P1: tie 50/50 between table (7) and chair (8) -> the smaller label, table: an FP (no table overlap);
    # P2: all table -> TP on T (the given label_ids are not used)
    assert r["classes"]["table"] == pytest.approx({"Prec50": 0.5, "Rec50": 1.0, "Cov": 1.0, "WCov": 1.0,
                                                   "num_gt": 1, "num_pred": 2})
    assert r["classes"]["chair"]["Rec50"] == 0.0 and r["classes"]["chair"]["num_pred"] == 0


def test_gt_class_by_majority_and_ignored_points() -> None:
    # one instance with 60 chair, 30 table, 10 unlabelled (-100) points -> a chair of 100 points;
    # points with instance -1 belong to no instance
    sem = np.concatenate([np.full(60, CHAIR), np.full(30, TABLE), np.full(10, -100), np.full(50, TABLE)])
    ins = np.concatenate([np.zeros(100, int), np.full(50, -1)])
    preds = csr(np.arange(60), np.arange(100, 150), labels=[CHAIR, TABLE], scores=[1.0, 1.0])
    r = evaluate_s3dis([preds], [sem], [ins])
    # P1: IoU 60/100 with the chair -> TP; P2 (table) overlaps no instance -> FP; only chair has GT
    assert r["classes"]["chair"] == pytest.approx({"Prec50": 1.0, "Rec50": 1.0, "Cov": 0.6, "WCov": 0.6,
                                                   "num_gt": 1, "num_pred": 1})
    assert r["classes"]["table"]["Prec50"] is None and r["classes"]["table"]["num_pred"] == 1
    assert r["mPrec50"] == 1.0  # the table FP does not count: table has no GT


def test_coverage_averages_rooms_then_classes() -> None:
    # room 1: one chair, covered exactly (1.0). room 2: three chairs of 100, 100, 200 points; only the
    # last is covered (1.0): mean 1/3, weighted 200/400 = 0.5.
    sem1, ins1 = np.full(100, CHAIR), np.zeros(100, int)
    sem2, ins2 = np.full(400, CHAIR), np.repeat([0, 1, 2], [100, 100, 200])
    p1 = csr(np.arange(100), labels=[CHAIR], scores=[1.0])
    p2 = csr(np.arange(200, 400), labels=[CHAIR], scores=[1.0])
    r = evaluate_s3dis([p1, p2], [sem1, sem2], [ins1, ins2])
    # ASIS: Cov = mean over rooms of the room's mean = (1 + 1/3) / 2 (pooled over instances it would be 2/4);
    # WCov = (1 + 0.5) / 2
    assert r["classes"]["chair"]["Cov"] == pytest.approx(2 / 3)
    assert r["classes"]["chair"]["WCov"] == pytest.approx(0.75)
    assert r["mCov"] == pytest.approx(2 / 3)
    assert r["classes"]["chair"]["Rec50"] == pytest.approx(2 / 4)


def test_streaming_equals_batch_and_errors() -> None:
    preds, sem, ins = room1()
    ev = S3DISEvaluator()
    ev.add_scene(preds, sem, ins)
    assert ev.result() == evaluate_s3dis([preds], [sem], [ins])
    with pytest.raises(ValueError, match="outside the class indices"):
        evaluate_s3dis([csr(np.arange(5), labels=[13], scores=[1.0])], [np.zeros(5)], [np.zeros(5)])
    with pytest.raises(ValueError, match="room 0: .* 4 points but gt_instance has 5"):
        evaluate_s3dis([ScenePredictions.empty()], [np.zeros(4)], [np.zeros(5)])
    with pytest.raises(ValueError, match="iou_threshold"):
        S3DISEvaluator(iou_threshold=0.0)


def test_generic_classes() -> None:
    sem, ins = np.repeat([0, 1], [10, 10]), np.repeat([0, 1], [10, 10])
    preds = csr(np.arange(10), np.arange(10, 20), labels=[0, 1], scores=[0.5, 0.5])
    r = evaluate_s3dis([preds], [sem], [ins], class_names=["box", "ball"])
    assert r["mPrec50"] == r["mRec50"] == r["mCov"] == r["mWCov"] == 1.0
    assert set(r["classes"]) == {"box", "ball"}


def reference_s3dis(rooms: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], ncls: int) -> dict:
    """Loop version of the ASIS protocol: rooms of (gt_sem, gt_ins, pred_sem, pred_ins with -1 = none)."""
    tp, fp, ngt = np.zeros(ncls), np.zeros(ncls), np.zeros(ncls)
    cov_rooms: list[list[float]] = [[] for _ in range(ncls)]
    wcov_rooms: list[list[float]] = [[] for _ in range(ncls)]
    for gsem, gins, psem, pins in rooms:
        by_cls_pred: list[list[np.ndarray]] = [[] for _ in range(ncls)]
        by_cls_gt: list[list[np.ndarray]] = [[] for _ in range(ncls)]
        for p in np.unique(pins):
            if p >= 0:
                m = pins == p
                by_cls_pred[int(np.argmax(np.bincount(psem[m], minlength=ncls)))].append(m)
        for g in np.unique(gins):
            m = gins == g
            by_cls_gt[int(np.argmax(np.bincount(gsem[m], minlength=ncls)))].append(m)
        for c in range(ncls):
            ngt[c] += len(by_cls_gt[c])
            for pm in by_cls_pred[c]:
                best = max([np.sum(pm & gm) / np.sum(pm | gm) for gm in by_cls_gt[c]], default=-1.0)
                tp[c] += best >= 0.5
                fp[c] += best < 0.5
            if by_cls_gt[c]:
                covs = [max([np.sum(pm & gm) / np.sum(pm | gm) for pm in by_cls_pred[c]], default=0.0)
                        for gm in by_cls_gt[c]]
                sizes = [gm.sum() for gm in by_cls_gt[c]]
                cov_rooms[c].append(float(np.mean(covs)))
                wcov_rooms[c].append(float(np.dot(covs, sizes) / np.sum(sizes)))
    has = ngt > 0
    prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    rec = tp / np.maximum(ngt, 1)
    cov = np.array([np.mean(v) if v else 0.0 for v in cov_rooms])
    wcov = np.array([np.mean(v) if v else 0.0 for v in wcov_rooms])
    return {"mPrec50": prec[has].mean(), "mRec50": rec[has].mean(), "mCov": cov[has].mean(),
            "mWCov": wcov[has].mean()}


def test_matches_loop_reference_on_random_rooms() -> None:
    rng = np.random.default_rng(5)
    ncls = len(S3DIS_CLASSES)
    for _ in range(15):
        rooms, preds, psems = [], [], []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(300, 1500))
            gins = np.sort(rng.integers(0, int(rng.integers(2, 12)), n))  # contiguous instances
            gcls = rng.integers(0, ncls, gins.max() + 1)
            gsem = np.where(rng.random(n) < 0.9, gcls[gins], rng.integers(0, ncls, n))
            shift = int(rng.integers(-40, 40))
            pins = np.roll(gins, shift)  # shifted partition: IoUs spread around 0.5
            pins[rng.random(n) < 0.1] = -1
            psem = np.where(rng.random(n) < 0.8, gsem, rng.integers(0, ncls, n))
            rooms.append((gsem, gins, psem, pins))
            ids = np.unique(pins[pins >= 0])
            members = [np.flatnonzero(pins == i) for i in ids]
            preds.append(csr(*members, labels=[0] * len(members), scores=[1.0] * len(members))
                         if members else ScenePredictions.empty())
            psems.append(psem)
        ours = evaluate_s3dis(preds, [r[0] for r in rooms], [r[1] for r in rooms], pred_semantic=psems)
        ref = reference_s3dis(rooms, ncls)
        for key, value in ref.items():
            assert ours[key] == pytest.approx(value, abs=1e-12), key
