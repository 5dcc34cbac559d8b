"""The ROS-free inference pipeline: a cloud's arrays in, instances out (used by the node, the runner, demo).

Segmentation is the contract between the pipeline and the message / file writers.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from .clustering import dual_set_proposals, nms, select_proposals
from .config import Config, GroupingConfig, PostprocessConfig, load_config
from .model.checkpoint import Checkpoint, check_state_dict, load_checkpoint
from .model.network import PointGroup
from .types import PointBatch, Proposals

log = logging.getLogger(__name__)

DEMO_WEIGHTS = Path(__file__).resolve().parent / "weights" / "demo_synthetic.pth"


@dataclass
class Segmentation:
    """Result for one cloud of N input points (M instances). Arrays are numpy, on the host.

    semantic: int32 (N,), predicted class index per input point; -1 for invalid (NaN / masked) points.
    instance: int32 (N,), instance index 0..M-1 per input point, -1 for none. Where instances overlap,
        a point belongs to the highest-scoring one.
    instance_class: int32 (M,), class index of each instance.
    instance_score: float32 (M,), ScoreNet score in [0, 1]; instances are sorted by descending score.
    instance_point_idx: int64 (K,), the input-cloud indices of every instance's points, concatenated.
    instance_offsets: int64 (M + 1,), instance m owns instance_point_idx[offsets[m]:offsets[m + 1]].
    box_min, box_max: float32 (M, 3), axis-aligned box of each instance's points (input frame, metres).
    class_names: names for the class indices.
    timings_ms: wall time of each stage in milliseconds, in pipeline order.
    """

    semantic: np.ndarray
    instance: np.ndarray
    instance_class: np.ndarray
    instance_score: np.ndarray
    instance_point_idx: np.ndarray
    instance_offsets: np.ndarray
    box_min: np.ndarray
    box_max: np.ndarray
    class_names: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def num_instances(self) -> int:
        return int(self.instance_class.shape[0])

    def instance_points(self, m: int) -> np.ndarray:
        """int64 (n_m,), input-cloud indices of instance m."""
        return self.instance_point_idx[self.instance_offsets[m]:self.instance_offsets[m + 1]]

    def instance_class_names(self) -> list[str]:
        return [self.class_names[c] for c in self.instance_class]


def _demo_checkpoint(cfg: Config | None) -> Checkpoint | None:
    """The shipped demo model's checkpoint when it exists and fits cfg (None: any), else None."""
    if not DEMO_WEIGHTS.is_file():
        return None
    ckpt = load_checkpoint(DEMO_WEIGHTS)
    demo_cfg = ckpt.make_config()
    if cfg is None or (demo_cfg is not None and (cfg.data, cfg.model) == (demo_cfg.data, demo_cfg.model)):
        return ckpt
    return None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error, not a silent fallback."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = torch.device("meta")  # an unknown name: reported below
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but torch sees no CUDA GPU "
                           f"(torch {torch.__version__}, CUDA build: {torch.version.cuda})")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return dev


class _StageTimer:
    """Wall time per stage in ms; synchronises CUDA so GPU work is charged to the right stage."""

    def __init__(self, device: torch.device) -> None:
        self.sync = device.type == "cuda"
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.times[stage] = self.times.get(stage, 0.0) + (now - self._t) * 1e3
        self._t = now


