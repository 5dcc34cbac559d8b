"""The `pointgroup` node plus RViz 2 showing the labeled cloud (coloured by instance), boxes and labels.

    ros2 launch pointgroup_ros pointgroup_rviz.launch.py input_topic:=/camera/depth/color/points \\
        gravity_frame:=base_link
    ros2 launch pointgroup_ros pointgroup_rviz.launch.py input_topic:=/points fixed_frame:=camera_depth_optical_frame

RViz's fixed frame: `fixed_frame` when given, else `gravity_frame` when given (the frame the boxes are published
in), else camera_depth_optical_frame; it must be the cloud's frame or one that TF links to it. RViz gets a
temporary copy of config/pointgroup.rviz whose topics follow `namespace` (/<namespace>/pointgroup/...). The other
arguments are those of pointgroup.launch.py, which this file includes (and which declares them and their defaults).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

DEFAULT_FIXED_FRAME = "camera_depth_optical_frame"
NODE_TOPICS = "/pointgroup/"  # the topic prefix of a node named `pointgroup` in the root namespace


def fixed_frame_for(fixed_frame: str, gravity_frame: str) -> str:
    """RViz's fixed frame: the one asked for, else the gravity frame (boxes live there), else the default."""
    return fixed_frame or gravity_frame or DEFAULT_FIXED_FRAME


def rviz_config_text(text: str, namespace: str, fixed_frame: str) -> str:
    """config/pointgroup.rviz with its topics in `namespace` and the given fixed frame."""
    config = yaml.safe_load(text)
    prefix = "/" + "/".join(part for part in namespace.split("/") if part)
    prefix = "" if prefix == "/" else prefix
    manager = config["Visualization Manager"]
    for display in manager.get("Displays", []):
        topic = display.get("Topic")
        if isinstance(topic, dict) and str(topic.get("Value", "")).startswith(NODE_TOPICS):
            topic["Value"] = prefix + topic["Value"]
    manager["Global Options"]["Fixed Frame"] = fixed_frame
    return yaml.safe_dump(config, sort_keys=False)


def _rviz(context: LaunchContext) -> list[Node]:
    share = Path(FindPackageShare("pointgroup_ros").perform(context))
    settings = context.launch_configurations
    fixed_frame = fixed_frame_for(settings.get("fixed_frame", ""), settings.get("gravity_frame", ""))
    text = rviz_config_text((share / "config" / "pointgroup.rviz").read_text(), settings.get("namespace", ""),
                            fixed_frame)
    handle, path = tempfile.mkstemp(prefix="pointgroup_", suffix=".rviz")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    return [Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                 arguments=["-d", path, "-f", fixed_frame])]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("pointgroup_ros")
    return LaunchDescription([
        DeclareLaunchArgument("fixed_frame", default_value="",
                              description="RViz fixed frame; empty: gravity_frame when given, else "
                                          f"{DEFAULT_FIXED_FRAME}"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "pointgroup.launch.py"]))),
        OpaqueFunction(function=_rviz),
    ])
