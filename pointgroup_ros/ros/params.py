"""The node's ROS parameters: one table derived from the typed config, validation, and rclpy descriptors.

Defaults of the tunables come from PreprocessConfig / GroupingConfig / PostprocessConfig of the loaded
configuration (config.py is the one source of truth; the node takes the configuration stored in the weights
unless `config` names one); validation calls their validate(), so a value the pipeline would refuse is
refused here with the same reason. The tracking thresholds (tracking_*) map onto TrackerConfig
(pointgroup_ros.tracking), validated by its validate() the same way. Everything except to_descriptor() works
without ROS.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..config import (CLUSTER_SETS, PRECISIONS, Config, ConfigError, GroupingConfig, PostprocessConfig,
                      PreprocessConfig)
from ..tracking import TrackerConfig
from ..transforms import normalize_frame

RELIABILITY = ("reliable", "best_effort")
MAX_POINTS_RANGE = (1_000, 10_000_000)
COUNT_MAX = 10_000_000  # upper bound of the point-count parameters' ranges
DEPTH_RANGE = (1, 1_000)
VOXEL_RANGE = (0.0, 1.0)  # metres (PreprocessConfig.validate's range)
RANGE_LIMIT = (0.0, 1_000.0)  # metres, min_range / max_range
TF_TIMEOUT_RANGE = (0.0, 10.0)  # seconds
LIFETIME_RANGE = (0.0, 3_600.0)  # seconds
STALE_RANGE = (0.0, 3_600.0)  # seconds, diagnostics_stale_s
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
FRAMES_MAX = 10_000  # upper bound of the tracking frame-count parameters' ranges
_TRACKING_DEFAULTS = TrackerConfig()
# tracking_* parameter -> TrackerConfig key: the thresholds that are safe to change between frames (the others,
# e.g. max_voxels or voxel_memory, keep TrackerConfig's defaults)
_TRACKER_KEYS = {f"tracking_{key}": key for key in ("voxel_size", "min_iou", "max_distance", "class_gate",
                                                    "confirm_hits", "confirm_window", "max_missed",
                                                    "tentative_max_missed", "moving_speed")}
# parameters whose defaults come from the loaded model's configuration: the shipped params file leaves them out
FROM_MODEL = ("voxel_size", "precision", "cluster_radius", "cluster_radius_shifted", "cluster_min_points",
              "cluster_sets", "score_threshold", "nms_iou_threshold", "min_instance_points")


class ParameterError(ValueError):
    """A parameter value is refused; str(error) is the reason given back to `ros2 param set`."""


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: name, default, description, and what values it takes."""

    name: str
    default: bool | int | float | str | tuple[str, ...]
    description: str
    read_only: bool = False
    float_range: tuple[float, float] | None = None  # inclusive, for FloatingPointRange
    int_range: tuple[int, int] | None = None  # inclusive, step 1, for IntegerRange
    choices: tuple[str, ...] | None = None
    in_params_file: bool = True  # False for values the node reports but nobody sets (class_names)
    on_configure: bool = False  # settable any time, applied at the next configure (the model's source)
    reported: bool = False  # set by the node itself (class_names at configure); refused from outside

    @property
    def kind(self) -> type:
        return tuple if isinstance(self.default, tuple) else type(self.default)

    def constraints(self) -> str:
        """Human-readable additional_constraints for the descriptor."""
        if self.choices:
            return f"one of: {', '.join(self.choices)}"
        if self.float_range:
            return f"{self.float_range[0]} <= value <= {self.float_range[1]}"
        if self.int_range:
            return f"{self.int_range[0]} <= value <= {self.int_range[1]}"
        return ""


