"""Node parameters without ROS: defaults from the typed config, validation with reasons, the shipped parameter
file, launch files, package files; the worker's mailbox and statistics."""
from __future__ import annotations

import ast
import py_compile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from pointgroup_ros.config import Config, GroupingConfig, PostprocessConfig, PreprocessConfig, load_config
from pointgroup_ros.ros.params import (FROM_MODEL, SPECS_BY_NAME, TUNABLE, NodeSettings, ParameterError,
                                      apply_changes, check_value, input_names, param_specs, params_file_values,
                                      settings_from_config)
from pointgroup_ros.ros.processing import FrameStats, InTurnMailbox
from pointgroup_ros.tracking import TrackerConfig
from test_node_fake_rclpy import node_module  # noqa: F401  (a fixture: the node on a stand-in rclpy)

REPO = Path(__file__).resolve().parents[2]


def test_defaults_come_from_the_typed_config():
    specs = {s.name: s for s in param_specs()}
    g, p = GroupingConfig(), PostprocessConfig()
    assert (specs["cluster_radius"].default, specs["cluster_min_points"].default, specs["cluster_sets"].default) == \
        (g.radius, g.min_points, g.sets)
    assert (specs["score_threshold"].default, specs["nms_iou_threshold"].default,
            specs["min_instance_points"].default) == (p.score_threshold, p.nms_iou_threshold, p.min_instance_points)
    s3dis = {s.name: s for s in param_specs(load_config("s3dis"))}
    assert s3dis["score_threshold"].default == load_config("s3dis").postprocess.score_threshold == 0.2
    assert s3dis["class_names"].default == load_config("s3dis").data.class_names
    synthetic = {s.name: s for s in param_specs(load_config("synthetic"))}
    assert synthetic["cluster_radius_shifted"].default == load_config("synthetic").grouping.shifted_radius > 0
    assert specs["cluster_radius_shifted"].default == 0.0  # the authors' single radius
    assert specs["voxel_size"].default == Config().voxel_size == 0.02  # the network's voxel (1 / scale)
    coarse = Config().replace(data={"scale": 25.0})
    assert {s.name: s for s in param_specs(coarse)}["voxel_size"].default == 0.04
    assert (specs["min_range"].default, specs["max_range"].default) == (0.0, 0.0)
    assert (specs["config"].default, specs["gravity_frame"].default, specs["marker_lifetime"].default) == ("", "", 0.0)
    assert NodeSettings().values() == {name: specs[name].default for name in TUNABLE}
    assert settings_from_config(load_config("s3dis")).values() == {
        s.name: s.default for s in param_specs(load_config("s3dis")) if s.name in TUNABLE}


def test_read_only_and_ranges():
    read_only = {s.name for s in param_specs() if s.read_only}
    assert read_only == {"autostart", "inputs", "input_reliability", "input_depth", "output_reliability",
                         "output_depth"}
    at_configure = {s.name for s in param_specs() if s.on_configure}
    assert at_configure == {"config", "weights", "device"}  # the model's source: read by each configure
    assert {s.name for s in param_specs() if s.reported} == {"class_names"}
    assert set(TUNABLE) == {s.name for s in param_specs()} - read_only - at_configure - {"class_names"}
    # the model's source is accepted at any time (checked), the node's report is not
    apply_changes(NodeSettings(), {"weights": "/models/x.pth", "device": "cuda:1", "config": "scannet"})
    for name, value, reason in (("device", "gpu", "must be auto, cpu, cuda or cuda:N"),
                                ("class_names", ["a"], "reported by the node"),
                                ("autostart", True, "read-only")):
        with pytest.raises(ParameterError, match=reason):
            apply_changes(NodeSettings(), {name: value})
    # every range end is a value the config accepts; just outside it is refused by the config too
    for name, key, section in (("cluster_radius", "radius", GroupingConfig),
                               ("cluster_radius_shifted", "shifted_radius", GroupingConfig),
                               ("score_threshold", "score_threshold", PostprocessConfig),
                               ("nms_iou_threshold", "nms_iou_threshold", PostprocessConfig)):
        lo, hi = SPECS_BY_NAME[name].float_range
        section(**{key: lo}).validate()
        section(**{key: hi}).validate()
    with pytest.raises(ValueError):
        GroupingConfig(radius=1.0001).validate()
    # the tracking thresholds: each range end is one TrackerConfig accepts (the others at their defaults, except
    # where two keys bound each other)
    tracking = {s.name: s for s in param_specs() if s.name.startswith("tracking_") and s.name != "tracking_frame"}
    assert set(tracking) == {"tracking_voxel_size", "tracking_min_iou", "tracking_max_distance",
                             "tracking_class_gate", "tracking_confirm_hits", "tracking_confirm_window",
                             "tracking_max_missed", "tracking_tentative_max_missed", "tracking_moving_speed"}
    for name, spec in tracking.items():
        key = name[len("tracking_"):]
        assert spec.default == getattr(TrackerConfig(), key), name
        for end in (spec.float_range or spec.int_range or ()):
            linked = {"confirm_hits": {"confirm_window": 64}, "confirm_window": {"confirm_hits": 1},
                      "max_missed": {"tentative_max_missed": 0}, "tentative_max_missed": {"max_missed": end}}
            TrackerConfig().replace(**{key: end, **linked.get(key, {})})
    assert SPECS_BY_NAME["tracking_confirm_hits"].int_range == (1, 64)
    assert SPECS_BY_NAME["tracking_min_iou"].float_range == (0.0, 1.0)
    assert SPECS_BY_NAME["tracking_voxel_size"].float_range == (0.005, 1.0)