class Pipeline:
    """PointGroup inference for one cloud at a time: arrays in, Segmentation out.

    The model is loaded and warmed up once; the grouping and post-processing thresholds can change on
    every call (the ROS node passes its live parameters).

    cfg: the configuration; None takes the one stored in the weights file, else the ScanNet preset.
    weights: a checkpoint (this project's or the authors', see model.checkpoint); None = the shipped
        synthetic-data demo model when cfg is None or fits it (same data and model sections), else randomly
        initialised weights (logged as a warning).
    device: 'auto', 'cpu' or 'cuda[:N]'.
    max_points: larger clouds are subsampled (with a warning) and every input point gets the result of its
        nearest kept point.
    """

    def __init__(self, cfg: Config | None = None, weights: str | Path | None = None, device: str = "auto",
                 max_points: int = 300_000, warmup: bool = True) -> None:
        device_ = resolve_device(device)
        ckpt = load_checkpoint(weights) if weights is not None else _demo_checkpoint(cfg)
        if cfg is None:
            cfg = (ckpt.make_config() if ckpt is not None else None) or load_config("scannet")
        data = cfg.data
        model = PointGroup(cfg.model, data.num_classes, scale=data.scale, min_spatial=data.full_scale[0])
        if ckpt is not None:
            check_state_dict(model, ckpt.state_dict, source=str(ckpt.path))
            model.load_state_dict(ckpt.state_dict, strict=False)  # strictness checked above
            description = str(ckpt.path) if weights is not None else f"synthetic-data demo model ({ckpt.path.name})"
        else:
            log.warning("no weights given: the network is randomly initialised, so its instances are "
                        "meaningless (pass weights=... for real results)")
            description = "random initialisation"
        self._setup(cfg, model, device_, max_points, description, warmup)

    @classmethod
    def from_model(cls, cfg: Config, model: PointGroup, device: str | torch.device = "auto",
                   max_points: int = 300_000) -> "Pipeline":
        """A pipeline around an already built model (the trainer's evaluation); no warm-up."""
        self = cls.__new__(cls)
        self._setup(cfg, model, resolve_device(device), max_points, "in-memory model", warmup=False)
        return self

    def _setup(self, cfg: Config, model: PointGroup, device: torch.device, max_points: int,
               weights_description: str, warmup: bool) -> None:
        self.cfg = cfg.validate()
        self.device = device
        self.model = model.eval().to(device)
        self.weights_description = weights_description
        self.max_points = int(max_points)
        self._rng = np.random.default_rng(0)
        if warmup:
            self._warm_up()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.data.class_names

    def _warm_up(self) -> None:
        """One small frame through every stage, so kernel compilation and allocation happen at start-up."""
        rng = np.random.default_rng(1)
        xyz = rng.uniform(0, 1, (2000, 3)).astype(np.float32)
        self.segment(xyz, None, grouping=GroupingConfig(min_points=1), postprocess=PostprocessConfig(0, 1, 0))

    @torch.inference_mode()
    def segment(self, xyz: np.ndarray, rgb: np.ndarray | None = None, valid: np.ndarray | None = None,
                grouping: GroupingConfig | None = None,
                postprocess: PostprocessConfig | None = None) -> Segmentation:
        """Segment one cloud.

        xyz: float (N, 3) metres, any N >= 0 (NaN / Inf points are treated as invalid).
        rgb: uint8 (N, 3) colours 0-255, or None (a neutral grey is used).
        valid: bool (N,) extra validity mask, or None.
        grouping / postprocess: per-call thresholds; None = the configuration's.
        """
        grouping = (grouping or self.cfg.grouping)
        post = (postprocess or self.cfg.postprocess)
        grouping.validate()
        post.validate()
        xyz = np.asarray(xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ValueError(f"xyz must have shape (N, 3), got {xyz.shape}")
        n = xyz.shape[0]
        if rgb is not None and np.shape(rgb) != (n, 3):
            raise ValueError(f"rgb must have shape ({n}, 3) like xyz, got {np.shape(rgb)}")
        if valid is not None and np.shape(valid) != (n,):
            raise ValueError(f"valid must have shape ({n},), got {np.shape(valid)}")
        timer = _StageTimer(self.device)

        ok = np.isfinite(xyz).all(axis=1)
        if valid is not None:
            ok &= np.asarray(valid, dtype=bool)
        used = np.flatnonzero(ok)
        if used.size > self.max_points:
            log.warning("cloud has %d valid points, more than max_points=%d: segmenting a random subsample "
                        "and giving every point the result of its nearest kept point", used.size, self.max_points)
            used = np.sort(self._rng.choice(used, self.max_points, replace=False))
            sampled = True
        else:
            sampled = False
        pts = torch.from_numpy(np.ascontiguousarray(xyz[used], dtype=np.float32)).to(self.device)
        if rgb is None:
            col = torch.zeros_like(pts)  # neutral grey (127.5) in the model's [-1, 1] scale
        else:
            col = torch.from_numpy(np.ascontiguousarray(rgb[used])).to(self.device).float() / 127.5 - 1.0
        batch = PointBatch(pts, col, torch.zeros(pts.shape[0], dtype=torch.int64, device=self.device), 1)
        timer.lap("prepare")

        voxels = self.model.voxelize(batch)
        timer.lap("voxelize")
        if voxels.num_voxels == 0:
            features = pts.new_zeros(0, self.cfg.model.widths[0])
        else:
            features = self.model.backbone(voxels)[voxels.point_to_voxel]
        semantic = self.model.semantic_head(features).argmax(dim=1)
        offsets = self.model.offset_head(features)
        timer.lap("backbone")

        proposals = dual_set_proposals(pts, offsets, semantic, self.cfg.data.stuff_classes, grouping.radius,
                                       grouping.min_points, grouping.sets, num_classes=self.cfg.data.num_classes,
                                       shifted_radius=grouping.shifted_radius)
        timer.lap("grouping")
        scores = torch.sigmoid(self.model.score_proposals(features, pts, proposals))
        timer.lap("scorenet")
        keep = nms(proposals, scores, post.nms_iou_threshold, post.score_threshold, post.min_instance_points)
        timer.lap("nms")

        seg = self._assemble(n, used, sampled, xyz, semantic, proposals, scores, keep)
        timer.lap("assemble")
        seg.timings_ms = timer.times
        return seg

    def _assemble(self, n: int, used: np.ndarray, sampled: bool, xyz: np.ndarray, semantic: torch.Tensor,
                  proposals: Proposals, scores: torch.Tensor, keep: torch.Tensor) -> Segmentation:
        """Kept proposals -> per-point labels, per-instance class, score, members and boxes (vectorised)."""
        num_classes = self.cfg.data.num_classes
        keep = keep[torch.argsort(scores[keep], descending=True, stable=True)]
        m = int(keep.numel())
        kept = select_proposals(proposals, keep)  # members of the kept proposals, in kept order
        members, member_owner = kept.point_idx, kept.proposal_id
        # instance class: the majority predicted class of its points (the authors' output files)
        votes = torch.bincount(member_owner * num_classes + semantic[members], minlength=m * num_classes)
        inst_class = votes.view(m, num_classes).argmax(dim=1) if m else votes.new_zeros(0)
        # per point: the best-scoring instance covering it (instances are sorted, so the lowest index)
        point_inst = torch.full((semantic.numel(),), m, dtype=torch.int64, device=semantic.device)
        point_inst.scatter_reduce_(0, members, member_owner, "amin")
        point_inst[point_inst == m] = -1

        sem_np, inst_np = semantic.cpu().numpy(), point_inst.cpu().numpy()
        members_np, owner_np = members.cpu().numpy(), member_owner.cpu().numpy()
        if sampled:  # spread each kept point's result to the input points nearest to it
            invalid = np.setdiff1d(np.arange(n), used)
            nearest = np.empty(n, dtype=np.int64)
            nearest[used] = np.arange(used.size)
            if invalid.size:
                finite = invalid[np.isfinite(xyz[invalid]).all(axis=1)]
                nearest[invalid] = -1
                nearest[finite] = cKDTree(xyz[used]).query(xyz[finite])[1]
            full_sem = np.full(n, -1, np.int32)
            full_inst = np.full(n, -1, np.int32)
            has = nearest >= 0
            full_sem[has] = sem_np[nearest[has]]
            full_inst[has] = inst_np[nearest[has]]
            # an instance owns every input point whose nearest kept point it owns
            order = np.argsort(nearest[has], kind="stable")
            inputs_sorted = np.flatnonzero(has)[order]
            first = np.searchsorted(nearest[has][order], members_np, side="left")
            last = np.searchsorted(nearest[has][order], members_np, side="right")
            counts = last - first
            gather = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                                                     counts))
            owner_np = np.repeat(owner_np, counts)
            members_np = inputs_sorted[gather]
            order = np.lexsort((members_np, owner_np))
            members_np, owner_np = members_np[order], owner_np[order]
        else:
            full_sem = np.full(n, -1, np.int32)
            full_inst = np.full(n, -1, np.int32)
            full_sem[used] = sem_np
            full_inst[used] = inst_np
            members_np = used[members_np]
        offsets = np.zeros(m + 1, np.int64)
        np.cumsum(np.bincount(owner_np, minlength=m), out=offsets[1:])
        box_min = np.zeros((m, 3), np.float32)
        box_max = np.zeros((m, 3), np.float32)
        if m:
            member_xyz = xyz[members_np].astype(np.float32)
            starts_np = offsets[:-1]
            box_min = np.minimum.reduceat(member_xyz, starts_np, axis=0)
            box_max = np.maximum.reduceat(member_xyz, starts_np, axis=0)
        return Segmentation(
            semantic=full_sem, instance=full_inst,
            instance_class=inst_class.cpu().numpy().astype(np.int32),
            instance_score=scores[keep].float().cpu().numpy().astype(np.float32),
            instance_point_idx=members_np.astype(np.int64), instance_offsets=offsets,
            box_min=box_min, box_max=box_max, class_names=self.class_names)
