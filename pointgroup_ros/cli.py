"""`pointgroup-ros`: one command-line entry point; each subcommand lives in pointgroup_ros/tools/.

Each tool module defines `add_arguments(parser)` and `run(args) -> int`; heavy imports (torch, spconv,
rosbags) happen inside run(), so `pointgroup-ros --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module under pointgroup_ros.tools, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run the full pipeline on a generated scene and write demo_out/"),
    "run": ("run", "offline runner: segment a bag (rosbag2 / ROS 1) or one cloud file"),
    "bench": ("bench", "per-stage timing tables (grouping and the whole pipeline)"),
    "gpu-report": ("gpu_report", "on a GPU machine: gpu tests, grouping and whole-frame benchmarks, goals -> "
                   "report.md + report.json"),
    "convert-weights": ("convert_weights", "convert the authors' spconv 1.x checkpoint to this model"),
    "train": ("train", "train PointGroup on ScanNet, S3DIS, synthetic or your own data"),
    "eval": ("evaluate", "run a model over a dataset and report AP / AP50 / AP25, mPrec50 / mRec50"),
    "eval-scannet": ("eval_scannet", "ScanNet benchmark evaluation of prediction files"),
    "prepare": ("prepare", "prepare ScanNet v2 / S3DIS raw releases into training files"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pointgroup-ros", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(f"pointgroup_ros.tools.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pointgroup_ros.tools.{module_name}":
                raise
            continue  # subcommand not part of this build
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