@pytest.mark.parametrize("changes,reason", [
    ({"score_threshold": 1.5}, r"score_threshold: must be in \[0.0, 1.0\], got 1.5"),
    ({"nms_iou_threshold": -0.1}, "nms_iou_threshold: must be in"),
    ({"cluster_radius": 0.0}, "cluster_radius: must be in"),
    ({"cluster_radius_shifted": -0.01}, "cluster_radius_shifted: must be in"),
    ({"cluster_min_points": 0}, "cluster_min_points: must be in"),
    ({"cluster_sets": "pq"}, "cluster_sets: must be one of p, q, both"),
    ({"min_instance_points": -1}, "min_instance_points"),
    ({"max_points": 10}, "max_points: must be in"),
    ({"publish_markers": 1}, "publish_markers: expected bool"),
    ({"cluster_min_points": 5.0}, "cluster_min_points: expected int"),
    ({"score_threshold": "high"}, "score_threshold: expected float"),
    ({"device": "cuda:x"}, "device: must be auto, cpu, cuda or cuda:N"),
    ({"weights": 3}, "weights: expected str"),
    ({"autostart": True}, "autostart is read-only"),
    ({"input_depth": 2}, "input_depth is read-only"),
    ({"class_names": ["a"]}, "class_names is reported by the node"),
    ({"voxel_size": -0.01}, r"voxel_size: must be in \[0.0, 1.0\]"),
    ({"voxel_size": 1.5}, "voxel_size: must be in"),
    ({"min_range": -1.0}, "min_range: must be in"),
    ({"max_range": 1e6}, "max_range: must be in"),
    ({"min_range": 2.0, "max_range": 1.0}, "max_range: must be greater than min_range"),
    ({"tf_timeout": 11.0}, "tf_timeout: must be in"),
    ({"tf_timeout": -0.1}, "tf_timeout: must be in"),
    ({"marker_lifetime": -1.0}, "marker_lifetime: must be in"),
    ({"diagnostics_stale_s": -1.0}, r"diagnostics_stale_s: must be in \[0.0, 3600.0\], got -1.0"),
    ({"diagnostics_stale_s": "5"}, "diagnostics_stale_s: expected float"),
    ({"gravity_frame": 3}, "gravity_frame: expected str"),
    ({"gravity_frame": "base link"}, "gravity_frame: a TF frame name has no white space"),
    ({"tracking": 1}, "tracking: expected bool"),
    ({"tracking_frame": "my odom"}, "tracking_frame: a TF frame name has no white space"),
    ({"tracking": True, "tracking_frame": "/"}, "tracking_frame: tracking needs a fixed frame"),
    ({"tracking_min_iou": 1.2}, r"tracking_min_iou: must be in \[0.0, 1.0\]"),
    ({"tracking_voxel_size": 0.001}, "tracking_voxel_size: must be in"),
    ({"tracking_max_distance": 0.0}, "tracking_max_distance: must be in"),
    ({"tracking_confirm_hits": 0}, "tracking_confirm_hits: must be in"),
    ({"tracking_confirm_hits": 6}, r"tracking_confirm_window: must be in \[confirm_hits, 64\]"),
    ({"tracking_confirm_window": 65}, "tracking_confirm_window: must be in"),
    ({"tracking_max_missed": -1}, "tracking_max_missed: must be in"),
    ({"tracking_max_missed": 1}, r"tracking_tentative_max_missed: must be in \[0, max_missed\]"),
    ({"tracking_moving_speed": -0.1}, "tracking_moving_speed: must be in"),
    ({"tracking_class_gate": "yes"}, "tracking_class_gate: expected bool"),
    ({"tracking_max_missed": 3.0}, "tracking_max_missed: expected int"),
    ({"precision": "fp64"}, "precision: must be one of fp32, fp16, got 'fp64'"),
    ({"precision": 16}, "precision: expected str"),
])
def test_invalid_values_are_refused_with_a_reason(changes, reason):
    settings = NodeSettings()
    with pytest.raises(ParameterError, match=reason):
        apply_changes(settings, changes)
    assert settings == NodeSettings()  # nothing half-applied


