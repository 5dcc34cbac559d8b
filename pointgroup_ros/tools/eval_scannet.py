"""`pointgroup-ros eval-scannet`: the ScanNet benchmark's instance evaluation of submission files.

Like the official evaluate_semantic_instance.py, every <scene>.txt in --pred-dir is evaluated against
<scene>.txt in --gt-dir, and a prediction file without ground truth is an error. Ground-truth scenes without
a prediction file are reported (and are an error with --strict, as on the benchmark server).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred-dir", required=True, type=Path,
                        help="folder of <scene>.txt prediction files ('relative/mask.txt label_id confidence')")
    parser.add_argument("--gt-dir", required=True, type=Path,
                        help="folder of <scene>.txt ground truth (label_id * 1000 + instance per vertex)")
    parser.add_argument("--json", type=Path, default=None,
                        help="write {AP, AP50, AP25, classes: {name: {AP, AP50, AP25}}} here (null = no GT)")
    parser.add_argument("--strict", action="store_true",
                        help="fail when a ground-truth scene has no prediction file")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.scannet import InstanceEvaluator, format_table
    from ..evaluation.submission import RESULT_FILE, SubmissionError, load_scene_predictions, read_ids

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    pred_dir, gt_dir = Path(args.pred_dir), Path(args.gt_dir)
    for what, d in (("--pred-dir", pred_dir), ("--gt-dir", gt_dir)):
        if not d.is_dir():
            return fail(f"{what} {d} is not a folder")
    pred_files = sorted(p for p in pred_dir.glob("*.txt") if p.is_file() and p.name != RESULT_FILE)
    if not pred_files:
        return fail(f"no prediction files (<scene>.txt) in {pred_dir}")
    no_gt = [p.stem for p in pred_files if not (gt_dir / p.name).is_file()]
    if no_gt:
        return fail(f"{len(no_gt)} prediction file(s) match no ground-truth file in {gt_dir}: "
                    f"{', '.join(no_gt[:10])}{' ...' if len(no_gt) > 10 else ''}")
    predicted = {p.name for p in pred_files}
    no_pred = sorted(p.stem for p in gt_dir.glob("*.txt") if p.name not in predicted)
    if no_pred:
        msg = (f"{len(no_pred)} ground-truth scene(s) have no prediction file in {pred_dir}: "
               f"{', '.join(no_pred[:10])}{' ...' if len(no_pred) > 10 else ''}")
        if args.strict:
            return fail(msg)
        log.warning("%s (not evaluated)", msg)

    evaluator = InstanceEvaluator()
    try:
        for i, pred_file in enumerate(pred_files):
            gt_ids = read_ids(gt_dir / pred_file.name)
            evaluator.add_scene(load_scene_predictions(pred_file, pred_dir, gt_ids.shape[0]), gt_ids)
            log.debug("scene %d/%d: %s", i + 1, len(pred_files), pred_file.stem)
    except SubmissionError as exc:
        return fail(str(exc))
    except ValueError as exc:
        return fail(f"{pred_file.stem}: {exc}")
    result = evaluator.result()
    print(f"ScanNet instance evaluation over {evaluator.num_scenes} scene(s)")
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.json}")
    return 0
