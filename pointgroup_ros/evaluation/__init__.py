"""Instance-segmentation metrics: the ScanNet benchmark protocol (AP / AP50 / AP25, official file formats)
and the S3DIS protocol (mPrec50 / mRec50 / mCov / mWCov). numpy only; no torch, no ROS."""
from __future__ import annotations

from .predictions import ScenePredictions
from .s3dis import S3DISEvaluator, evaluate_s3dis, format_s3dis_table
from .scannet import (IOU_THRESHOLDS, MIN_REGION_SIZE, SCANNET_EVAL_IDS, SCANNET_EVAL_NAMES, InstanceEvaluator,
                      average_precision, evaluate_instances, format_table, gt_ids_from_labels)
from .submission import (SubmissionError, load_scene_predictions, read_ids, read_prediction_file,
                         write_submission)

__all__ = [
    "IOU_THRESHOLDS", "MIN_REGION_SIZE", "SCANNET_EVAL_IDS", "SCANNET_EVAL_NAMES", "InstanceEvaluator",
    "S3DISEvaluator", "ScenePredictions", "SubmissionError", "average_precision", "evaluate_instances",
    "evaluate_s3dis", "format_s3dis_table", "format_table", "gt_ids_from_labels", "load_scene_predictions",
    "read_ids", "read_prediction_file", "write_submission",
]