def test_valid_changes_apply_as_a_whole():
    s = apply_changes(NodeSettings(), {"cluster_radius": 0.05, "cluster_sets": "q", "score_threshold": 0,
                                       "cluster_radius_shifted": 0.02, "publish_detections": False,
                                       "max_points": 50_000, "use_sim_time": True})
    assert s.grouping == GroupingConfig(radius=0.05, min_points=50, sets="q", shifted_radius=0.02)
    assert s.postprocess.score_threshold == 0.0 and isinstance(s.postprocess.score_threshold, float)
    assert not s.publish_detections and s.max_points == 50_000
    with pytest.raises(ParameterError):  # one bad value refuses the whole batch
        apply_changes(s, {"cluster_radius": 0.04, "score_threshold": 3.0})
    assert check_value(SPECS_BY_NAME["cluster_radius"], 1) == 1.0


def test_sensor_and_frame_parameters_apply():
    s = apply_changes(NodeSettings(), {"voxel_size": 0, "min_range": 0.3, "max_range": 8, "gravity_frame": "/base_link",
                                       "tf_timeout": 0.5, "marker_lifetime": 1})
    assert s.preprocess == PreprocessConfig(voxel_size=0.0, min_range=0.3, max_range=8.0)
    assert (s.gravity_frame, s.tf_timeout, s.marker_lifetime) == ("base_link", 0.5, 1.0)  # normalised frame
    assert apply_changes(s, {"max_range": 0.0}).preprocess.max_range == 0.0  # 0 = off, whatever min_range is
    assert apply_changes(s, {"gravity_frame": ""}).gravity_frame == ""
    assert NodeSettings().diagnostics_stale_s == SPECS_BY_NAME["diagnostics_stale_s"].default == 5.0
    stale = apply_changes(s, {"diagnostics_stale_s": 2})  # an int is taken as a float; 0 = never warn
    assert stale.diagnostics_stale_s == 2.0 and isinstance(stale.diagnostics_stale_s, float)
    assert apply_changes(stale, {"diagnostics_stale_s": 0.0}).diagnostics_stale_s == 0.0
    # the preprocess values reach the pipeline's own validation unchanged
    apply_changes(s, {}).preprocess.validate()


def test_precision_parameter_is_live_and_comes_from_the_configuration():
    spec = SPECS_BY_NAME["precision"]
    assert (spec.default, spec.choices, spec.read_only) == ("fp32", ("fp32", "fp16"), False)
    assert "precision" in TUNABLE and "precision" in FROM_MODEL  # the model's configuration gives the default
    half_cfg = load_config("synthetic").replace(preprocess={"precision": "fp16"})
    assert {s.name: s for s in param_specs(half_cfg)}["precision"].default == "fp16"
    assert settings_from_config(half_cfg).preprocess.precision == "fp16"
    assert settings_from_config(half_cfg).values()["precision"] == "fp16"
    assert NodeSettings().preprocess.precision == "fp32"
    s = apply_changes(NodeSettings(), {"precision": "fp16", "voxel_size": 0.05})
    assert s.preprocess == PreprocessConfig(voxel_size=0.05, precision="fp16")  # what the pipeline gets per frame
    s.preprocess.validate()
    assert apply_changes(s, {"precision": "fp32"}).preprocess == PreprocessConfig(voxel_size=0.05)
    assert apply_changes(s, {"min_range": 0.5}).preprocess.precision == "fp16"  # kept by other changes


