"""The launch files' own logic without ROS 2: they are loaded against stand-ins of the launch / launch_ros API,
and the functions they run at launch time (OpaqueFunction) are called with a stand-in launch context."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


class _Action:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name: str, default: str | None = None) -> None:
        self.name = name

    def perform(self, context: Any) -> str:
        return str(context.launch_configurations.get(self.name, ""))


class _FindPackageShare:
    def __init__(self, package: str) -> None:
        self.package = package

    def perform(self, context: Any) -> str:
        return str(context.share)


@pytest.fixture
def launch_file(monkeypatch: pytest.MonkeyPatch) -> Any:
    fakes = {
        "launch": types.SimpleNamespace(LaunchContext=object, LaunchDescription=_Action),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=_Action, OpaqueFunction=_Action,
                                                IncludeLaunchDescription=_Action, RegisterEventHandler=_Action,
                                                Shutdown=_Action, LogInfo=_Action),
        "launch.event_handlers": types.SimpleNamespace(OnProcessExit=_Action),
        "launch.launch_description_sources": types.SimpleNamespace(PythonLaunchDescriptionSource=_Action),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=_LaunchConfiguration,
                                                      PathJoinSubstitution=_Action),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.SimpleNamespace(Node=_Action),
        "launch_ros.substitutions": types.SimpleNamespace(FindPackageShare=_FindPackageShare),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)

    def load(name: str) -> Any:
        spec = importlib.util.spec_from_file_location(name.replace(".", "_"), REPO / "launch" / name)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _context(**values: str) -> Any:
    return types.SimpleNamespace(launch_configurations=values, share=REPO)


def _opaque(description: Any) -> Any:
    (opaque,) = [a for a in description.args[0] if a.kwargs.get("function")]
    return opaque.kwargs["function"]


def test_node_launch_overrides_only_what_is_given(launch_file: Any) -> None:
    module = launch_file("pointgroup.launch.py")
    run = _opaque(module.generate_launch_description())
    base = {"params_file": "p.yaml", "input_topic": "/points", "namespace": ""}
    (node, _) = run(_context(**base, config="", weights="", device="", gravity_frame="", use_sim_time="",
                             log_level="", autostart=""))
    assert len(node.kwargs["parameters"]) == 1 and node.kwargs["arguments"] == []
    (node, _) = run(_context(**base, config="scannet", weights="/w.pth", device="cpu", gravity_frame="base_link",
                             use_sim_time="true", log_level="debug", autostart="true"))
    assert node.kwargs["parameters"][1] == {"config": "scannet", "weights": "/w.pth", "device": "cpu",
                                            "gravity_frame": "base_link", "use_sim_time": True, "autostart": True}
    assert node.kwargs["arguments"] == ["--ros-args", "--log-level", "debug"]
    (node, _) = run(_context(**base, use_sim_time="False", autostart="false"))
    assert node.kwargs["parameters"][1] == {"use_sim_time": False, "autostart": False}
    with pytest.raises(ValueError, match="use_sim_time"):
        run(_context(**base, use_sim_time="maybe"))
    (node, _) = run(_context(**base, tracking="true", tracking_frame="map"))
    assert node.kwargs["parameters"][1] == {"tracking": True, "tracking_frame": "map"}
    with pytest.raises(ValueError, match="tracking must be true or false"):
        run(_context(**base, tracking="sometimes"))


def test_rviz_launch_follows_namespace_and_gravity_frame(launch_file: Any) -> None:
    module = launch_file("pointgroup_rviz.launch.py")
    run = _opaque(module.generate_launch_description())
    (rviz,) = run(_context(namespace="/robot1/", gravity_frame="base_link", fixed_frame=""))
    args = rviz.kwargs["arguments"]
    assert args[0] == "-d" and args[2:] == ["-f", "base_link"]
    config = yaml.safe_load(Path(args[1]).read_text())
    Path(args[1]).unlink()
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]
    assert topics == ["/robot1/pointgroup/labeled_points", "/robot1/pointgroup/markers"]
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "base_link"
    shipped = yaml.safe_load((REPO / "config" / "pointgroup.rviz").read_text())
    assert module.rviz_config_text((REPO / "config" / "pointgroup.rviz").read_text(), "", "map") == \
        yaml.safe_dump({**shipped, "Visualization Manager": {**shipped["Visualization Manager"], "Global Options": {
            **shipped["Visualization Manager"]["Global Options"], "Fixed Frame": "map"}}}, sort_keys=False)
    assert module.fixed_frame_for("odom", "base_link") == "odom"  # an explicit fixed_frame wins
    assert module.fixed_frame_for("", "") == "camera_depth_optical_frame"


def test_package_xml_declares_every_package_the_launch_files_start() -> None:
    """rosdep installs what package.xml names: a launch file that starts rviz2 or rqt_reconfigure needs them as
    exec_depend, or `ros2 launch` fails on a robot installed with rosdep."""
    import re
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "package.xml").getroot()
    declared = {e.text for tag in ("exec_depend", "depend") for e in root.iter(tag)}
    started = {m for path in (REPO / "launch").glob("*.launch.py")
               for m in re.findall(r'package="([A-Za-z0-9_]+)"', path.read_text())}
    assert {"rviz2", "rqt_reconfigure"} <= started
    assert started - {"pointgroup_ros"} <= declared, sorted(started - declared - {"pointgroup_ros"})


def test_node_launch_autostarts_and_ends_when_the_node_fails(launch_file: Any) -> None:
    """autostart defaults to true (the node configures and activates itself); a node that exits with an error
    (its configure failed) ends the launch with a reason, a clean exit (Ctrl-C) does not."""
    module = launch_file("pointgroup.launch.py")
    description = module.generate_launch_description()
    (autostart,) = [a for a in description.args[0] if a.args and a.args[0] == "autostart"]
    assert autostart.kwargs["default_value"] == "true"
    run = _opaque(description)
    (node, handler) = run(_context(params_file="p.yaml", input_topic="/points", namespace="", autostart="true"))
    (on_exit,) = handler.args
    assert on_exit.kwargs["target_action"] is node
    end = on_exit.kwargs["on_exit"]
    assert end(types.SimpleNamespace(returncode=0), None) == []
    (said, shutdown) = end(types.SimpleNamespace(returncode=1), None)
    assert "exited with code 1" in shutdown.kwargs["reason"] and "could not start" in shutdown.kwargs["reason"]
    assert said.kwargs["msg"] == shutdown.kwargs["reason"]  # launch logs only its own line for a Shutdown