def param_specs(cfg: Config | None = None, class_names: tuple[str, ...] | None = None) -> tuple[ParamSpec, ...]:
    """Every parameter the node declares, in declaration order; tunables default to cfg's values."""
    cfg = cfg or Config()
    g, p, pre = cfg.grouping, cfg.postprocess, cfg.preprocess
    names = tuple(class_names if class_names is not None else cfg.data.class_names)
    return (
        ParamSpec("autostart", False, "Configure and activate at start-up (load the model, take clouds); false: "
                  "wait in the unconfigured state for `ros2 lifecycle set NODE configure` (the launch files pass "
                  "their autostart argument, true by default)", read_only=True),
        ParamSpec("config", "", "Configuration: empty = the one stored in the weights (the shipped demo model's "
                  "when weights are empty too); or a preset name (synthetic, scannet, s3dis) or a config YAML path, "
                  "which must fit the weights. It gives the classes, the network shape and the tunables' defaults. "
                  "Applied at the next configure", on_configure=True),
        ParamSpec("weights", "", "Path of the model checkpoint (.pth); empty: the shipped demo model when it fits "
                  "the configuration (the synthetic preset), else random weights (warned). Applied at the next "
                  "configure", on_configure=True),
        ParamSpec("device", "auto", "Torch device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N. "
                  "Applied at the next configure", on_configure=True),
        ParamSpec("class_names", names, "Semantic class names of the loaded model (reported by the node, "
                  "not settable)", in_params_file=False, reported=True),
        ParamSpec("gravity_frame", "", "TF frame whose +z is up (e.g. base_link, map): the cloud is rotated into it "
                  "(tf2 lookup at the cloud's stamp) before the network, and detections, markers and instances are "
                  "published in it; empty: the input frame is taken as gravity-aligned (no TF)"),
        ParamSpec("tf_timeout", 0.1, "Seconds to wait for the gravity_frame <- input frame transform; a frame "
                  "without one is skipped", float_range=TF_TIMEOUT_RANGE),
        ParamSpec("tracking", False, "Track the instances across frames (in tracking_frame): the ids in all four "
                  "outputs are then track ids that stay with the object (colours follow them) and tentative tracks "
                  "are not published; false: ids are the frame's ranks by score. Turning it off and on again "
                  "forgets the tracks"),
        ParamSpec("tracking_frame", "odom", "Fixed TF frame to track in (odom, map), looked up at each cloud's "
                  "stamp (tracking_frame <- input frame, within tf_timeout); a frame without it is skipped, the "
                  "tracks kept. Changing it forgets the tracks"),
        ParamSpec("tracking_voxel_size", _TRACKING_DEFAULTS.voxel_size, "Tracking: voxel in metres of the "
                  "overlap test between an instance and a track (in tracking_frame)", float_range=(0.005, 1.0)),
        ParamSpec("tracking_min_iou", _TRACKING_DEFAULTS.min_iou, "Tracking: voxel IoU an instance needs with a "
                  "track to continue it", float_range=(0.0, 1.0)),
        ParamSpec("tracking_max_distance", _TRACKING_DEFAULTS.max_distance, "Tracking: metres an instance's "
                  "centroid may be from a track's to continue it", float_range=(0.001, 100.0)),
        ParamSpec("tracking_class_gate", _TRACKING_DEFAULTS.class_gate, "Tracking: an instance continues only a "
                  "track of its own class (the track's majority vote)"),
        ParamSpec("tracking_confirm_hits", _TRACKING_DEFAULTS.confirm_hits, "Tracking: frames a new track must be "
                  "seen in (within tracking_confirm_window frames) before it is published",
                  int_range=(1, 64)),
        ParamSpec("tracking_confirm_window", _TRACKING_DEFAULTS.confirm_window, "Tracking: frames (the current "
                  "one counting) in which tracking_confirm_hits sightings confirm a track; >= tracking_confirm_hits",
                  int_range=(1, 64)),
        ParamSpec("tracking_max_missed", _TRACKING_DEFAULTS.max_missed, "Tracking: frames a confirmed track "
                  "survives unseen (occlusion) before it is dropped", int_range=(0, FRAMES_MAX)),
        ParamSpec("tracking_tentative_max_missed", _TRACKING_DEFAULTS.tentative_max_missed, "Tracking: frames a "
                  "tentative (unconfirmed) track survives unseen; <= tracking_max_missed",
                  int_range=(0, FRAMES_MAX)),
        ParamSpec("tracking_moving_speed", _TRACKING_DEFAULTS.moving_speed, "Tracking: m/s above which a track "
                  "is also looked for where its velocity predicts it", float_range=(0.0, 100.0)),
        ParamSpec("voxel_size", cfg.voxel_size, "Downsampling voxel in metres before the network (points "
                  "averaged per voxel; default: the network's own voxel); 0: no downsampling",
                  float_range=VOXEL_RANGE),
        ParamSpec("min_range", pre.min_range, "Points closer than this to the sensor (the input frame's origin) "
                  "are ignored, metres; 0: off", float_range=RANGE_LIMIT),
        ParamSpec("max_range", pre.max_range, "Points farther than this from the sensor (the input frame's origin) "
                  "are ignored, metres; 0: off", float_range=RANGE_LIMIT),
        ParamSpec("precision", pre.precision, "Arithmetic of the backbone, heads and ScoreNet: fp32, or fp16 "
                  "(CUDA autocast: faster, less GPU memory; grouping stays fp32); on the CPU fp16 runs fp32 "
                  "(logged once)", choices=PRECISIONS),
        ParamSpec("max_points", 300_000, "Cap on the points the network sees, after voxel downsampling: more are "
                  "randomly subsampled (every input point still gets a result); bounds time and GPU memory",
                  int_range=MAX_POINTS_RANGE),
        ParamSpec("cluster_radius", g.radius, "Grouping radius in metres: points closer than this with the "
                  "same semantic class join one cluster", float_range=(0.001, 1.0)),
        ParamSpec("cluster_radius_shifted", g.shifted_radius, "Grouping radius in metres on the offset-shifted "
                  "points (Q); 0: the same as cluster_radius", float_range=(0.0, 1.0)),
        ParamSpec("cluster_min_points", g.min_points, "Clusters with fewer points are dropped before scoring",
                  int_range=(1, COUNT_MAX)),
        ParamSpec("cluster_sets", g.sets, "Point sets to cluster: p (original coordinates), q (shifted by the "
                  "predicted offsets) or both (the paper's dual set)", choices=CLUSTER_SETS),
        ParamSpec("score_threshold", p.score_threshold, "Instances scoring lower are not reported",
                  float_range=(0.0, 1.0)),
        ParamSpec("nms_iou_threshold", p.nms_iou_threshold, "Non-maximum suppression: of two proposals "
                  "overlapping more than this (point IoU), the lower-scoring one is removed", float_range=(0.0, 1.0)),
        ParamSpec("min_instance_points", p.min_instance_points, "Instances with fewer points are not reported",
                  int_range=(0, COUNT_MAX)),
        ParamSpec("marker_lifetime", 0.0, "Lifetime of the box and label markers in seconds (RViz removes them "
                  "when the input stops); 0: until replaced by the next frame", float_range=LIFETIME_RANGE),
        ParamSpec("publish_labeled_points", True, "Publish ~/labeled_points (sensor_msgs/PointCloud2)"),
        ParamSpec("publish_detections", True, "Publish ~/detections (vision_msgs/Detection3DArray)"),
        ParamSpec("publish_markers", True, "Publish ~/markers (visualization_msgs/MarkerArray)"),
        ParamSpec("publish_instances", True, "Publish ~/instances (pointgroup_ros/InstanceArray)"),
        ParamSpec("diagnostics_stale_s", 5.0, "Seconds without a cloud on ~/input/points after which /diagnostics "
                  "shows WARN (counted from when the model is ready while none came, so a silent camera at "
                  "start-up warns too); 0: never", float_range=STALE_RANGE),
        ParamSpec("inputs", "", "Names of the inputs one model serves, comma-separated (e.g. 'front, rear'): each "
                  "input k has its topic ~/k/input/points and its outputs under ~/k/ (one diagnostic status each); "
                  "frames are taken newest-first per input and in turn across inputs. Empty: one input, "
                  "~/input/points and outputs under ~/", read_only=True),
        ParamSpec("input_reliability", "best_effort", "QoS reliability of the ~/input/points subscription",
                  read_only=True, choices=RELIABILITY),
        ParamSpec("input_depth", 1, "QoS history depth (keep last) of the input; 1 = newest frame only",
                  read_only=True, int_range=DEPTH_RANGE),
        ParamSpec("output_reliability", "reliable", "QoS reliability of the output publishers (RViz's default "
                  "subscription is reliable: a best-effort publisher shows nothing there)", read_only=True,
                  choices=RELIABILITY),
        ParamSpec("output_depth", 1, "QoS history depth of the output publishers", read_only=True,
                  int_range=DEPTH_RANGE),
    )


