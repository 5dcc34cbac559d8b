"""Typed configuration: one source of truth for every default, loaded from YAML presets in config/.

A preset is a YAML mapping of sections (data, model, preprocess, grouping, postprocess, train) to keys. Every key is
checked against the dataclass below: an unknown key, a wrong type or an out-of-range value raises
ConfigError naming it (for example "grouping.radius: must be > 0, got -1").
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .resources import data_dir

SCANNET20_CLASSES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)
# NYU40 ids of the ScanNet-20 classes, in training-index order (wall=1 -> 0, floor=2 -> 1, ...).
SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
S3DIS_CLASSES: tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
    "bookcase", "board", "clutter",
)

CLUSTER_SETS = ("p", "q", "both")
PRECISIONS = ("fp32", "fp16")


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the offending key."""


def _check(ok: bool, key: str, what: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: {what}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Dataset conventions: classes, labels and voxel scale."""

    dataset: str = "scannet"
    class_names: tuple[str, ...] = SCANNET20_CLASSES
    stuff_classes: tuple[int, ...] = (0, 1)  # never grouped into instances (wall, floor)
    ignore_label: int = -100
    scale: float = 50.0  # voxels per metre (2 cm voxels)
    full_scale: tuple[int, int] = (128, 512)  # min spatial extent, training crop window (voxels)
    max_npoint: int = 250_000  # training crop

    def validate(self) -> None:
        _check(len(self.class_names) >= 1, "data.class_names", "must name at least one class", self.class_names)
        _check(len(set(self.class_names)) == len(self.class_names), "data.class_names", "must be unique",
               self.class_names)
        for c in self.stuff_classes:
            _check(0 <= c < len(self.class_names), "data.stuff_classes", "must be class indices", self.stuff_classes)
        _check(self.scale > 0, "data.scale", "must be > 0", self.scale)
        _check(0 < self.full_scale[0] <= self.full_scale[1], "data.full_scale", "must be 0 < min <= max",
               self.full_scale)
        _check(self.max_npoint > 0, "data.max_npoint", "must be > 0", self.max_npoint)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def thing_classes(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.num_classes) if c not in self.stuff_classes)


@dataclass(frozen=True)
class ModelConfig:
    """Network shape (authors' ScanNet values). Changing any of these needs new weights."""

    input_channels: int = 6  # rgb (scaled to [-1, 1]) + xyz (metres)
    widths: tuple[int, ...] = (16, 32, 48, 64, 80, 96, 112)  # U-Net level widths; widths[0] = m
    block_reps: int = 2
    score_widths: tuple[int, ...] = (16, 32)
    score_scale: float = 50.0  # ScoreNet voxels per metre, at most
    score_fullscale: int = 14  # ScoreNet spatial extent (voxels per axis)
    bn_eps: float = 1e-4
    bn_momentum: float = 0.1

    def validate(self) -> None:
        _check(self.input_channels in (3, 6), "model.input_channels", "must be 3 (rgb) or 6 (rgb + xyz)",
               self.input_channels)
        _check(len(self.widths) >= 1 and all(w > 0 for w in self.widths), "model.widths",
               "must be positive channel counts", self.widths)
        _check(len(self.score_widths) >= 1 and all(w > 0 for w in self.score_widths), "model.score_widths",
               "must be positive channel counts", self.score_widths)
        _check(self.score_widths[0] == self.widths[0], "model.score_widths",
               "must start with widths[0] (ScoreNet takes backbone features)", self.score_widths)
        _check(self.block_reps >= 1, "model.block_reps", "must be >= 1", self.block_reps)
        _check(self.score_scale > 0, "model.score_scale", "must be > 0", self.score_scale)
        _check(self.score_fullscale >= 2, "model.score_fullscale", "must be >= 2", self.score_fullscale)


@dataclass(frozen=True)
class PreprocessConfig:
    """What happens to a sensor's cloud before and in the network; tunable per frame.

    Robots' clouds are far denser near the sensor than the ~2 cm rooms the network learned on, so by default
    the cloud is averaged into voxels of the network's own size first: the network then costs what those
    voxels cost, and the point-count thresholds mean about the same object size near and far.
    """

    voxel_size: float | None = None  # metres; None = the network's voxel (1 / data.scale); 0 = no downsampling
    min_range: float = 0.0  # metres from the input frame's origin (the sensor); closer points are ignored; 0 = off
    max_range: float = 0.0  # metres; farther points are ignored; 0 = off
    # arithmetic of the backbone, heads and ScoreNet: 'fp16' = CUDA autocast (half precision; grouping stays fp32),
    # on the CPU it runs fp32 (logged once); 'fp32' = full precision
    precision: str = "fp32"

    def validate(self) -> None:
        _check(self.voxel_size is None or 0 <= self.voxel_size <= 1.0, "preprocess.voxel_size",
               "must be in [0, 1] metres (0: no downsampling; null: the network's voxel)", self.voxel_size)
        _check(self.min_range >= 0, "preprocess.min_range", "must be >= 0 metres (0: off)", self.min_range)
        _check(self.max_range >= 0, "preprocess.max_range", "must be >= 0 metres (0: off)", self.max_range)
        _check(self.max_range == 0 or self.max_range > self.min_range, "preprocess.max_range",
               "must be greater than min_range (or 0: off)", (self.min_range, self.max_range))
        _check(self.precision in PRECISIONS, "preprocess.precision", f"must be one of {', '.join(PRECISIONS)}",
               self.precision)

    def resolved_voxel_size(self, scale: float) -> float:
        """voxel_size in metres, None resolved to the network's voxel (1 / scale voxels per metre)."""
        return 1.0 / scale if self.voxel_size is None else self.voxel_size


@dataclass(frozen=True)
class GroupingConfig:
    """Dual-set point grouping (paper Section 3.3); tunable per frame."""

    radius: float = 0.03  # metres; neighbours when squared distance < radius^2
    min_points: int = 50  # clusters with fewer points are dropped
    sets: str = "both"  # 'p' (original coordinates), 'q' (offset-shifted) or 'both'
    # radius on Q (metres); 0 = `radius` (the authors use one radius). Shifted points crowd around the
    # centroids, so a tighter radius on Q cuts the thin bridges that join touching objects.
    shifted_radius: float = 0.0
    # 0 = exact grouping (connected components). K > 0 emulates the authors' ball query, which lists at most the
    # first K neighbours of each point by index (theirs: 1000), so dense shifted blobs can lose points; on the CPU.
    max_neighbours: int = 0

    def validate(self) -> None:
        _check(0 < self.radius <= 1.0, "grouping.radius", "must be in (0, 1] metres", self.radius)
        _check(self.max_neighbours >= 0, "grouping.max_neighbours",
               "must be an integer >= 0 (0: exact; the authors' cap: 1000)", self.max_neighbours)
        _check(0 <= self.shifted_radius <= 1.0, "grouping.shifted_radius",
               "must be in [0, 1] metres (0: the same as radius)", self.shifted_radius)
        _check(self.min_points >= 1, "grouping.min_points", "must be >= 1", self.min_points)
        _check(self.sets in CLUSTER_SETS, "grouping.sets", f"must be one of {CLUSTER_SETS}", self.sets)


@dataclass(frozen=True)
class PostprocessConfig:
    """Test-time filtering of scored proposals; tunable per frame."""

    score_threshold: float = 0.09
    nms_iou_threshold: float = 0.3
    min_instance_points: int = 100

    def validate(self) -> None:
        _check(0.0 <= self.score_threshold <= 1.0, "postprocess.score_threshold", "must be in [0, 1]",
               self.score_threshold)
        _check(0.0 <= self.nms_iou_threshold <= 1.0, "postprocess.nms_iou_threshold", "must be in [0, 1]",
               self.nms_iou_threshold)
        _check(self.min_instance_points >= 0, "postprocess.min_instance_points", "must be >= 0",
               self.min_instance_points)


@dataclass(frozen=True)
class TrainConfig:
    """Trainer settings (authors' ScanNet run)."""

    epochs: int = 384
    batch_size: int = 4
    lr: float = 1e-3
    lr_steps: tuple[int, ...] = ()  # epochs after which lr is multiplied by lr_multiplier (authors: none)
    lr_multiplier: float = 0.1
    prepare_epochs: int = 128  # grouping + ScoreNet switched on after this many epochs
    loss_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # semantic, offset L1, direction, score
    score_bg_threshold: float = 0.25  # soft score label: 0 below
    score_fg_threshold: float = 0.75  # soft score label: 1 above
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 16  # epochs
    mixed_precision: bool = True  # on CUDA only
    # synthetic rooms only: camera views per training room added to the training set (0: whole rooms only)
    camera_views: int = 0
    # synthetic rooms only: each whole room this many times per epoch (keeps rooms in the mix when views are many)
    room_copies: int = 1

    def validate(self) -> None:
        _check(self.epochs >= 1, "train.epochs", "must be >= 1", self.epochs)
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1", self.batch_size)
        _check(self.lr > 0, "train.lr", "must be > 0", self.lr)
        steps = list(self.lr_steps)
        _check(all(int(e) == e >= 1 for e in steps) and steps == sorted(set(steps)), "train.lr_steps",
               "must be increasing epoch numbers >= 1", self.lr_steps)
        _check(0 < self.lr_multiplier <= 1, "train.lr_multiplier", "must be in (0, 1]", self.lr_multiplier)
        _check(self.prepare_epochs >= 0, "train.prepare_epochs", "must be >= 0", self.prepare_epochs)
        _check(all(w >= 0 for w in self.loss_weights), "train.loss_weights", "must be >= 0", self.loss_weights)
        _check(0 <= self.score_bg_threshold < self.score_fg_threshold <= 1, "train.score_bg_threshold",
               "must satisfy 0 <= score_bg_threshold < score_fg_threshold <= 1",
               (self.score_bg_threshold, self.score_fg_threshold))
        _check(self.num_workers >= 0, "train.num_workers", "must be >= 0", self.num_workers)
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1", self.checkpoint_every)
        _check(0 <= self.camera_views <= 100, "train.camera_views", "must be in [0, 100] (0: off)",
               self.camera_views)
        _check(1 <= self.room_copies <= 100, "train.room_copies", "must be in [1, 100]", self.room_copies)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        return self

    @property
    def voxel_size(self) -> float:
        """The downsampling voxel in metres with its default resolved (0: no downsampling)."""
        return self.preprocess.resolved_voxel_size(self.data.scale)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain YAML/JSON-friendly dict (tuples become lists); inverse of config_from_dict."""
        return {f.name: {k: list(v) if isinstance(v, tuple) else v
                         for k, v in dataclasses.asdict(getattr(self, f.name)).items()}
                for f in dataclasses.fields(self)}

    def replace(self, **sections: Any) -> "Config":
        """Copy with some sections' keys changed, e.g. cfg.replace(grouping={"radius": 0.05})."""
        data = self.to_dict()
        for name, values in sections.items():
            if name not in data:
                raise ConfigError(f"{name}: unknown section (known: {', '.join(data)})")
            data[name].update(values)
        return config_from_dict(data)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming the key."""
    args = typing.get_args(tp)
    if type(None) in args:  # X | None: null stays None, anything else must be an X
        return None if value is None else _coerce(value, next(a for a in args if a is not type(None)), key)
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        _check(isinstance(value, (list, tuple)), key, "must be a list", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        _check(len(value) == len(args), key, f"must be a list of {len(args)} values", value)
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        _check(isinstance(value, bool), key, "must be true or false", value)
        return value
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, "must be an integer", value)
        return value
    if tp is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key, "must be a number", value)
        return float(value)
    if tp is str:
        _check(isinstance(value, str), key, "must be a string", value)
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")  # a bug in this module, not in the file


def _section_from_dict(cls: type, values: Mapping[str, Any], section: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{section}: must be a mapping of keys to values, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(map(str, unknown))} "
                          f"(known: {', '.join(sorted(known))})")
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    """Build and validate a Config from a mapping of sections; missing keys take their defaults."""
    data = data or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"configuration must be a mapping of sections, got {type(data).__name__}")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(map(str, unknown))} (known: {', '.join(sections)})")
    hints = typing.get_type_hints(Config)
    kwargs = {name: _section_from_dict(hints[name], values if values is not None else {}, name)
              for name, values in data.items()}
    return Config(**kwargs).validate()


def preset_dir() -> Path:
    """The installed config/ folder (presets and the node's parameter file)."""
    return data_dir("config")


def preset_names() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml") if not p.stem.startswith("pointgroup_node"))


def load_config(source: str | Path | None = None) -> Config:
    """Load a preset by name ('scannet', 's3dis', ...) or a YAML file by path; None gives the defaults."""
    if source is None:
        return Config().validate()
    path = Path(source)
    if not path.suffix and not path.exists():
        path = preset_dir() / f"{source}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown preset {str(source)!r} (presets: {', '.join(preset_names())}; "
                              "or give a path to a .yaml file)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
