"""ScanNet benchmark protocol on hand-built scenes whose AP values are worked out in the comments.

AP arithmetic of the benchmark (used below): rows sorted by confidence; at each unique confidence s,
tp/fp = rows >= s, precision = tp / (tp + fp), recall = tp / #GT; append (precision 1, recall 0);
padded recall r' = [r0, r0, r1, ..., rk, 0]; step width w_i = 0.5 * (r'_i - r'_(i+2)); AP = sum p_i w_i.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pointgroup_ros.evaluation import (IOU_THRESHOLDS, SCANNET_EVAL_NAMES, InstanceEvaluator, ScenePredictions,
                                       average_precision, evaluate_instances, gt_ids_from_labels)

CHAIR, TABLE, BED, WALL = 5, 7, 4, 1  # NYU40 ids: chair, table, bed are evaluated, wall is not


class Scene:
    """Ground truth built from consecutive vertex ranges; predictions as index lists."""

    def __init__(self) -> None:
        self.gt: list[int] = []
        self.masks: list[np.ndarray] = []
        self.labels: list[int] = []
        self.confs: list[float] = []

    def region(self, gt_id: int, n: int) -> np.ndarray:
        start = len(self.gt)
        self.gt += [gt_id] * n
        return np.arange(start, start + n)

    def predict(self, idx: np.ndarray, label: int, conf: float) -> None:
        self.masks.append(np.asarray(idx))
        self.labels.append(label)
        self.confs.append(conf)

    def build(self) -> tuple[ScenePredictions, np.ndarray]:
        offsets = np.concatenate([[0], np.cumsum([m.size for m in self.masks])]).astype(np.int64)
        idx = np.concatenate(self.masks) if self.masks else np.zeros(0, np.int64)
        return ScenePredictions(idx, offsets, self.labels, self.confs), np.array(self.gt, np.int64)


def evaluate(*scenes: Scene) -> dict:
    built = [s.build() for s in scenes]
    return evaluate_instances([b[0] for b in built], [b[1] for b in built])


def test_thresholds_are_the_scripts() -> None:
    assert IOU_THRESHOLDS.size == 10
    np.testing.assert_allclose(IOU_THRESHOLDS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.25])
    assert 0.95 not in np.round(IOU_THRESHOLDS, 2)


def test_perfect_prediction_scores_one_and_other_classes_are_null() -> None:
    s = Scene()
    s.predict(s.region(CHAIR * 1000 + 1, 200), CHAIR, 0.7)
    r = evaluate(s)
    # one TP row: p = [1, 1(appended)], r = [1, 0]; r' = [1, 1, 0, 0], w = [0.5, 0.5]; AP = 1
    assert r["AP"] == r["AP50"] == r["AP25"] == 1.0
    assert r["classes"]["chair"] == {"AP": 1.0, "AP50": 1.0, "AP25": 1.0}
    assert set(r["classes"]) == set(SCANNET_EVAL_NAMES) and len(r["classes"]) == 18
    assert all(r["classes"][n] == {"AP": None, "AP50": None, "AP25": None} for n in SCANNET_EVAL_NAMES if n != "chair")


def test_false_positive_with_lower_confidence_keeps_ap_one_higher_gives_quarter() -> None:
    # The FP lies on a table (not void, no chair ground truth there), labelled chair.
    for fp_conf, expected in ((0.5, 1.0), (0.95, 0.25)):
        s = Scene()
        s.predict(s.region(CHAIR * 1000 + 1, 200), CHAIR, 0.9)
        s.predict(s.region(TABLE * 1000 + 1, 150), CHAIR, fp_conf)
        r = evaluate(s)
        # lower FP (0.5 < 0.9): s=0.5: p=1/2, r=1; s=0.9: p=1, r=1; + (1, 0)
        #   r' = [1, 1, 1, 0, 0]: w = [0, 0.5, 0.5]; AP = 0.5*0 + 1*0.5 + 1*0.5 = 1.0
        # higher FP (0.95 > 0.9): s=0.9: p=1/2, r=1; s=0.95: p=0, r=0; + (1, 0)
        #   r' = [1, 1, 0, 0, 0]: w = [0.5, 0.5, 0]; AP = 0.5*0.5 + 0*0.5 + 1*0 = 0.25
        assert r["classes"]["chair"] == pytest.approx({"AP": expected, "AP50": expected, "AP25": expected})
        assert r["AP"] == pytest.approx((expected + 0.0) / 2)  # mean of chair and table
        assert r["classes"]["table"] == {"AP": 0.0, "AP50": 0.0, "AP25": 0.0}  # table GT, no table prediction


def test_duplicate_on_one_gt_is_a_false_positive_at_the_lower_confidence() -> None:
    s = Scene()
    chair = s.region(CHAIR * 1000 + 1, 200)
    s.predict(chair, CHAIR, 0.6)         # A: IoU 1
    s.predict(chair[:180], CHAIR, 0.8)   # B: IoU 180/200 = 0.9, above every threshold but 0.90 (strict)
    r = evaluate(s)
    # thresholds 0.50-0.85: A matches, B is the duplicate -> TP at max(0.6, 0.8) = 0.8, FP at 0.6: AP = 1
    #   (were B's FP at its own 0.8 confidence, AP would be 0.25)
    # threshold 0.90: only A is above: TP at 0.6; B has no match, nothing ignored -> FP at 0.8: AP = 0.25
    assert r["AP50"] == 1.0 and r["AP25"] == 1.0
    assert r["AP"] == pytest.approx((8 * 1.0 + 0.25) / 9)


def test_iou_exactly_at_threshold_does_not_match() -> None:
    s = Scene()
    chair = s.region(CHAIR * 1000 + 1, 200)
    s.predict(chair[:110], CHAIR, 0.5)   # IoU 110/200 = 0.55 exactly
    r = evaluate(s)
    # matched only at 0.50 (0.55 > 0.5) and 0.25; at 0.55 (0.55 > 0.55 is false) and above: FN + FP -> AP 0
    ev = InstanceEvaluator()
    ev.add_scene(*s.build())
    np.testing.assert_array_equal(ev.ap_matrix()[SCANNET_EVAL_NAMES.index("chair")],
                                  [1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert r["AP"] == pytest.approx(1 / 9) and r["AP50"] == 1.0 and r["AP25"] == 1.0

    s = Scene()
    chair = s.region(CHAIR * 1000 + 1, 400)
    s.predict(chair[:100], CHAIR, 0.5)   # IoU 100/400 = 0.25 exactly: no match even at 0.25
    r = evaluate(s)
    assert r["AP25"] == 0.0 and r["AP50"] == 0.0 and r["AP"] == 0.0


def test_prediction_mostly_on_void_or_group_is_not_a_false_positive() -> None:
    s = Scene()
    chair = s.region(CHAIR * 1000 + 1, 200)
    void = s.region(0, 150)          # unannotated
    group = s.region(7, 300)         # id < 1000: a group, void for the protocol
    wall = s.region(WALL * 1000 + 3, 100)  # a class that is not evaluated: void too
    table = s.region(TABLE * 1000 + 1, 100)
    s.predict(chair, CHAIR, 0.5)
    s.predict(np.concatenate([void, group[:50]]), CHAIR, 0.9)   # 100% void -> ignored at every threshold
    s.predict(np.concatenate([wall, group[:50], table]), CHAIR, 0.95)  # 150 of 250 on void: 0.6
    r = evaluate(s)
    # second prediction: ignored; third: ignored fraction 0.6 > threshold only at 0.50, 0.55, 0.25 (AP 1
    # there); at 0.60 ... 0.90, 0.6 <= threshold -> FP at 0.95 above the TP at 0.5 -> AP 0.25 (as above)
    chair = r["classes"]["chair"]
    assert chair["AP50"] == 1.0 and chair["AP25"] == 1.0
    assert chair["AP"] == pytest.approx((2 * 1.0 + 7 * 0.25) / 9)


def test_ignored_fraction_equal_to_threshold_is_still_a_false_positive() -> None:
    s = Scene()
    s.predict(s.region(CHAIR * 1000 + 1, 200), CHAIR, 0.5)
    s.predict(np.concatenate([s.region(0, 100), s.region(TABLE * 1000 + 1, 100)]), CHAIR, 0.95)
    r = evaluate(s)["classes"]["chair"]
    # ignored fraction 100/200 = 0.5: at 0.50 "0.5 <= 0.5" -> FP at 0.95 above the TP -> 0.25 (and above);
    # at 0.25 -> ignored -> 1
    assert r == pytest.approx({"AP": 0.25, "AP50": 0.25, "AP25": 1.0})


def test_small_gt_is_ignored_and_excuses_predictions_on_it() -> None:
    s = Scene()
    big = s.region(CHAIR * 1000 + 1, 200)
    small = s.region(CHAIR * 1000 + 2, 99)         # < 100 vertices: not a GT instance, no FN
    other_small = s.region(TABLE * 1000 + 9, 60)  # small, other class: does not excuse a chair prediction
    s.predict(big, CHAIR, 0.5)
    s.predict(np.concatenate([small, s.region(0, 21)]), CHAIR, 0.9)  # IoU 99/120 with the small GT: no FP
    r = evaluate(s)
    assert r["AP"] == 1.0  # FN on the small chair or an FP at 0.9 would lower it
    assert r["classes"]["table"]["AP"] is None  # the only table is small: no GT for the class

    s2 = Scene()
    s2.predict(s2.region(CHAIR * 1000 + 1, 200), CHAIR, 0.5)
    small = s2.region(CHAIR * 1000 + 2, 80)
    table_small = s2.region(TABLE * 1000 + 9, 60)
    # 80 on the small chair + 60 on a small table (another class: not counted as ignored) + 40 void:
    # ignored = (80 + 40) / 180 = 0.667 > threshold at 0.50-0.65 and 0.25 (where IoU 80/180 with the small
    # chair also excuses it); at 0.70-0.90 it is an FP at 0.9 above the TP at 0.5 -> AP 0.25 there
    s2.predict(np.concatenate([small, table_small, s2.region(0, 40)]), CHAIR, 0.9)
    r = evaluate(s2)
    assert r["AP25"] == 1.0 and r["AP50"] == 1.0
    assert r["AP"] == pytest.approx((4 * 1.0 + 5 * 0.25) / 9)  # 0.70 ... 0.90 see the FP


def test_class_without_gt_is_null_and_excluded_from_the_mean() -> None:
    s = Scene()
    s.predict(s.region(CHAIR * 1000 + 1, 200), CHAIR, 0.5)
    s.predict(s.region(TABLE * 1000 + 1, 200), BED, 0.9)  # a bed prediction; there is no bed anywhere
    r = evaluate(s)
    assert r["classes"]["bed"] == {"AP": None, "AP50": None, "AP25": None}
    # chair 1.0, table 0.0 (GT, no table prediction); bed is left out of the mean: (1 + 0) / 2
    assert r["AP"] == r["AP50"] == r["AP25"] == 0.5


def test_class_with_gt_and_no_prediction_scores_zero() -> None:
    s = Scene()
    s.region(TABLE * 1000 + 1, 300)
    s.predict(s.region(TABLE * 1000 + 2, 300), WALL, 0.9)  # a class that is not evaluated: dropped
    s.predict(s.region(TABLE * 1000 + 3, 300)[:99], TABLE, 0.9)  # under 100 vertices: dropped
    r = evaluate(s)
    assert r["classes"]["table"] == {"AP": 0.0, "AP50": 0.0, "AP25": 0.0}
    assert r["AP"] == 0.0


def test_no_gt_at_all_gives_null_averages() -> None:
    s = Scene()
    s.predict(s.region(0, 200), CHAIR, 0.5)
    r = evaluate(s)
    assert r["AP"] is None and r["AP50"] is None and r["AP25"] is None


def test_greedy_matching_in_gt_order_and_prediction_order_quirks() -> None:
    # A (id 5001) and B (5002), 100 vertices each. P1 = 60 of A + all of B (IoU 0.3 with A, 0.625 with B),
    # P2 = all of A (IoU 1). At 0.25 P1 is a candidate for both.
    def scene(p1_first: bool) -> Scene:
        s = Scene()
        a, b = s.region(CHAIR * 1000 + 1, 100), s.region(CHAIR * 1000 + 2, 100)
        preds = [(np.concatenate([a[:60], b]), 0.9), (a, 0.8)]
        for idx, conf in preds if p1_first else preds[::-1]:
            s.predict(idx, CHAIR, conf)
        return s

    r = evaluate(scene(p1_first=True))
    # 0.50: P1 -> B (TP 0.9), P2 -> A (TP 0.8): AP50 = 1.
    # 0.25: A is scanned first and takes P1 (first in order), P2 is its duplicate (FP at 0.8, TP keeps 0.9);
    #   B's only candidate P1 is used -> FN. Rows TP 0.9, FP 0.8, 1 FN:
    #   s=0.8: p=1/2, r=1/2; s=0.9: p=1, r=1/2; + (1, 0): r' = [.5, .5, .5, 0, 0], w = [0, .25, .25] -> 0.5
    assert r["AP50"] == 1.0 and r["AP25"] == 0.5
    r = evaluate(scene(p1_first=False))
    # 0.25 with P2 listed first: A takes P2; P1 becomes A's duplicate (FP at min(0.8, 0.9) = 0.8) but is not
    #   marked used, so B then takes P1 as well: rows TP 0.9, FP 0.8, TP 0.9, no FN:
    #   s=0.8: p=2/3, r=1; s=0.9: p=1, r=1; + (1, 0): w = [0, .5, .5] -> AP25 = 1
    assert r["AP50"] == 1.0 and r["AP25"] == 1.0


def test_scenes_pool_rows_per_class() -> None:
    # scene 1: chair TP at 0.9; scene 2: chair FP at 0.95 (on a table) and an unmatched chair GT.
    s1, s2 = Scene(), Scene()
    s1.predict(s1.region(CHAIR * 1000 + 1, 200), CHAIR, 0.9)
    s2.region(CHAIR * 1000 + 1, 200)
    s2.predict(s2.region(TABLE * 1000 + 1, 200), CHAIR, 0.95)
    r = evaluate(s1, s2)
    # rows TP 0.9, FP 0.95, 1 FN (2 GT): s=0.9: p=1/2, r=1/2; s=0.95: p=0, r=0; + (1, 0)
    #   r' = [.5, .5, 0, 0, 0], w = [.25, .25, 0]; AP = .5*.25 + 0 + 0 = 0.125
    assert r["classes"]["chair"]["AP50"] == pytest.approx(0.125)


def test_average_precision_edge_cases() -> None:
    assert average_precision(np.zeros(0), np.zeros(0), 3) == 0.0  # the script would crash here
    # ties: two rows at one confidence, one TP one FP, 1 FN: s=0.5: p=1/2, r=1/2; + (1, 0)
    #   r' = [.5, .5, 0, 0]: w = [.25, .25]; AP = .5*.25 + 1*.25 = 0.375
    assert average_precision(np.array([0.5, 0.5]), np.array([0.0, 1.0]), 1) == pytest.approx(0.375)
    assert average_precision(np.array([0.5, 0.5]), np.array([1.0, 0.0]), 1) == pytest.approx(0.375)


def test_generic_classes_and_csr_with_duplicate_indices() -> None:
    gt = np.repeat([1001, 2001, 2002, 0], [120, 150, 150, 80]).astype(np.int64)
    masks = np.zeros((3, gt.size), bool)
    masks[0, :120] = True
    masks[1, 120:270] = True
    masks[2, 270:420] = True
    dense = ScenePredictions.from_masks(masks, [1, 2, 2], [0.3, 0.9, 0.8])
    # the same instances as CSR, with a repeated index and unsorted members (a set is a set)
    idx = [np.arange(120)[::-1], np.concatenate([np.arange(120, 270), [125, 130]]), np.arange(270, 420)]
    csr = ScenePredictions(np.concatenate(idx), np.cumsum([0] + [i.size for i in idx]), [1, 2, 2], [0.3, 0.9, 0.8])
    for preds in (dense, csr):
        r = evaluate_instances([preds], [gt], class_ids=[1, 2], class_names=["box", "ball"])
        assert r == {"AP": 1.0, "AP50": 1.0, "AP25": 1.0,
                     "classes": {"box": {"AP": 1.0, "AP50": 1.0, "AP25": 1.0},
                                 "ball": {"AP": 1.0, "AP50": 1.0, "AP25": 1.0}}}


def test_bad_inputs_raise_clear_errors() -> None:
    gt = np.full(200, 5001, np.int64)
    with pytest.raises(ValueError, match="outside the scene's 200 points"):
        evaluate_instances([ScenePredictions([0, 200], [0, 2], [5], [1.0])], [gt])
    with pytest.raises(ValueError, match="offsets"):
        ScenePredictions([0, 1], [0, 1], [5], [1.0])
    with pytest.raises(ValueError, match="label_ids"):
        ScenePredictions([0, 1], [0, 2], [5, 6], [1.0])
    with pytest.raises(ValueError, match="2 scenes of predictions but 1"):
        evaluate_instances([ScenePredictions.empty()] * 2, [gt])
    with pytest.raises(ValueError, match="gt_ids must be >= 0"):
        evaluate_instances([ScenePredictions.empty()], [-gt])
    with pytest.raises(ValueError, match="unique and >= 1"):
        InstanceEvaluator(class_ids=[0, 1], class_names=["a", "b"])


def test_gt_ids_from_labels() -> None:
    sem = np.array([5, 5, 5, 7, 7, 0, 1, 5, 5])
    ins = np.array([3, 3, 9, 2, 2, 4, 6, 0, -100])
    gt = gt_ids_from_labels(sem, ins)  # instance 0 / negative = none; unannotated semantic -> 0
    np.testing.assert_array_equal(gt, [5001, 5001, 5002, 7001, 7001, 0, 1001, 0, 0])
    gt0 = gt_ids_from_labels(sem, ins, no_instance=None)  # 0-based instance ids: 0 is an instance
    np.testing.assert_array_equal(gt0, [5002, 5002, 5003, 7001, 7001, 0, 1001, 5001, 0])
    with pytest.raises(ValueError, match="more than 999"):
        gt_ids_from_labels(np.full(1000, 5), np.arange(1, 1001))


def test_from_segmentation_maps_class_indices_to_label_ids() -> None:
    # the fields of pipeline.Segmentation that from_segmentation reads (duck-typed)
    seg = SimpleNamespace(instance_class=np.array([1, 0], np.int32), instance_score=np.array([0.9, 0.4], np.float32),
                          instance_point_idx=np.arange(300, dtype=np.int64), instance_offsets=np.array([0, 200, 300]))
    preds = ScenePredictions.from_segmentation(seg, label_of_class=[TABLE, CHAIR])
    np.testing.assert_array_equal(preds.label_ids, [CHAIR, TABLE])
    assert preds.confidences.dtype == np.float64
    gt = np.repeat([CHAIR * 1000 + 1, TABLE * 1000 + 1], [200, 100])
    r = evaluate_instances([preds], [gt])
    assert r["classes"]["chair"]["AP"] == 1.0 and r["classes"]["table"]["AP"] == 1.0
    with pytest.raises(ValueError, match="label_of_class"):
        ScenePredictions.from_segmentation(seg, label_of_class=[TABLE])
