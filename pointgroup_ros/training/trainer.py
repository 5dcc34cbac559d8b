"""The PointGroup trainer: Adam, prepare epochs, four losses, checkpoints and resume, TensorBoard, DDP.

Multi-GPU runs go through torchrun and torch's DistributedDataParallel (the standard engine); the same
code runs single-process on the CPU (tests) or one GPU. The network, the grouping and ScoreNet are wrapped
in one module (TrainingStep) whose forward returns the losses, so DDP sees every parameter that a step
uses (ScoreNet's only after prepare_epochs, hence find_unused_parameters).
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from ..config import Config, TrainConfig
from ..model.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from ..model.losses import pointgroup_loss
from ..model.network import PointGroup
from ..types import PointBatch

log = logging.getLogger(__name__)


class TrainingStep(nn.Module):
    """One training forward: backbone and heads, then (with_score) dual-set grouping on the predicted
    semantics and offsets and ScoreNet; returns the loss terms and their weighted total.

    Scenes of a batch never share a cluster (dual_set_proposals groups by batch_idx * num_classes + class).
    """

    def __init__(self, model: PointGroup, cfg: Config) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, batch: PointBatch, with_score: bool,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        assert batch.semantic is not None and batch.instance is not None, "training batches carry labels"
        out = self.model(batch)
        score_logits = proposals = None
        if with_score:
            from ..clustering import dual_set_proposals  # grouping is only needed after prepare_epochs

            with torch.no_grad():
                proposals = dual_set_proposals(batch.xyz, out.offsets.detach(), out.semantic_logits.argmax(dim=1),
                                               self.cfg.data.stuff_classes, self.cfg.grouping.radius,
                                               self.cfg.grouping.min_points, self.cfg.grouping.sets,
                                               batch_idx=batch.batch_idx, num_classes=self.cfg.data.num_classes,
                                               shifted_radius=self.cfg.grouping.shifted_radius,
                                               max_neighbours=self.cfg.grouping.max_neighbours)
            score_logits = self.model.score_proposals(out.point_features, batch.xyz, proposals, random_shift=True,
                                                      generator=generator)
        t = self.cfg.train
        return pointgroup_loss(out.semantic_logits, out.offsets, batch.xyz, batch.semantic, batch.instance,
                               score_logits, proposals, t.loss_weights, t.score_bg_threshold,
                               t.score_fg_threshold, self.cfg.data.ignore_label)


@dataclass
class TrainResult:
    epochs_run: int
    last_losses: dict[str, float]
    history: list[dict[str, float]]
    checkpoint: Path | None
    metrics: dict[str, Any] | None


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) for a plain run."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    """Trains one model. Batches come from `train_loader` (an iterable of PointBatch per epoch; with DDP
    each rank's loader yields its own shard); `evaluate` (optional) returns metrics for the model."""

    def __init__(self, cfg: Config, out_dir: str | Path, device: str = "auto",
                 evaluate: Callable[[PointGroup], dict[str, Any]] | None = None,
                 eval_every: int = 0, tensorboard: bool = True) -> None:
        self.cfg = cfg.validate()
        self.out_dir = Path(out_dir)
        self.rank, self.world, local_rank = _distributed()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if device == "auto":
            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.generator = seed_everything(cfg.train.seed + self.rank)
        data = cfg.data
        self.model = PointGroup(cfg.model, data.num_classes, scale=data.scale,
                                min_spatial=data.full_scale[0]).to(self.device)
        self.step_module: nn.Module = TrainingStep(self.model, cfg).to(self.device)
        if self.world > 1:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr)
        self.amp = cfg.train.mixed_precision and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.start_epoch = 1
        self.evaluate = evaluate
        self.eval_every = eval_every
        self.writer = None
        if tensorboard and self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:  # tensorboard is an optional extra ('train')
                log.warning("tensorboard is not installed: no TensorBoard scalars (pip install tensorboard)")

    # ---- checkpoints -----------------------------------------------------------------------------------
    def save(self, epoch: int, name: str | None = None) -> Path:
        path = self.out_dir / (name or f"epoch_{epoch:04d}.pth")
        save_checkpoint(path, self.model, self.cfg, {"epoch": epoch, "optimizer": self.optimizer.state_dict()})
        latest = self.out_dir / "latest.pth"
        if path != latest:
            save_checkpoint(latest, self.model, self.cfg,
                            {"epoch": epoch, "optimizer": self.optimizer.state_dict()})
        return path

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint written by save(): model, optimizer and epoch."""
        ckpt = load_checkpoint(path)
        if "epoch" not in ckpt.extra or "optimizer" not in ckpt.extra:
            raise CheckpointError(f"{path}: not a training checkpoint (no epoch / optimizer state)")
        self.model.load_state_dict(ckpt.state_dict)
        self.optimizer.load_state_dict(ckpt.extra["optimizer"])
        self.start_epoch = int(ckpt.extra["epoch"]) + 1
        log.info("resumed from %s at epoch %d", path, self.start_epoch)

    def initialize(self, path: str | Path) -> None:
        """Start from the model weights in `path` (fine-tuning): optimizer and epoch count start afresh."""
        ckpt = load_weights(self.model, path)
        log.info("initialized from %s (%d tensors)", path, len(ckpt.state_dict))

    # ---- loop --------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, loader: Iterable[PointBatch], progress: bool = True) -> dict[str, float]:
        self.model.train()
        with_score = epoch > self.cfg.train.prepare_epochs
        sums: dict[str, float] = {}
        count = 0
        total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
        bar = tqdm(loader, total=total, desc=f"epoch {epoch}", disable=not progress or self.rank != 0,
                   leave=False, dynamic_ncols=True)
        for batch in bar:
            batch = batch.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, enabled=self.amp):
                losses = self.step_module(batch, with_score, self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses["total"]).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            values = {k: float(v.detach()) for k, v in losses.items()}
            if not math.isfinite(values["total"]):
                raise FloatingPointError(f"epoch {epoch}: loss is {values['total']} ({values})")
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            bar.set_postfix(loss=f"{values['total']:.3f}")
        return {k: v / max(count, 1) for k, v in sums.items()}

    def fit(self, train_loader: Iterable[PointBatch], epochs: int | None = None, progress: bool = True,
            set_epoch: Callable[[int], None] | None = None) -> TrainResult:
        """Train until `epochs` (default cfg.train.epochs); checkpoints every checkpoint_every epochs and at
        the end (out_dir/epoch_NNNN.pth, latest.pth, final.pth)."""
        epochs = epochs or self.cfg.train.epochs
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out_dir / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))
        history: list[dict[str, float]] = []
        metrics: dict[str, Any] | None = None
        path: Path | None = None
        for epoch in range(self.start_epoch, epochs + 1):
            if set_epoch is not None:
                set_epoch(epoch)  # DistributedSampler / augmentation seeds
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.cfg.train, epoch)
            losses = self.train_epoch(epoch, train_loader, progress)
            history.append({"epoch": epoch, **losses})
            if self.rank == 0:
                log.info("epoch %d/%d %s", epoch, epochs, " ".join(f"{k}={v:.4f}" for k, v in losses.items()))
                if self.writer is not None:
                    for k, v in losses.items():
                        self.writer.add_scalar(f"loss/{k}", v, epoch)
                    self.writer.add_scalar("lr", self.optimizer.param_groups[0]["lr"], epoch)
                if epoch % self.cfg.train.checkpoint_every == 0 and epoch != epochs:
                    path = self.save(epoch)
                if self.evaluate is not None and self.eval_every and (epoch % self.eval_every == 0 or epoch == epochs):
                    metrics = self.evaluate(self.model)
                    log.info("epoch %d metrics %s", epoch, _short(metrics))
                    if self.writer is not None:
                        for k, v in metrics.items():
                            if isinstance(v, (int, float)) and v is not None:
                                self.writer.add_scalar(f"metrics/{k}", v, epoch)
        if self.rank == 0 and history:
            path = self.save(history[-1]["epoch"], "final.pth")  # type: ignore[arg-type]
        if self.writer is not None:
            self.writer.flush()
        return TrainResult(len(history), {k: v for k, v in history[-1].items() if k != "epoch"} if history else {},
                           history, path, metrics)


def learning_rate(train: TrainConfig, epoch: int) -> float:
    """Step schedule: train.lr, multiplied by lr_multiplier after each epoch listed in lr_steps (1-based)."""
    return train.lr * train.lr_multiplier ** sum(1 for step in train.lr_steps if epoch > step)


def _short(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float))


def loss_curve(history: Sequence[dict[str, float]], key: str) -> list[float]:
    return [h[key] for h in history if key in h]