SPECS_BY_NAME = {s.name: s for s in param_specs()}


def _default_preprocess() -> PreprocessConfig:
    return PreprocessConfig(voxel_size=Config().voxel_size)


@dataclass(frozen=True)
class NodeSettings:
    """The values the worker reads for each frame (swapped atomically when parameters change).

    preprocess.voxel_size is always resolved (a number, never None)."""

    preprocess: PreprocessConfig = dataclasses.field(default_factory=_default_preprocess)
    grouping: GroupingConfig = GroupingConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    max_points: int = 300_000
    gravity_frame: str = ""
    tf_timeout: float = 0.1
    tracking: bool = False
    tracking_frame: str = "odom"
    tracker: TrackerConfig = TrackerConfig()
    marker_lifetime: float = 0.0
    publish_labeled_points: bool = True
    publish_detections: bool = True
    publish_markers: bool = True
    publish_instances: bool = True
    diagnostics_stale_s: float = 5.0

    def values(self) -> dict[str, Any]:
        """Parameter name -> value."""
        return {"gravity_frame": self.gravity_frame, "tf_timeout": self.tf_timeout,
                "tracking": self.tracking, "tracking_frame": self.tracking_frame,
                **{name: getattr(self.tracker, key) for name, key in _TRACKER_KEYS.items()},
                "voxel_size": self.preprocess.voxel_size, "min_range": self.preprocess.min_range,
                "max_range": self.preprocess.max_range, "precision": self.preprocess.precision,
                "max_points": self.max_points,
                "cluster_radius": self.grouping.radius,
                "cluster_radius_shifted": self.grouping.shifted_radius,
                "cluster_min_points": self.grouping.min_points, "cluster_sets": self.grouping.sets,
                "score_threshold": self.postprocess.score_threshold,
                "nms_iou_threshold": self.postprocess.nms_iou_threshold,
                "min_instance_points": self.postprocess.min_instance_points,
                "marker_lifetime": self.marker_lifetime,
                **{k: getattr(self, k) for k in PUBLISH_FLAGS},
                "diagnostics_stale_s": self.diagnostics_stale_s}


