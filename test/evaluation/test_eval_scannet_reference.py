"""Differential test: the vectorised ScanNet evaluator against a plain loop-and-dense-mask re-implementation
written here from the protocol description (../shared/docs/EVALUATION_PROTOCOL.md), on random scenes built
to hit every rule (groups, void, other classes, small regions, duplicates, ties, 0.25 conflicts)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pointgroup_ros.evaluation import (IOU_THRESHOLDS, SCANNET_EVAL_IDS, InstanceEvaluator, ScenePredictions,
                                       evaluate_instances, gt_ids_from_labels)

MIN_SIZE = 100


def reference_ap_matrix(scenes: list[tuple[np.ndarray, list[tuple[np.ndarray, int, float]]]],
                        class_ids: list[int]) -> np.ndarray:
    """scenes: (gt_ids (N,), [(bool mask (N,), label id, confidence), ...]). Returns (C, 10) AP."""
    prepared = []
    for gt, preds in scenes:
        void = np.array([(v // 1000) not in class_ids for v in gt.tolist()])
        gts = [(i, gt == i, int((gt == i).sum())) for i in sorted(set(gt.tolist())) if i != 0]
        inter = {(pi, gi): int(np.count_nonzero(pm & gm)) for pi, (pm, _, _) in enumerate(preds) for gi, gm, _ in gts}
        prepared.append((gt, preds, void, gts, inter))
    ap = np.full((len(class_ids), len(IOU_THRESHOLDS)), np.nan)
    for ci, c in enumerate(class_ids):
        for ti, th in enumerate(IOU_THRESHOLDS):
            rows: list[tuple[float, int]] = []
            fn, has_gt, has_pred = 0, False, False
            for gt, preds, void, gts, inter in prepared:
                class_gts = [g for g in gts if g[0] // 1000 == c]
                valid = [g for g in class_gts if g[2] >= MIN_SIZE]
                mine = [(pi, pm, conf) for pi, (pm, lab, conf) in enumerate(preds) if lab == c and pm.sum() >= MIN_SIZE]
                has_gt |= bool(valid)
                has_pred |= bool(mine)

                def iou(pi: int, pm: np.ndarray, gi: int, gsize: int) -> float:
                    k = inter[(pi, gi)]
                    return k / (gsize + int(pm.sum()) - k)

                used: set[int] = set()
                for gi, _, gsize in valid:
                    score = None
                    for pi, pm, conf in mine:
                        if pi in used or iou(pi, pm, gi, gsize) <= th:
                            continue
                        if score is None:
                            score = conf
                            used.add(pi)
                        else:
                            rows.append((min(score, conf), 0))
                            score = max(score, conf)
                    if score is None:
                        fn += 1
                    else:
                        rows.append((score, 1))
                for pi, pm, conf in mine:
                    if any(iou(pi, pm, gi, gsize) > th for gi, _, gsize in class_gts):
                        continue
                    ignored = int(np.count_nonzero(pm & void))
                    ignored += sum(inter[(pi, gi)] for gi, _, gsize in class_gts if gsize < MIN_SIZE)
                    if ignored / int(pm.sum()) <= th:
                        rows.append((conf, 0))
            if not has_gt:
                continue
            if not has_pred or not rows:
                ap[ci, ti] = 0.0
                continue
            num_gt = sum(t for _, t in rows) + fn
            prec, rec = [], []
            for s in sorted({r[0] for r in rows}):
                tp = sum(t for sc, t in rows if sc >= s)
                fp = sum(1 - t for sc, t in rows if sc >= s)
                prec.append(tp / (tp + fp))
                rec.append(tp / num_gt)
            prec.append(1.0)
            rec.append(0.0)
            total = 0.0
            for i in range(len(prec)):
                left = rec[max(i - 1, 0)]
                right = rec[i + 1] if i + 1 < len(rec) else 0.0
                total += prec[i] * 0.5 * (left - right)
            ap[ci, ti] = total
    return ap


def random_scene(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[np.ndarray, int, float]]]:
    """GT = consecutive segments of a random vertex order; predictions = windows over that order."""
    eval_ids = list(SCANNET_EVAL_IDS)
    classes = rng.choice(eval_ids, size=3, replace=False).tolist()
    n_seg = int(rng.integers(4, 16))
    ids: list[int] = []
    sizes: list[int] = []
    counter: dict[int, int] = {}
    prev: int | None = None
    for _ in range(n_seg):
        r = rng.random()
        if r < 0.1:
            gid = 0
        elif r < 0.17:
            gid = int(rng.integers(1, 999))  # group
        elif r < 0.27:
            gid = int(rng.choice([1, 2, 13, 40])) * 1000 + int(rng.integers(1, 50))  # not evaluated
        else:
            lab = prev if prev is not None and rng.random() < 0.5 else int(rng.choice(classes))
            counter[lab] = counter.get(lab, 0) + 1
            gid = lab * 1000 + counter[lab]
        prev = gid // 1000 if gid // 1000 in classes else None
        ids.append(gid)
        sizes.append(int(rng.integers(20, 99)) if rng.random() < 0.2 else int(rng.integers(100, 400)))
    n = int(sum(sizes))
    perm = rng.permutation(n)
    gt = np.empty(n, np.int64)
    gt[perm] = np.repeat(ids, sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    conf_pool = np.round(rng.random(4), 2)  # shared confidences make ties
    preds = []
    for s in range(n_seg):
        for _ in range(int(rng.integers(0, 3))):
            a = starts[s] + int(rng.integers(-sizes[s] // 2, sizes[s] // 2 + 1))
            b = starts[s + 1] + int(rng.integers(-sizes[s] // 2, sizes[s] // 2 + 1))
            if rng.random() < 0.2:
                b = starts[min(s + 2, n_seg)] - int(rng.integers(0, 40))  # reach into the next segments
            a, b = max(0, a), min(n, b)
            window = perm[a:b]
            if rng.random() < 0.3:
                window = window[rng.random(window.size) < 0.8]
            if window.size == 0:
                continue
            lab = ids[s] // 1000
            if lab not in eval_ids or rng.random() < 0.15:
                lab = int(rng.choice(eval_ids + [1, 2]))
            mask = np.zeros(n, bool)
            mask[window] = True
            conf = float(rng.choice(conf_pool)) if rng.random() < 0.5 else float(rng.random())
            preds.append((mask, lab, conf))
    return gt, preds


def to_predictions(preds: list[tuple[np.ndarray, int, float]], n: int) -> ScenePredictions:
    if not preds:
        return ScenePredictions.empty()
    return ScenePredictions.from_masks(np.stack([p[0] for p in preds]), [p[1] for p in preds], [p[2] for p in preds])


def averages(ap: np.ndarray) -> tuple[float, float, float]:
    def nanmean(v: np.ndarray) -> float:
        v = v[~np.isnan(v)]
        return float(v.mean()) if v.size else math.nan

    return nanmean(ap[:, :9].ravel()), nanmean(ap[:, 0]), nanmean(ap[:, 9])


def conflicts_at_025(gt: np.ndarray, preds: list[tuple[np.ndarray, int, float]]) -> int:
    """Predictions above 0.25 IoU with two same-class GT of >= 100 vertices (the sequential matching case)."""
    count = 0
    for pm, lab, _ in preds:
        hits = 0
        for g in set(gt[pm].tolist()):
            gm = gt == g
            if g // 1000 == lab and gm.sum() >= MIN_SIZE:
                k = np.count_nonzero(pm & gm)
                hits += k / (gm.sum() + pm.sum() - k) > 0.25
        count += hits >= 2
    return count


def test_matches_loop_reference_on_random_scenes() -> None:
    rng = np.random.default_rng(1234)
    conflicts = 0
    for trial in range(40):
        scenes = [random_scene(rng) for _ in range(int(rng.integers(1, 4)))]
        ev = InstanceEvaluator()
        for gt, preds in scenes:
            ev.add_scene(to_predictions(preds, gt.size), gt)
            conflicts += conflicts_at_025(gt, preds)
        ours = ev.ap_matrix()
        ref = reference_ap_matrix(scenes, list(SCANNET_EVAL_IDS))
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"trial {trial}")
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12, err_msg=f"trial {trial}")
        res = ev.result()
        for key, value in zip(("AP", "AP50", "AP25"), averages(ref)):
            assert (res[key] is None) == math.isnan(value)
            if res[key] is not None:
                assert res[key] == pytest.approx(value, abs=1e-12)
    assert conflicts >= 3  # the sequential (0.25) matching path was exercised


def test_real_scans_perfect_and_perturbed(realdata) -> None:
    rng = np.random.default_rng(7)
    scenes = []
    for name in ("scene0000_00", "scene0000_01"):
        sem = np.load(realdata / "scannet" / f"{name}_sem_label_all.npy", allow_pickle=False)
        ins = np.load(realdata / "scannet" / f"{name}_ins_label_all.npy", allow_pickle=False)
        gt = gt_ids_from_labels(sem, ins)
        ids = np.unique(gt[(gt // 1000 >= 3) & np.isin(gt // 1000, SCANNET_EVAL_IDS)])
        perfect = [(gt == i, int(i // 1000), 1.0) for i in ids]
        r = evaluate_instances([to_predictions(perfect, gt.size)], [gt])
        sizes = {int(i // 1000): 0 for i in ids}
        for i in ids:
            sizes[int(i // 1000)] = max(sizes[int(i // 1000)], int((gt == i).sum()))
        present = {c for c, s in sizes.items() if s >= MIN_SIZE}
        for c, cname in zip(SCANNET_EVAL_IDS, r["classes"]):
            expect = 1.0 if c in present else None
            assert r["classes"][cname]["AP"] == expect, cname
        # perturbed: drop points, take in the next instance's points, random labels and confidences
        preds = []
        for k, i in enumerate(ids):
            m = (gt == i) & (rng.random(gt.size) < rng.uniform(0.4, 1.0))
            if rng.random() < 0.3 and k + 1 < ids.size:
                m |= (gt == ids[k + 1]) & (rng.random(gt.size) < 0.5)
            lab = int(i // 1000) if rng.random() < 0.8 else int(rng.choice(SCANNET_EVAL_IDS))
            preds.append((m, lab, float(np.round(rng.random(), 1))))
        scenes.append((gt, preds))
    ours = evaluate_instances([to_predictions(p, g.size) for g, p in scenes], [g for g, _ in scenes])
    ref = reference_ap_matrix(scenes, list(SCANNET_EVAL_IDS))
    for key, value in zip(("AP", "AP50", "AP25"), averages(ref)):
        assert ours[key] == pytest.approx(value, abs=1e-12)
