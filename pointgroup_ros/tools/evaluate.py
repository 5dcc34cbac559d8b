"""`pointgroup-ros eval`: run a model over a dataset and report the benchmark figures."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..evaluation.views import VIEWS

log = logging.getLogger("pointgroup_ros.eval")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Scenes are always evaluated whole: the pipeline runs without its max_points cap (300,000 points "
                "on a robot), so no scene is subsampled, as in the authors' test.py.")
    p.add_argument("--weights", help="checkpoint (default: the shipped synthetic demo model)")
    p.add_argument("--config", help="preset or YAML (default: the one stored in the weights)")
    p.add_argument("--data", default="synthetic",
                   help="folder of prepared scenes (its val/ subfolder when present), or 'synthetic' (held-out rooms)")
    p.add_argument("--scenes", type=int, default=16, help="synthetic data: held-out rooms to evaluate")
    p.add_argument("--tuning-rooms", action="store_true",
                   help="synthetic data: evaluate on the tuning rooms (seeds 2,000,000+; with --sequences the tuning "
                        "sequences, seeds 100,000+) instead of the held-out ones; choose thresholds there, report "
                        "on the held-out ones")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preprocess, grouping or postprocess key, e.g. --set grouping.shifted_radius=0.02 "
                        "or --set preprocess.voxel_size=0; with --track also tracking.KEY (TrackerConfig), e.g. "
                        "--set tracking.min_iou=0.2 (repeatable)")
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
    p.add_argument("--track", action="store_true",
                   help="with --sequences: track the instances over each sequence (pointgroup_ros.tracking, in the "
                        "odom frame) and report identity metrics (IDF1, IDP, IDR, MOTA, identity switches, per-frame "
                        "tracking cost) instead of per-frame AP")
    p.add_argument("--min-gt-points", type=int, default=0, metavar="N",
                   help="with --track: an object with fewer than N points in a frame is ignored there (not a miss "
                        "when unseen, not a false positive when tracked), as the ScanNet benchmark ignores ground "
                        "truth under 100 points; default 0: every visible object counts")
    p.add_argument("--match-iou", type=float, default=0.5,
                   help="with --track: IoU a published track needs with a ground-truth instance to match it")
    p.add_argument("--authors-protocol", action="store_true",
                   help="test as the authors' test.py does: every point to the network (preprocess.voxel_size=0 "
                        "unless --set gives one) and their random x-flip and rotation about z per scene (numpy "
                        "seed 567; scene k in name order gets their scene k's draw, so evaluate the whole val "
                        "split). Their checkpoint: 57.1 AP50 on ScanNet val with it, 55.1 without. Not with "
                        "--sequences or --view")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--write-submission", metavar="DIR", help="also write ScanNet submission files to DIR")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _tracker_config(items: list[str]):  # -> TrackerConfig
    """TrackerConfig with --set tracking.KEY=VALUE overrides (values parsed as YAML, then validated)."""
    import dataclasses

    import yaml

    from ..config import ConfigError
    from ..tracking import TrackerConfig

    names = {f.name for f in dataclasses.fields(TrackerConfig)}
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        name = key.strip().partition(".")[2]
        if not sep or name not in names:
            raise ConfigError(f"--set {item!r}: expected tracking.KEY=VALUE with KEY one of {sorted(names)}")
        changes[name] = yaml.safe_load(value)
    return TrackerConfig().replace(**changes)


def _sequence_seeds(args: argparse.Namespace) -> range:
    """The held-out camera sequences 0..K-1, or with --tuning-rooms the tuning ones."""
    from ..data.camera import TUNING_SEQUENCE_SEED

    first = TUNING_SEQUENCE_SEED if args.tuning_rooms else 0
    return range(first, first + args.sequences)


def _sequence_label(args: argparse.Namespace) -> str:
    which = "tuning" if args.tuning_rooms else "held-out"
    return f"{which} camera sequences {args.sequences} x {args.frames} frames"


def _run_tracking(args: argparse.Namespace, pipe, cfg, tracker_config) -> int:
    """`eval --sequences K --frames F --track`: identity metrics of the tracker over the camera sequences."""
    from tqdm import tqdm

    from ..evaluation.tracking import evaluate_tracking, format_tracking_table

    try:
        import motmetrics  # noqa: F401  (an evaluation extra, not needed on a robot)
    except ImportError:
        log.error("eval --track computes identity metrics with motmetrics: pip install 'pointgroup_ros[eval]' "
                  "(or pip install motmetrics)")
        return 2
    with tqdm(total=2 * args.sequences * args.frames, desc="camera sequences (render + track)",
              unit="frame") as bar:
        result = evaluate_tracking(pipe, _sequence_seeds(args), args.frames, tracker_config,
                                   max_distance=1.0 - args.match_iou, grouping=cfg.grouping,
                                   postprocess=cfg.postprocess, preprocess=cfg.preprocess,
                                   on_frame=lambda _stage, _i: bar.update(1), min_gt_points=args.min_gt_points)
    print(format_tracking_table(result))
    result["weights"] = pipe.weights_description
    result["view"] = f"{_sequence_label(args)}, tracked in odom"
    result["device"] = str(pipe.device)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config
    from ..data.dataset import FolderDataset
    from ..evaluation.authors_protocol import AUTHORS_TEST_SEED, authors_test_transform
    from ..evaluation.model_eval import NO_POINT_CAP, compare_cluster_sets, evaluate_pipeline
    from ..evaluation.scannet import format_table
    from ..model.checkpoint import CheckpointError
    from ..pipeline import Pipeline
    from ..training.sources import open_dataset
    from .train import apply_overrides
    from tqdm import tqdm

    tracker_config = None
    try:
        if args.track and not args.sequences:
            raise ConfigError("--track: tracking is evaluated on camera sequences: add --sequences K")
        if args.track and args.sets is not None:
            raise ConfigError("--track: --sets compares grouping sets by AP; it does not apply to tracking")
        if args.authors_protocol and (args.sequences or args.view != "room"):
            raise ConfigError("--authors-protocol: the authors' test transform applies to whole scenes as stored: "
                              "no --sequences, no --view")
        if args.min_gt_points < 0 or (args.min_gt_points and not args.track):
            raise ConfigError(f"--min-gt-points {args.min_gt_points}: a point count >= 0, with --track")
        if not 0.0 < args.match_iou <= 1.0:
            raise ConfigError(f"--match-iou must be in (0, 1], got {args.match_iou}")
        tracking_sets = [item for item in args.set if item.partition(".")[0].strip() == "tracking"]
        if tracking_sets:
            if not args.track:
                raise ConfigError(f"--set {tracking_sets[0]!r}: tracking.* overrides need --track")
            tracker_config = _tracker_config(tracking_sets)
        args.set = [item for item in args.set if item not in tracking_sets]
        bad = [item for item in args.set
               if item.partition(".")[0].strip() not in ("preprocess", "grouping", "postprocess")]
        if bad:
            raise ConfigError(f"--set {bad[0]!r}: eval overrides preprocess.*, grouping.* and postprocess.* only "
                              "(other sections belong to the model: use --config)")
        cfg = load_config(args.config) if args.config else None
        pipe = Pipeline(cfg, args.weights, device=args.device, max_points=NO_POINT_CAP)
        if args.authors_protocol and not any(item.partition("=")[0].strip() == "preprocess.voxel_size"
                                             for item in args.set):
            args.set = ["preprocess.voxel_size=0", *args.set]  # their network sees every point
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
    if args.track:
        return _run_tracking(args, pipe, cfg, tracker_config)
    if args.sequences:
        from ..evaluation.sequences import sequence_frames

        with tqdm(total=args.sequences * args.frames, desc="rendering camera frames", unit="frame") as bar:
            scenes: list = list(sequence_frames(_sequence_seeds(args), args.frames, on_frame=lambda _: bar.update(1)))
    else:
        scenes = [dataset.load(i) for i in range(len(dataset))]
    point_transform = authors_test_transform if args.authors_protocol else None
    if point_transform is not None:
        log.info("authors' protocol: %d whole scene(s), voxel_size %s, each flipped / rotated as their test.py "
                 "(seed %d, scene k in name order)", len(scenes), cfg.preprocess.voxel_size, AUTHORS_TEST_SEED)
    if args.sets == "ablation":
        result: dict = {"ablation": compare_cluster_sets(pipe, scenes, progress=True, grouping=cfg.grouping,
                                                         postprocess=cfg.postprocess, view=args.view,
                                                         preprocess=cfg.preprocess, point_transform=point_transform)}
        for sets, r in result["ablation"].items():
            print(f"grouping on {sets:>4}: " + "  ".join(f"{k} {_fmt(r[k])}" for k in ("AP", "AP50", "AP25")))
    else:
        grouping = cfg.grouping if args.sets is None else cfg.replace(grouping={"sets": args.sets}).grouping
        result = evaluate_pipeline(pipe, scenes, grouping=grouping, postprocess=cfg.postprocess,
                                   submission_dir=args.write_submission, total=len(scenes), view=args.view,
                                   preprocess=cfg.preprocess, point_transform=point_transform)
        print(format_table(result))
        if "s3dis" in result:
            print("S3DIS: " + "  ".join(f"{k} {_fmt(result['s3dis'][k])}" for k in ("mPrec50", "mRec50", "mCov",
                                                                                    "mWCov")))
    result["weights"] = pipe.weights_description
    result["view"] = _sequence_label(args) if args.sequences else args.view
    if args.authors_protocol:
        result["protocol"] = "authors' test.py: every point, x-flip and z rotation drawn with seed 567"
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