PUBLISH_FLAGS = ("publish_labeled_points", "publish_detections", "publish_markers", "publish_instances")
TUNABLE = tuple(NodeSettings().values())
_PREPROCESS_KEYS = {"voxel_size": "voxel_size", "min_range": "min_range", "max_range": "max_range",
                    "precision": "precision"}
_GROUPING_KEYS = {"cluster_radius": "radius", "cluster_radius_shifted": "shifted_radius",
                  "cluster_min_points": "min_points", "cluster_sets": "sets"}
_POSTPROCESS_KEYS = {"score_threshold": "score_threshold", "nms_iou_threshold": "nms_iou_threshold",
                     "min_instance_points": "min_instance_points"}
_PLAIN_KEYS = ("max_points", "gravity_frame", "tf_timeout", "tracking", "tracking_frame",
               "marker_lifetime") + PUBLISH_FLAGS + ("diagnostics_stale_s",)


INPUT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def input_names(value: str) -> list[str]:
    """The `inputs` parameter as a list of names (['']: the single default input); ParameterError when a name is
    not a valid ROS name token or appears twice."""
    names = [name.strip() for name in value.split(",")] if value.strip() else [""]
    for name in names:
        if not INPUT_NAME.fullmatch(name) and names != [""]:
            raise ParameterError(f"inputs: {name!r} is not a valid input name (a letter, then letters, digits or _; "
                                 f"names separated by commas), in {value!r}")
    if len(set(names)) != len(names):
        raise ParameterError(f"inputs: a name appears twice in {value!r}")
    return names


def settings_from_config(cfg: Config, max_points: int = 300_000) -> NodeSettings:
    preprocess = dataclasses.replace(cfg.preprocess, voxel_size=cfg.voxel_size)
    return NodeSettings(preprocess=preprocess, grouping=cfg.grouping, postprocess=cfg.postprocess,
                        max_points=max_points)