def test_precision_parameter_reaches_the_pipeline_in_the_fake_rclpy_node(node_module):
    """The node (against the stand-in rclpy of test_node_fake_rclpy.py) hands the precision to the pipeline
    with every frame: at start-up from the parameter, then live after `ros2 param set`."""
    import test_node_fake_rclpy as fake

    node = fake._make_node(node_module, {"precision": "fp16"})
    try:
        fake._send(node, fake._rclpy_cloud())
        assert node.fake_pipeline.calls[-1]["preprocess"].precision == "fp16"
        assert node.set_parameters_atomically({"precision": "fp32"}).successful
        fake._send(node, fake._rclpy_cloud())
        assert node.fake_pipeline.calls[-1]["preprocess"].precision == "fp32"
        bad = node.set_parameters_atomically({"precision": "bf16"})
        assert not bad.successful and "precision: must be one of fp32, fp16" in bad.reason
    finally:
        node.destroy_node()


def test_tracking_parameters_apply():
    s = apply_changes(NodeSettings(), {"tracking": True, "tracking_frame": "/map", "tracking_min_iou": 0.25,
                                       "tracking_confirm_hits": 2, "tracking_max_missed": 30,
                                       "tracking_class_gate": False, "tracking_voxel_size": 0.1})
    assert (s.tracking, s.tracking_frame) == (True, "map")  # normalised frame
    assert s.tracker == TrackerConfig(min_iou=0.25, confirm_hits=2, max_missed=30, class_gate=False, voxel_size=0.1)
    assert isinstance(s.tracker.voxel_size, float) and isinstance(s.tracker.min_iou, float)
    assert NodeSettings().tracker == TrackerConfig() and NodeSettings().tracking_frame == "odom"
    assert not NodeSettings().tracking
    # tracking off: the frame may be empty (unused); the thresholds keep their values
    off = apply_changes(s, {"tracking": False, "tracking_frame": ""})
    assert (off.tracking, off.tracking_frame, off.tracker) == (False, "", s.tracker)
    with pytest.raises(ParameterError, match="tracking_frame"):
        apply_changes(off, {"tracking": True})
    assert apply_changes(s, {"tracking_confirm_window": 8, "tracking_confirm_hits": 8}).tracker.confirm_hits == 8


def test_shipped_params_file_lists_every_parameter_with_its_default():
    text = (REPO / "config" / "pointgroup_node.yaml").read_text()
    values = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert values["config"] == ""  # the configuration comes from the weights (the demo model: synthetic)
    expected = params_file_values(load_config("synthetic"))
    assert list(values) != [] and set(values) == set(expected)
    for name, value in expected.items():
        assert values[name] == value and type(values[name]) is type(value), name
    # the model's values are not overridden: those keys are left out, listed only as comments
    assert not set(FROM_MODEL) & set(values)
    assert all(f"# {name}:" in text for name in FROM_MODEL)
    assert set(FROM_MODEL) | set(values) | {"class_names"} == set(SPECS_BY_NAME)
    # and it is a parameter set the node accepts as it is
    apply_changes(NodeSettings(), {k: v for k, v in values.items() if not SPECS_BY_NAME[k].read_only
                                   and not SPECS_BY_NAME[k].reported})


def test_every_parameter_is_documented():
    doc = (REPO / "docs" / "ROS.md").read_text()
    assert [s.name for s in param_specs() if f"`{s.name}`" not in doc] == []


def test_launch_files_compile_and_pass_only_a_params_file_remaps_and_overrides(tmp_path):
    launch = sorted((REPO / "launch").glob("*.launch.py"))
    assert [p.name for p in launch] == ["pointgroup.launch.py", "pointgroup_rviz.launch.py",
                                        "pointgroup_tuning.launch.py"]
    for path in launch:
        py_compile.compile(str(path), cfile=str(tmp_path / (path.name + "c")), doraise=True)
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
        # no parameter is declared or set again in a launch file (only the documented overrides)
        declared = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "DeclareLaunchArgument"}
        keys = {k.value for n in ast.walk(tree) if isinstance(n, ast.Dict) for k in n.keys
                if isinstance(k, ast.Constant)}
        assert (declared | keys) & set(SPECS_BY_NAME) <= {"config", "weights", "device", "gravity_frame", "tracking",
                                                          "tracking_frame", "autostart"}, path.name
    main = (REPO / "launch" / "pointgroup.launch.py").read_text()
    for arg in ("input_topic", "params_file", "config", "weights", "device", "gravity_frame", "namespace",
                "use_sim_time", "log_level", "tracking", "tracking_frame", "autostart"):
        assert f'DeclareLaunchArgument("{arg}"' in main
    assert '"~/input/points"' in main and "pointgroup_node.yaml" in main
    assert yaml.safe_load((REPO / "config" / "pointgroup.rviz").read_text())["Visualization Manager"]


