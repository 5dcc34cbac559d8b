"""`pointgroup-ros train`: train PointGroup (single process, or multi-GPU under torchrun)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("pointgroup_ros.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="preset name (scannet, s3dis, synthetic) or YAML file")
    p.add_argument("--data", help="folder of prepared scenes (with train/ and val/ subfolders), or 'synthetic'")
    p.add_argument("--out", default="runs/pointgroup", help="run folder: checkpoints, TensorBoard, config")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any configuration key, e.g. --set train.prepare_epochs=100 (repeatable; "
                        "VALUE is read as YAML)")
    p.add_argument("--resume", help="continue from a checkpoint of this trainer (e.g. RUN/latest.pth)")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="fine-tune: start from these model weights (any checkpoint or shipped weights of the same "
                        "model) with a fresh optimizer at epoch 1; not with --resume")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (torchrun sets the GPU per rank)")
    p.add_argument("--scenes", type=int, default=64, help="synthetic data: rooms to train on (and to hold out)")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate on the validation set every N epochs")
    p.add_argument("--no-augment", action="store_true", help="train on the scenes as they are (overfitting checks)")
    p.add_argument("--threads", type=int, help="torch CPU threads (on a busy machine 1 is often fastest)")


def apply_overrides(cfg: "Config", items: list[str]) -> "Config":
    """cfg with --set SECTION.KEY=VALUE overrides applied (values parsed as YAML, checked like the file)."""
    import yaml

    from ..config import ConfigError

    sections: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. train.epochs=10")
        sections.setdefault(section, {})[name] = yaml.safe_load(value)
    return cfg.replace(**sections) if sections else cfg


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from ..config import ConfigError, load_config
    from ..data.dataset import collate
    from ..evaluation.model_eval import evaluate_pipeline
    from ..training.sources import NO_AUGMENTATION, SYNTHETIC, open_dataset
    from ..training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume and args.init:
        log.error("--resume and --init exclude each other: --resume continues a run (optimizer, epoch), --init "
                  "starts a new one from given weights")
        return 2
    try:
        cfg = apply_overrides(load_config(args.config), args.set)
        if args.epochs:
            cfg = cfg.replace(train={"epochs": args.epochs})
        train_set = open_dataset(cfg, args.data, "train", train=True, num_synthetic=args.scenes, seed=cfg.train.seed,
                                 augment=NO_AUGMENTATION if args.no_augment else None)
        # synthetic rooms: monitor on the tuning rooms, so the held-out ones stay unseen until the end
        monitor = "tune" if str(args.data or cfg.data.dataset) == SYNTHETIC else "val"
        val_set = open_dataset(cfg, args.data, monitor, train=False, num_synthetic=max(args.scenes // 4, 1))
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    assert train_set is not None

    def evaluate(model: torch.nn.Module) -> dict:
        if val_set is None:
            return {}
        from ..pipeline import Pipeline

        pipe = Pipeline.from_model(cfg, model, device=trainer.device)
        result = evaluate_pipeline(pipe, (val_set.load(i) for i in range(len(val_set))), total=len(val_set))
        model.train()
        return {k: result[k] for k in ("AP", "AP50", "AP25") if result.get(k) is not None}

    trainer = Trainer(cfg, args.out, device=args.device, evaluate=evaluate, eval_every=args.eval_every)
    sampler = DistributedSampler(train_set, seed=cfg.train.seed) if trainer.world > 1 else None
    loader = DataLoader(train_set, batch_size=cfg.train.batch_size, shuffle=sampler is None, sampler=sampler,
                        collate_fn=collate, num_workers=cfg.train.num_workers, drop_last=len(train_set) > cfg.train.batch_size,
                        generator=torch.Generator().manual_seed(cfg.train.seed))

    def set_epoch(epoch: int) -> None:
        train_set.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)

    from ..model.checkpoint import CheckpointError
    try:
        if args.resume:
            trainer.resume(args.resume)
        elif args.init:
            trainer.initialize(args.init)
    except CheckpointError as exc:
        log.error("%s", exc)
        return 2
    result = trainer.fit(loader, set_epoch=set_epoch)
    if trainer.rank == 0:
        summary = {"epochs_run": result.epochs_run, "last_losses": result.last_losses,
                   "checkpoint": str(result.checkpoint), "metrics": result.metrics}
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
        log.info("done: %s", json.dumps(summary))
    return 0