def check_value(spec: ParamSpec, value: Any) -> Any:
    """The value converted to the parameter's type, or ParameterError with the reason."""
    kind = spec.kind
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ParameterError(f"{spec.name}: expected {kind.__name__ if kind is not tuple else 'a string array'}, "
                             f"got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ParameterError(f"{spec.name}: must be one of {', '.join(spec.choices)}, got {value!r}")
    lo_hi = spec.float_range or spec.int_range
    if lo_hi is not None and not lo_hi[0] <= value <= lo_hi[1]:
        raise ParameterError(f"{spec.name}: must be in [{lo_hi[0]}, {lo_hi[1]}], got {value!r}")
    return value


def apply_changes(settings: NodeSettings, changes: Mapping[str, Any],
                  specs: Mapping[str, ParamSpec] | None = None) -> NodeSettings:
    """New settings with `changes` (parameter name -> value) applied, validated as a whole.

    Read-only parameters are refused, names that are not ours are ignored (rclpy's own, e.g. use_sim_time).
    Raises ParameterError with the reason.
    """
    specs = specs or SPECS_BY_NAME
    values = settings.values()
    for name, value in changes.items():
        spec = specs.get(name)
        if spec is None:
            continue
        if spec.read_only:
            raise ParameterError(f"{name} is read-only (restart the node to change it)")
        if spec.reported:
            raise ParameterError(f"{name} is reported by the node (the loaded model's), not set")
        value = check_value(spec, value)
        if name == "device" and not DEVICE_PATTERN.fullmatch(value):
            raise ParameterError(f"device: must be auto, cpu, cuda or cuda:N, got {value!r}")
        values[name] = value
    for key in ("gravity_frame", "tracking_frame"):
        if key in changes:
            frame = normalize_frame(values[key])
            if any(c.isspace() for c in frame):
                raise ParameterError(f"{key}: a TF frame name has no white space, got {values[key]!r}")
            values[key] = frame
    if values["tracking"] and not values["tracking_frame"]:
        raise ParameterError("tracking_frame: tracking needs a fixed frame to track in (e.g. odom or map), got ''")
    try:
        preprocess = PreprocessConfig(**{key: values[name] for name, key in _PREPROCESS_KEYS.items()})
        grouping = GroupingConfig(**{key: values[name] for name, key in _GROUPING_KEYS.items()})
        postprocess = PostprocessConfig(**{key: values[name] for name, key in _POSTPROCESS_KEYS.items()})
        preprocess.validate()
        grouping.validate()
        postprocess.validate()
        tracker = dataclasses.replace(settings.tracker,
                                      **{key: values[name] for name, key in _TRACKER_KEYS.items()})
        tracker.validate()
    except ConfigError as exc:
        raise ParameterError(_parameter_names(str(exc))) from None
    return dataclasses.replace(settings, preprocess=preprocess, grouping=grouping, postprocess=postprocess,
                               tracker=tracker,
                               **{k: values[k] for k in _PLAIN_KEYS})


_CONFIG_TO_PARAM = {f"{section}.{key}": name for section, keys in (("preprocess", _PREPROCESS_KEYS),
                                                                     ("grouping", _GROUPING_KEYS),
                                                                     ("postprocess", _POSTPROCESS_KEYS),
                                                                     ("tracking", _TRACKER_KEYS))
                    for name, key in keys.items()}


def _parameter_names(reason: str) -> str:
    """A ConfigError's reason with the configuration's key (preprocess.max_range, tracking.min_iou) named as the
    parameter."""
    key = reason.split(":", 1)[0]
    name = _CONFIG_TO_PARAM.get(key)
    return f"{name}:{reason.split(':', 1)[1]}" if name else reason


def params_file_values(cfg: Config | None = None) -> dict[str, Any]:
    """Parameter name -> default for every parameter the shipped params file sets: all a params file may set
    except those whose defaults come from the model's configuration (FROM_MODEL), which it leaves out."""
    return {s.name: (list(s.default) if isinstance(s.default, tuple) else s.default)
            for s in param_specs(cfg) if s.in_params_file and s.name not in FROM_MODEL}


def to_descriptor(spec: ParamSpec) -> Any:
    """rcl_interfaces/ParameterDescriptor for `spec` (needs ROS 2: imports rcl_interfaces)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    types = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
             tuple: ParameterType.PARAMETER_STRING_ARRAY}
    descriptor = ParameterDescriptor(name=spec.name, type=types[spec.kind], description=spec.description,
                                     additional_constraints=spec.constraints(), read_only=spec.read_only)
    if spec.float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.float_range[0]),
                                                              to_value=float(spec.float_range[1]), step=0.0)]
    if spec.int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.int_range[0]),
                                                 to_value=int(spec.int_range[1]), step=1)]
    return descriptor
