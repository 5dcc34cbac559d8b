"""Run a Pipeline over labelled scenes and score it with the benchmark protocols.

Which protocol follows from the dataset of the configuration:
- scannet: the ScanNet benchmark (18 classes by NYU40 id, ground truth from each scene's gt_ids when the
  preparation kept them, else from its labels);
- s3dis: S3DIS mPrec50 / mRec50 / mCov / mWCov, plus AP / AP50 / AP25 over its thing classes;
- anything else (synthetic rooms, users' data): AP / AP50 / AP25 by the ScanNet rules over the thing
  classes of the configuration, label id = class index + 1 (ids must be >= 1).

Scenes are always evaluated whole: the pipeline's max_points cap is lifted while evaluating, since a random
subset would make the figures depend on the subsampling and differ from the authors' (who test every point).
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from ..config import SCANNET20_NYU40_IDS, Config, GroupingConfig, PostprocessConfig, PreprocessConfig
from .predictions import ScenePredictions
from .s3dis import evaluate_s3dis
from .scannet import SCANNET_EVAL_IDS, SCANNET_EVAL_NAMES, evaluate_instances, gt_ids_from_labels
from .submission import write_submission
from .views import view_points

# Pipeline.max_points that never subsamples a scene
NO_POINT_CAP = sys.maxsize

# (xyz (N, 3), scene index) -> the same N points in new coordinates, e.g. authors_protocol.authors_test_transform
PointTransform = Callable[[np.ndarray, int], np.ndarray]


@contextlib.contextmanager
def whole_scenes(pipeline: Any) -> Iterator[None]:
    """Lift the pipeline's max_points cap (when it has one) for the duration, then restore it."""
    cap = getattr(pipeline, "max_points", None)
    if cap is None:  # a stand-in without the cap
        yield
        return
    pipeline.max_points = NO_POINT_CAP
    try:
        yield
    finally:
        pipeline.max_points = cap


def label_ids_for(cfg: Config) -> tuple[np.ndarray, tuple[int, ...], tuple[str, ...]]:
    """(label id of each class index, evaluated label ids, their names) for the configuration's dataset."""
    data = cfg.data
    if data.dataset == "scannet" and data.num_classes == len(SCANNET20_NYU40_IDS):
        return np.asarray(SCANNET20_NYU40_IDS, np.int64), SCANNET_EVAL_IDS, SCANNET_EVAL_NAMES
    ids = np.arange(1, data.num_classes + 1, dtype=np.int64)
    return ids, tuple(int(ids[c]) for c in data.thing_classes), tuple(data.class_names[c] for c in data.thing_classes)


def scene_gt_ids(scene: Any, class_label_ids: np.ndarray) -> np.ndarray:
    """Benchmark ground truth (label id * 1000 + k) of a labelled Scene."""
    if getattr(scene, "gt_ids", None) is not None:
        return np.asarray(scene.gt_ids, np.int64)
    sem = np.asarray(scene.semantic, np.int64)
    labels = np.where(sem >= 0, class_label_ids[np.clip(sem, 0, None)], 0)
    return gt_ids_from_labels(labels, scene.instance, no_instance=None)