def test_package_files_agree():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.findtext("name") == "pointgroup_ros"
    assert root.find("export/build_type").text == "ament_cmake"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    assert {"rclpy", "sensor_msgs", "vision_msgs", "visualization_msgs", "diagnostic_msgs", "std_msgs",
            "rosidl_default_generators", "rosidl_default_runtime", "launch_ros", "tf2_ros_py", "geometry_msgs"} <= deps
    cmake = (REPO / "CMakeLists.txt").read_text()
    msgs = sorted(p.name for p in (REPO / "msg").glob("*.msg"))
    assert msgs == ["Instance.msg", "InstanceArray.msg"] and all(f'"msg/{m}"' in cmake for m in msgs)
    assert "ament_python_install_package" not in cmake.split("# Why this layout")[1].split("cmake_minimum")[1]
    assert cmake.index("rosidl_generate_interfaces(") < cmake.index("install(DIRECTORY ${PROJECT_NAME}/")
    assert not (REPO / "pointgroup_ros" / "msg").exists()  # would shadow the generated pointgroup_ros.msg
    script = REPO / "scripts" / "pointgroup_node"
    assert script.stat().st_mode & 0o111 and "pointgroup_ros.ros.node import main" in script.read_text()


def test_mailbox_keeps_only_the_newest_and_counts_drops():
    box: InTurnMailbox[int] = InTurnMailbox()
    assert box.take(timeout=0.01) is None
    assert box.put("", 1) is False and box.put("", 2) is True and box.put("", 3) is True
    assert box.take(timeout=0.01) == ("", 3) and box.dropped == {"": 2} and box.received == {"": 3}
    got = []
    worker = threading.Thread(target=lambda: got.append(box.take(timeout=5.0)))
    worker.start()
    box.put("", 4)
    worker.join(timeout=5.0)
    assert got == [("", 4)]
    box.put("", 5)
    box.clear()
    assert box.take(timeout=0.01) is None
    box.close()
    assert box.take(timeout=0.01) is None and box.closed


def test_mailbox_serves_the_inputs_in_turn():
    """A camera at 30 Hz cannot starve one at 5 Hz: the worker takes each input's newest frame in turn, starting
    after the input it served last."""
    box: InTurnMailbox[int] = InTurnMailbox(["front", "rear", "left"])
    box.put("front", 1)
    box.put("rear", 2)
    assert box.take(0.01) == ("front", 1)
    box.put("front", 3)  # front again before rear was served: rear still comes first
    assert box.take(0.01) == ("rear", 2)
    assert box.take(0.01) == ("front", 3)
    taken = []
    for frame in range(12):  # front busy at every step, left every third: left gets its turn each time
        box.put("front", 100 + frame)
        if frame % 3 == 0:
            box.put("left", 200 + frame)
        taken.append(box.take(0.01))
    assert [name for name, _ in taken].count("left") == 4
    assert ("left", 209) in taken and box.dropped["left"] == 0
    assert box.received == {"front": 14, "rear": 1, "left": 4}


@pytest.mark.parametrize("value, names", [("", [""]), ("  ", [""]), ("front", ["front"]),
                                          ("front, rear ,left_2", ["front", "rear", "left_2"])])
def test_input_names(value: str, names: list[str]) -> None:
    assert input_names(value) == names


@pytest.mark.parametrize("value, reason", [("front,", "'' is not a valid input name"),
                                           ("2nd", "'2nd' is not a valid input name"),
                                           ("front/left", "is not a valid input name"),
                                           ("a, a", "appears twice")])
def test_input_names_refused(value: str, reason: str) -> None:
    with pytest.raises(ParameterError, match=reason):
        input_names(value)


def test_stats_key_values():
    stats = FrameStats()
    stats.record_error(True, "cloud has no y field")
    values = dict(stats.key_values(dropped=3, received=10))
    assert values["frames dropped (newer frame arrived)"] == "3" and values["frames rejected (bad input)"] == "1"
    assert values["last error"] == "cloud has no y field" and not stats.last_frame_ok
    stats.record_skip("no transform base_link <- camera")
    values = dict(stats.key_values(dropped=0, received=11))
    assert values["frames skipped (no transform)"] == "1" and values["last error"].startswith("no transform")
