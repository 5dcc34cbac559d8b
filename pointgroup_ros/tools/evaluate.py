"""`pointgroup-ros eval`: run a model over a dataset and report the benchmark figures."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..evaluation.views import VIEWS

log = logging.getLogger("pointgroup_ros.eval")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="checkpoint (default: the shipped synthetic demo model)")
    p.add_argument("--config", help="preset or YAML (default: the one stored in the weights)")
    p.add_argument("--data", default="synthetic",
                   help="folder of prepared scenes (its val/ subfolder when present), or 'synthetic' (held-out rooms)")
    p.add_argument("--scenes", type=int, default=16, help="synthetic data: held-out rooms to evaluate")
    p.add_argument("--tuning-rooms", action="store_true",
                   help="synthetic data: evaluate on the tuning rooms (seeds 2,000,000+) instead of the held-out "
                        "ones; choose thresholds there, report on the held-out rooms")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preprocess, grouping or postprocess key, e.g. --set grouping.shifted_radius=0.02 "
                        "or --set preprocess.voxel_size=0 (repeatable)")
    p.add_argument("--sets", choices=("p", "q", "both", "ablation"), default=None,
                   help="grouping sets; 'ablation' compares P, Q and both (paper Table 2)")
    p.add_argument("--sequences", type=int, default=0, metavar="K",
                   help="evaluate per frame on K held-out camera sequences (seeds 0..K-1, pointgroup_ros.data.camera: "
                        "a robot's depth camera in synthetic rooms, optical frame + gravity transform) instead of "
                        "whole rooms")
    p.add_argument("--frames", type=int, default=40, help="frames per camera sequence (with --sequences)")
    p.add_argument("--view", choices=VIEWS, default="room",
                   help="how the pipeline gets each scene: room (as stored, z up, centred), far (40 m from the "
                        "frame's origin) or optical (in a tilted camera's optical frame, with its pose on a z-up "
                        "base as the gravity transform); a robot's clouds look like far or optical")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--write-submission", metavar="DIR", help="also write ScanNet submission files to DIR")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config
    from ..data.dataset import FolderDataset
    from ..evaluation.model_eval import compare_cluster_sets, evaluate_pipeline
    from ..evaluation.scannet import format_table
    from ..model.checkpoint import CheckpointError
    from ..pipeline import Pipeline
    from ..training.sources import open_dataset
    from .train import apply_overrides
    from tqdm import tqdm

    try:
        bad = [item for item in args.set
               if item.partition(".")[0].strip() not in ("preprocess", "grouping", "postprocess")]
        if bad:
            raise ConfigError(f"--set {bad[0]!r}: eval overrides preprocess.*, grouping.* and postprocess.* only "
                              "(other sections belong to the model: use --config)")
        cfg = load_config(args.config) if args.config else None
        pipe = Pipeline(cfg, args.weights, device=args.device)
        cfg = apply_overrides(pipe.cfg, args.set)
        if args.sequences:
            if cfg.data.dataset != "synthetic" or args.view != "room":
                raise ConfigError("--sequences: camera sequences are synthetic rooms seen from their own camera: "
                                  "use the synthetic model and no --view")
        else:
            dataset = open_dataset(cfg, args.data, "tune" if args.tuning_rooms else "val", train=False,
                                   num_synthetic=args.scenes)
            if dataset is None:  # a folder without val/: evaluate every scene in it
                dataset = FolderDataset(args.data, cfg.data, train=False)
    except (ConfigError, CheckpointError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if args.sequences:
        from ..evaluation.sequences import sequence_frames

        with tqdm(total=args.sequences * args.frames, desc="rendering camera frames", unit="frame") as bar:
            scenes: list = list(sequence_frames(range(args.sequences), args.frames, on_frame=lambda _: bar.update(1)))
    else:
        scenes = [dataset.load(i) for i in range(len(dataset))]
    if args.sets == "ablation":
        result: dict = {"ablation": compare_cluster_sets(pipe, scenes, progress=True, grouping=cfg.grouping,
                                                         postprocess=cfg.postprocess, view=args.view,
                                                         preprocess=cfg.preprocess)}
        for sets, r in result["ablation"].items():
            print(f"grouping on {sets:>4}: " + "  ".join(f"{k} {_fmt(r[k])}" for k in ("AP", "AP50", "AP25")))
    else:
        grouping = cfg.grouping if args.sets is None else cfg.replace(grouping={"sets": args.sets}).grouping
        result = evaluate_pipeline(pipe, scenes, grouping=grouping, postprocess=cfg.postprocess,
                                   submission_dir=args.write_submission, total=len(scenes), view=args.view,
                                   preprocess=cfg.preprocess)
        print(format_table(result))
        if "s3dis" in result:
            print("S3DIS: " + "  ".join(f"{k} {_fmt(result['s3dis'][k])}" for k in ("mPrec50", "mRec50", "mCov",
                                                                                    "mWCov")))
    result["weights"] = pipe.weights_description
    result["view"] = f"camera sequences {args.sequences} x {args.frames} frames" if args.sequences else args.view
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