def evaluate_pipeline(pipeline: Any, scenes: Iterable[Any], cfg: Config | None = None,
                      grouping: GroupingConfig | None = None, postprocess: PostprocessConfig | None = None,
                      submission_dir: str | Path | None = None, progress: bool = True,
                      total: int | None = None, view: str = "room",
                      preprocess: PreprocessConfig | None = None,
                      point_transform: PointTransform | None = None) -> dict[str, Any]:
    """Segment every scene (xyz, rgb, semantic, instance[, gt_ids, name]) whole and score the results.

    view: how the pipeline gets each scene (views.VIEWS): as stored, 40 m from the origin, or in the optical
    frame of a camera in the room with its gravity transform (scene i from camera seed i). A scene that carries
    its own `gravity_transform` (a camera sequence's frame, sequences.SensorFrame) is given with it.
    point_transform(xyz, i): new coordinates for the points of scene i (0-based, in the order given), applied
    before the view, e.g. the authors' test-time flip and rotation (authors_protocol.authors_test_transform).
    The points and their order stay, so the predictions are scored against the scene's own ground truth.
    Returns the AP figures ({"AP", "AP50", "AP25", "classes": ...}), with "s3dis" figures for S3DIS, and
    "scenes" (the count). submission_dir: also write the official submission files there.
    """
    cfg = cfg or pipeline.cfg
    class_label_ids, eval_ids, eval_names = label_ids_for(cfg)
    predictions: list[ScenePredictions] = []
    gts: list[np.ndarray] = []
    sem_gt: list[np.ndarray] = []
    inst_gt: list[np.ndarray] = []
    sem_pred: list[np.ndarray] = []
    with whole_scenes(pipeline):
        for i, scene in enumerate(tqdm(scenes, total=total, desc="evaluating", disable=not progress, leave=False)):
            rgb = np.clip(np.asarray(scene.rgb), 0, 255).astype(np.uint8)
            xyz = np.asarray(scene.xyz, np.float32)
            if point_transform is not None:
                xyz = np.asarray(point_transform(xyz, i), np.float32)
                if xyz.shape != np.shape(scene.xyz):  # the ground truth is per point
                    raise ValueError(f"point_transform must move scene {i}'s points, not change their shape "
                                     f"{np.shape(scene.xyz)} to {xyz.shape}")
            xyz, gravity = view_points(xyz, view, seed=i)
            if getattr(scene, "gravity_transform", None) is not None:  # a sensor's frame (camera sequences)
                if view != "room" or point_transform is not None:
                    raise ValueError(f"scene {getattr(scene, 'name', i)} is in its sensor's frame: view must be "
                                     "'room' and no point_transform (its gravity transform would not hold)")
                gravity = scene.gravity_transform
            seg = pipeline.segment(xyz, rgb, grouping=grouping, postprocess=postprocess, preprocess=preprocess,
                                   gravity_transform=gravity)
            pred = ScenePredictions.from_segmentation(seg, class_label_ids)
            predictions.append(pred)
            gts.append(scene_gt_ids(scene, class_label_ids))
            sem_gt.append(np.asarray(scene.semantic))
            inst_gt.append(np.asarray(scene.instance))
            sem_pred.append(seg.semantic)
            if submission_dir is not None:
                write_submission(submission_dir, getattr(scene, "name", "") or f"scene{i:04d}", pred,
                                 len(seg.semantic))
    result = evaluate_instances(predictions, gts, eval_ids, eval_names)
    result["scenes"] = len(predictions)
    if cfg.data.dataset == "s3dis":
        s3dis_preds = [ScenePredictions(p.point_idx, p.offsets, p.label_ids - 1, p.confidences) for p in predictions]
        result["s3dis"] = evaluate_s3dis(s3dis_preds, sem_gt, inst_gt, sem_pred, class_names=cfg.data.class_names)
    return result


def compare_cluster_sets(pipeline: Any, scenes: Sequence[Any], progress: bool = False,
                         grouping: GroupingConfig | None = None, postprocess: PostprocessConfig | None = None,
                         view: str = "room", preprocess: PreprocessConfig | None = None,
                         point_transform: PointTransform | None = None) -> dict[str, dict[str, Any]]:
    """The paper's Table 2 ablation: AP figures when grouping on P only, Q only and both.

    grouping / postprocess: the settings to compare under (default: the pipeline's); only `sets` varies.
    point_transform: as in evaluate_pipeline (the same transform of each scene for every set)."""
    base = grouping or pipeline.cfg.grouping
    out = {}
    for sets in ("p", "q", "both"):
        out[sets] = evaluate_pipeline(pipeline, scenes, grouping=dataclasses.replace(base, sets=sets),
                                      postprocess=postprocess, progress=progress, total=len(scenes), view=view,
                                      preprocess=preprocess, point_transform=point_transform)
    return out
