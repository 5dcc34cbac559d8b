"""The ROS-free inference pipeline: a cloud's arrays in, instances out (used by the node, the runner, demo).

Segmentation is the contract between the pipeline and the message / file writers.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from .clustering import dual_set_proposals, nms, select_proposals
from .config import Config, GroupingConfig, PostprocessConfig, PreprocessConfig, load_config, preset_names
from .model.checkpoint import Checkpoint, CheckpointError, check_state_dict, load_checkpoint
from .model.network import PointGroup
from .model.voxelize import downsample_voxels
from .transforms import check_rigid
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
    box_min, box_max: float32 (M, 3), axis-aligned box of each instance's points in metres, in `frame`.
    class_names: names for the class indices.
    frame: "input" (boxes in the input cloud's frame) or "gravity" (in the z-up frame of the gravity_transform
        given to Pipeline.segment: upright boxes).
    network_points: how many points the network saw (after downsampling and the max_points cap).
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
    frame: str = "input"
    network_points: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int, class_names: tuple[str, ...], frame: str = "input") -> "Segmentation":
        """The result for a cloud of n points none of which could be segmented (empty, invalid, cropped)."""
        none = np.full(n, -1, np.int32)
        return cls(semantic=none, instance=none.copy(), instance_class=np.zeros(0, np.int32),
                   instance_score=np.zeros(0, np.float32), instance_point_idx=np.zeros(0, np.int64),
                   instance_offsets=np.zeros(1, np.int64), box_min=np.zeros((0, 3), np.float32),
                   box_max=np.zeros((0, 3), np.float32), class_names=class_names, frame=frame)

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


def resolve_model(config: Config | str | Path | None = None,
                  weights: str | Path | None = None) -> tuple[Config, Checkpoint | None]:
    """The configuration and checkpoint to run, from what the user named (either may be empty).

    config empty: the configuration stored in the weights, or for weights without one (the authors' file) the
    preset whose network they fit. weights empty: the shipped demo model when config is empty or fits it, else
    none (random weights). Named together, they must fit each other. Raises ConfigError or CheckpointError
    (both ValueError) saying which file and which configuration it needs. Reads the checkpoint, builds no
    pipeline: cheap enough for a node's start-up.
    """
    cfg = config if isinstance(config, Config) else (load_config(config) if config else None)
    ckpt = load_checkpoint(weights) if weights else _demo_checkpoint(cfg)
    if ckpt is None:
        return cfg or load_config("scannet"), None
    if cfg is None:
        return ckpt.make_config() or _fitting_preset(ckpt), ckpt
    if weights:  # both named: they must agree
        try:
            build_model(cfg, ckpt)
        except CheckpointError:
            stored = ckpt.make_config()
            need = _preset_name(stored) if stored is not None else _preset_name(_fitting_preset(ckpt))
            raise CheckpointError(f"{ckpt.path} does not fit configuration {str(config)!r} "
                                  f"({cfg.data.num_classes} classes): it needs {need}; set config to that, or leave "
                                  "config empty to use the weights' own") from None
    return cfg, ckpt


def build_model(cfg: Config, ckpt: Checkpoint | None) -> PointGroup:
    """The network of cfg with the checkpoint's weights (CheckpointError listing every mismatch)."""
    data = cfg.data
    model = PointGroup(cfg.model, data.num_classes, scale=data.scale, min_spatial=data.full_scale[0])
    if ckpt is not None:
        check_state_dict(model, ckpt.state_dict, source=str(ckpt.path))
        model.load_state_dict(ckpt.state_dict, strict=False)  # strictness checked above
    return model


def _fitting_preset(ckpt: Checkpoint) -> Config:
    """The first preset whose network the checkpoint's weights fit; CheckpointError describing them if none."""
    for name in preset_names():
        cfg = load_config(name)
        try:
            build_model(cfg, ckpt)
        except CheckpointError:
            continue
        return cfg
    head = ckpt.state_dict.get("linear.weight")
    shape = f"its semantic head has {head.shape[0]} classes and feature width {head.shape[1]}" if head is not None \
        else "it has no semantic head ('linear.weight')"
    raise CheckpointError(f"{ckpt.path} fits none of the presets ({', '.join(preset_names())}) and stores no "
                          f"configuration: {shape}; give config: a YAML file with that many data.class_names and "
                          "the model's widths (copy config/scannet.yaml)")


def _preset_name(cfg: Config) -> str:
    """"config 'NAME'" for the preset with cfg's data and model sections, else a description of cfg."""
    for name in preset_names():
        preset = load_config(name)
        if (preset.data, preset.model) == (cfg.data, cfg.model):
            return f"config {name!r}"
    return (f"the configuration stored in the weights ({cfg.data.dataset}, {cfg.data.num_classes} classes: "
            f"{', '.join(cfg.data.class_names)})")


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
    """Time per stage in ms. On the CPU, wall time. On CUDA each lap records an event on the current stream
    instead of waiting for the GPU: finish() reads the times between the events once the frame's results are on
    the host anyway, so GPU work is charged to its stage without a synchronisation after every stage."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()
        self._events: list[tuple[str, torch.cuda.Event]] = []
        self._start = self._record() if self.cuda else None

    @staticmethod
    def _record() -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record()  # on the current stream of the current device (the pipeline's, under its device guard)
        return event

    def lap(self, stage: str) -> None:
        if self.cuda:
            self._events.append((stage, self._record()))
            return
        now = time.perf_counter()
        self.times[stage] = self.times.get(stage, 0.0) + (now - self._t) * 1e3
        self._t = now

    def finish(self) -> dict[str, float]:
        """The times per stage (on CUDA: waits for the last event, which the frame's copy to the host has
        usually passed already)."""
        if self._events and self._start is not None:
            self._events[-1][1].synchronize()
            previous = self._start
            for stage, event in self._events:
                self.times[stage] = self.times.get(stage, 0.0) + previous.elapsed_time(event)
                previous = event
            self._events.clear()
        return self.times


class Pipeline:
    """PointGroup inference for one cloud at a time: arrays in, Segmentation out.

    The model is loaded and warmed up once; the preprocessing (including preprocess.precision: fp16 runs the
    network under CUDA autocast, fp32 on the CPU), grouping and post-processing settings can change on every
    call (the ROS node passes its live parameters).

    cfg: the configuration (a Config, or a preset name / YAML path); None takes the one stored in the weights
        (or the preset they fit; see resolve_model).
    weights: a checkpoint (this project's or the authors', see model.checkpoint); None = the shipped
        synthetic-data demo model when cfg is None or fits it (same data and model sections), else randomly
        initialised weights (logged as a warning).
    device: 'auto', 'cpu' or 'cuda[:N]'.
    max_points: a cap on the points the network sees after voxel downsampling; beyond it a random subset is
        segmented (warned once) and every other point gets the result of its nearest kept point.
    """

    def __init__(self, cfg: Config | str | None = None, weights: str | Path | None = None, device: str = "auto",
                 max_points: int = 300_000, warmup: bool = True) -> None:
        device_ = resolve_device(device)
        cfg, ckpt = resolve_model(cfg, weights)
        model = build_model(cfg, ckpt)
        if ckpt is not None:
            description = str(ckpt.path) if weights else f"synthetic-data demo model ({ckpt.path.name})"
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
        self._warned_max_points = False
        self._warned_precision = False
        if warmup:
            self._warm_up()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.data.class_names

    def close(self) -> None:
        """Drop the model and give its GPU memory back (torch's caching allocator and CuPy's pools), so that
        another process, or a Jetson's shared memory, can use it; segment() fails afterwards."""
        model = self.__dict__.pop("model", None)
        del model
        gc.collect()
        if self.device.type == "cuda":
            with torch.cuda.device(self.device):
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            cupy = sys.modules.get("cupy")  # imported by the GPU grouping only
            if cupy is not None:
                cupy.get_default_memory_pool().free_all_blocks()
                cupy.get_default_pinned_memory_pool().free_all_blocks()

    def _warm_up(self) -> None:
        """One small frame through every stage, so kernel compilation and allocation happen at start-up."""
        rng = np.random.default_rng(1)
        xyz = rng.uniform(0, 1, (2000, 3)).astype(np.float32)
        self.segment(xyz, None, grouping=GroupingConfig(min_points=1), postprocess=PostprocessConfig(0, 1, 0))

    def segment(self, xyz: np.ndarray, rgb: np.ndarray | None = None, valid: np.ndarray | None = None,
                grouping: GroupingConfig | None = None, postprocess: PostprocessConfig | None = None,
                preprocess: PreprocessConfig | None = None,
                gravity_transform: np.ndarray | None = None) -> Segmentation:
        """Segment one cloud.

        xyz: float (N, 3) metres, any N >= 0 (NaN / Inf points are treated as invalid).
        rgb: uint8 (N, 3) colours 0-255, or None (a neutral grey is used).
        valid: bool (N,) extra validity mask, or None.
        grouping / postprocess / preprocess: per-call settings; None = the configuration's.
        gravity_transform: rigid (4, 4) taking the input points into a frame whose +z points up (against
            gravity), or None when the input frame is z-up already. The network sees the points in that frame;
            boxes are axis-aligned there (Segmentation.frame == "gravity").
        The network always sees the points centred on their mean, as in training, so the result does not
        depend on where the cloud's origin is; everything is reported in the caller's coordinates.
        """
        if "model" not in self.__dict__:
            raise RuntimeError("this pipeline was closed (close() gave its model up): build a new one")
        # spconv and CuPy take the device from torch's current one: make it this pipeline's (cuda:N), whatever
        # thread calls (the node's worker starts on cuda:0)
        device_guard = torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()
        with device_guard, torch.inference_mode():
            return self._segment(xyz, rgb, valid, grouping, postprocess, preprocess, gravity_transform)

    def _segment(self, xyz: np.ndarray, rgb: np.ndarray | None, valid: np.ndarray | None,
                 grouping: GroupingConfig | None, postprocess: PostprocessConfig | None,
                 preprocess: PreprocessConfig | None, gravity_transform: np.ndarray | None) -> Segmentation:
        grouping = (grouping or self.cfg.grouping)
        post = (postprocess or self.cfg.postprocess)
        pre = (preprocess or self.cfg.preprocess)
        grouping.validate()
        post.validate()
        pre.validate()
        xyz = np.asarray(xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ValueError(f"xyz must have shape (N, 3), got {xyz.shape}")
        n = xyz.shape[0]
        if rgb is not None and np.shape(rgb) != (n, 3):
            raise ValueError(f"rgb must have shape ({n}, 3) like xyz, got {np.shape(rgb)}")
        if valid is not None and np.shape(valid) != (n,):
            raise ValueError(f"valid must have shape ({n},), got {np.shape(valid)}")
        gravity = None if gravity_transform is None else check_rigid(gravity_transform, "gravity_transform")
        frame = "input" if gravity is None else "gravity"
        timer = _StageTimer(self.device)

        used = np.flatnonzero(_usable(xyz, valid, pre))
        if used.size == 0:  # an empty or fully invalid / cropped cloud is a frame with no instances
            seg = Segmentation.empty(n, self.class_names, frame)
            timer.lap("prepare")
            seg.timings_ms = timer.finish()
            return seg
        # float64 for the rigid transform and the centring: a map frame can be kilometres from its origin
        pts = _upload(np.ascontiguousarray(xyz[used], dtype=np.float32), self.device).double()
        if gravity is not None:
            rot, shift = torch.from_numpy(gravity[:3, :3]).to(pts), torch.from_numpy(gravity[:3, 3]).to(pts)
            pts = pts @ rot.T + shift
        if rgb is None:
            col = torch.zeros(pts.shape, dtype=torch.float32, device=self.device)  # neutral grey in [-1, 1]
        else:
            col = _upload(np.ascontiguousarray(rgb[used]), self.device).float() / 127.5 - 1.0
        timer.lap("prepare")

        net = self._network_points(pts, col, pre.resolved_voxel_size(self.cfg.data.scale))
        timer.lap("downsample")
        centre = net.xyz.mean(dim=0)
        net_xyz = (net.xyz - centre).float()
        batch = PointBatch(net_xyz, net.rgb, torch.zeros(net_xyz.shape[0], dtype=torch.int64, device=self.device),
                           1, voxel_xyz=net.voxel_xyz)
        voxels = self.model.voxelize(batch)
        timer.lap("voxelize")
        half = self._half_precision(pre.precision)
        with _autocast(half):
            features = self.model.backbone(voxels)[voxels.point_to_voxel]
            logits = self.model.semantic_head(features)
            offsets = self.model.offset_head(features)
        # grouping is exact: it sees fp32 offsets, so Q = xyz + offsets is formed in fp32 (a no-op in fp32)
        semantic = logits.float().argmax(dim=1)
        features, offsets = features.float(), offsets.float()
        timer.lap("backbone")

        proposals = dual_set_proposals(net_xyz, offsets, semantic, self.cfg.data.stuff_classes, grouping.radius,
                                       grouping.min_points, grouping.sets, num_classes=self.cfg.data.num_classes,
                                       shifted_radius=grouping.shifted_radius,
                                       max_neighbours=grouping.max_neighbours)
        timer.lap("grouping")
        with _autocast(half):  # the proposals are voxelized from fp32 coordinates; only the network runs fp16
            score_logits = self.model.score_proposals(features, net_xyz, proposals)
        scores = torch.sigmoid(score_logits.float())
        timer.lap("scorenet")
        keep = nms(proposals, scores, post.nms_iou_threshold, post.score_threshold, post.min_instance_points)
        timer.lap("nms")

        seg = self._assemble(n, used, pts, net.of_point, semantic, proposals, scores, keep, frame)
        timer.lap("assemble")
        seg.timings_ms = timer.finish()
        return seg

    def _half_precision(self, precision: str) -> bool:
        """Whether to run the network in fp16: precision 'fp16' on a CUDA device. On the CPU (spconv's CPU
        kernels have no half precision) fp16 falls back to fp32, logged once per pipeline."""
        if precision != "fp16":
            return False
        if self.device.type == "cuda":
            return True
        if not self._warned_precision:
            log.warning("precision fp16 needs a CUDA device: running fp32 on %s", self.device.type)
            self._warned_precision = True
        return False

    def _network_points(self, pts: torch.Tensor, col: torch.Tensor, voxel_size: float) -> "_NetworkInput":
        """The points the network sees: voxel means (voxel_size > 0), at most max_points of them."""
        of_point: torch.Tensor | None = None
        voxel_xyz = None
        if voxel_size > 0:
            pts, col, of_point, coords = downsample_voxels(pts, col, voxel_size)
            if abs(voxel_size * self.cfg.data.scale - 1.0) < 1e-9:
                # on the network's own grid: hand it the voxels, so each mean is exactly one network voxel
                voxel_xyz = coords.float() + 0.5
        if pts.shape[0] > self.max_points:
            if not self._warned_max_points:
                log.warning("%d points after downsampling, more than max_points=%d: segmenting a random subset "
                            "and giving every point the result of its nearest kept point (logged once)",
                            pts.shape[0], self.max_points)
                self._warned_max_points = True
            kept = np.sort(self._rng.choice(pts.shape[0], self.max_points, replace=False))
            pts_np = pts.cpu().numpy()
            nearest = torch.from_numpy(cKDTree(pts_np[kept]).query(pts_np)[1].astype(np.int64)).to(pts.device)
            of_point = nearest if of_point is None else nearest[of_point]
            kept_t = torch.from_numpy(kept).to(pts.device)
            pts, col = pts[kept_t], col[kept_t]
            voxel_xyz = None if voxel_xyz is None else voxel_xyz[kept_t]
        return _NetworkInput(pts, col, voxel_xyz, of_point)

    def _assemble(self, n: int, used: np.ndarray, pts: torch.Tensor, of_point: torch.Tensor | None,
                  semantic: torch.Tensor, proposals: Proposals, scores: torch.Tensor, keep: torch.Tensor,
                  frame: str) -> Segmentation:
        """Kept proposals -> per-point labels, per-instance class, score, members and boxes (vectorised).

        pts: float64 (U, 3), the used points in the output frame; of_point: int64 (U,), the network point whose
        result each used point takes (None: the used points are the network points).
        """
        num_classes = self.cfg.data.num_classes
        device = semantic.device
        keep = keep[torch.argsort(scores[keep], descending=True, stable=True)]
        m = int(keep.numel())
        kept = select_proposals(proposals, keep)  # members of the kept proposals, in kept order
        members, owner = kept.point_idx, kept.proposal_id
        # instance class: the majority predicted class of its points (the authors' output files)
        votes = torch.bincount(owner * num_classes + semantic[members], minlength=m * num_classes)
        inst_class = votes.view(m, num_classes).argmax(dim=1) if m else votes.new_zeros(0)
        # per point: the best-scoring instance covering it (instances are sorted, so the lowest index)
        point_inst = torch.full((semantic.numel(),), m, dtype=torch.int64, device=device)
        point_inst.scatter_reduce_(0, members, owner, "amin")
        point_inst[point_inst == m] = -1
        network_points = int(semantic.numel())
        if of_point is not None:
            semantic, point_inst = semantic[of_point], point_inst[of_point]
            members, owner = _expand_members(members, owner, of_point, network_points)
        # boxes from every member point, in the output frame
        box_min = torch.zeros((m, 3), dtype=pts.dtype, device=device)
        box_max = torch.zeros((m, 3), dtype=pts.dtype, device=device)
        if m:
            index = owner.unsqueeze(1).expand(-1, 3)
            box_min.scatter_reduce_(0, index, pts[members], "amin", include_self=False)
            box_max.scatter_reduce_(0, index, pts[members], "amax", include_self=False)
        offsets = torch.zeros(m + 1, dtype=torch.int64, device=device)
        torch.cumsum(torch.bincount(owner, minlength=m), 0, out=offsets[1:])

        # one trip to the host for everything (on CUDA: queued copies, one wait)
        sem_h, inst_h, class_h, score_h, members_h, offsets_h, min_h, max_h = _to_host(
            semantic, point_inst, inst_class, scores[keep].float(), members, offsets, box_min.float(), box_max.float())
        full_sem = np.full(n, -1, np.int32)
        full_inst = np.full(n, -1, np.int32)
        full_sem[used] = sem_h
        full_inst[used] = inst_h
        return Segmentation(
            semantic=full_sem, instance=full_inst, instance_class=class_h.astype(np.int32),
            instance_score=score_h.astype(np.float32), instance_point_idx=used[members_h].astype(np.int64),
            instance_offsets=offsets_h, box_min=min_h, box_max=max_h,
            class_names=self.class_names, frame=frame, network_points=network_points)


def _upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """`array` on `device`; to a GPU through pinned memory, queued without waiting (the stream orders it before
    the kernels that read it)."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def _to_host(*tensors: torch.Tensor) -> list[np.ndarray]:
    """numpy copies of tensors of one device. On CUDA the copies are queued into pinned memory and waited for
    once, instead of one blocking copy (one synchronisation) each; on the CPU they are views."""
    if not tensors or tensors[0].device.type != "cuda":
        return [t.numpy() for t in tensors]
    host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
    for out, tensor in zip(host, tensors):
        out.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensors[0].device).synchronize()
    return [out.numpy() for out in host]


def _autocast(half: bool) -> contextlib.AbstractContextManager[object]:
    """CUDA autocast to float16 around the network's forward passes when `half`, else nothing."""
    return torch.autocast(device_type="cuda", dtype=torch.float16) if half else contextlib.nullcontext()


@dataclass
class _NetworkInput:
    """The network's points (float64 (V, 3) in the output frame, colours in [-1, 1]), the voxel coordinates
    to voxelize them by (None: their own), and each used point's network point (None: the same point)."""

    xyz: torch.Tensor
    rgb: torch.Tensor
    voxel_xyz: torch.Tensor | None
    of_point: torch.Tensor | None


def _usable(xyz: np.ndarray, valid: np.ndarray | None, pre: PreprocessConfig) -> np.ndarray:
    """bool (N,): finite, not masked by `valid`, and within the range limits (metres from the origin)."""
    ok = np.isfinite(xyz).all(axis=1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    if pre.min_range > 0 or pre.max_range > 0:
        with np.errstate(invalid="ignore"):  # NaN points are already excluded
            r2 = np.einsum("ij,ij->i", xyz, xyz, dtype=np.float64)
            ok &= r2 >= pre.min_range ** 2
            if pre.max_range > 0:
                ok &= r2 <= pre.max_range ** 2
    return ok


def _expand_members(members: torch.Tensor, owner: torch.Tensor, of_point: torch.Tensor,
                    net_count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Instance members given as network points (of net_count) -> every used point that takes their result.

    Returns (used-point indices, owning instance), sorted by instance, then index."""
    order = torch.argsort(of_point, stable=True)  # used points grouped by network point, ascending index
    counts = torch.bincount(of_point, minlength=net_count)
    starts = torch.cumsum(counts, 0) - counts
    per_member = counts[members]
    first = torch.repeat_interleave(starts[members], per_member)
    within = torch.arange(first.numel(), device=first.device) - torch.repeat_interleave(
        torch.cumsum(per_member, 0) - per_member, per_member)
    points = order[first + within]
    owner = torch.repeat_interleave(owner, per_member)
    sort = torch.argsort(owner * of_point.numel() + points)
    return points[sort], owner[sort]
