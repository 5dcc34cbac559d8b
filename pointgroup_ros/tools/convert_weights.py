"""`pointgroup-ros convert-weights SRC DST`: the authors' spconv 1.x checkpoint -> this project's format.

SRC: the authors' pointgroup.pth (a flat state_dict, maybe with a 'module.' prefix; read with
weights_only=True) or any checkpoint load_checkpoint accepts. The weights are converted (see
pointgroup_ros/model/checkpoint.py), checked key by key against the model of the chosen configuration,
and written to DST with that configuration, so that DST loads with load_weights and carries its config.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="the authors' checkpoint (spconv 1.x layout), e.g. pointgroup.pth")
    parser.add_argument("dst", type=Path, help="output file (this project's checkpoint format)")
    parser.add_argument("--config", default=None,
                        help="preset name or YAML path of the model the weights belong to (default: the one "
                             "stored in SRC, else scannet)")
    parser.add_argument("--half", action="store_true",
                        help="store float16 weights (half the size; loading converts back to float32)")
    parser.add_argument("--description", help="a note stored in DST (e.g. what the model was trained on)")
    parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config
    from ..model.checkpoint import CheckpointError, check_state_dict, load_checkpoint, save_checkpoint
    from ..model.network import PointGroup, count_parameters

    src, dst = Path(args.src), Path(args.dst)
    if dst.exists() and not args.force:
        print(f"error: {dst} exists (use --force to overwrite)", file=sys.stderr)
        return 1
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        print("error: SRC and DST are the same file", file=sys.stderr)
        return 1
    try:
        ckpt = load_checkpoint(src)
        cfg = load_config(args.config) if args.config else (ckpt.make_config() or load_config("scannet"))
        model = PointGroup(cfg.model, cfg.data.num_classes, cfg.data.scale, cfg.data.full_scale[0])
        check_state_dict(model, ckpt.state_dict, source=str(src))
        model.load_state_dict(ckpt.state_dict, strict=False)
        if args.half:
            model.half()
        extra = {"source": src.name, "converted_from_spconv1": ckpt.converted_from_spconv1}
        if args.description:
            extra["description"] = args.description
        save_checkpoint(dst, model, cfg, extra=extra)
    except (CheckpointError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    kernels = sum(1 for v in ckpt.state_dict.values() if v.ndim == 5)
    layout = "spconv 1.x (converted)" if ckpt.converted_from_spconv1 else "already spconv 2 (copied)"
    print(f"{src} -> {dst}: {len(ckpt.state_dict)} tensors, {kernels} sparse conv kernels, {layout}; "
          f"{count_parameters(model):,} parameters, {cfg.data.num_classes} classes ({cfg.data.dataset})")
    return 0
