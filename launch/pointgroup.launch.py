"""Start the `pointgroup` node: its parameter file, the input remap, and optional weights / device overrides.

    ros2 launch pointgroup_ros pointgroup.launch.py input_topic:=/camera/depth/color/points
    ros2 launch pointgroup_ros pointgroup.launch.py params_file:=/path/my_params.yaml device:=cuda:1

Every parameter and its default lives in config/pointgroup_node.yaml (the params file); this file declares none of
them again. weights / device given here override the params file only when they are not empty.
"""
from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _node(context: LaunchContext) -> list[Node]:
    overrides = {name: LaunchConfiguration(name).perform(context) for name in ("weights", "device")}
    parameters: list = [LaunchConfiguration("params_file")]
    if any(overrides.values()):
        parameters.append({k: v for k, v in overrides.items() if v})
    return [Node(
        package="pointgroup_ros",
        executable="pointgroup_node",
        name="pointgroup",
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        remappings=[("~/input/points", LaunchConfiguration("input_topic"))],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("input_topic", default_value="/points",
                              description="sensor_msgs/PointCloud2 topic to segment (remaps ~/input/points)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("pointgroup_ros"), "config",
                                                                  "pointgroup_node.yaml"]),
                              description="node parameter file (every parameter with its default)"),
        DeclareLaunchArgument("weights", default_value="",
                              description="model checkpoint (.pth); empty: as in the params file"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty: as in the params file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        OpaqueFunction(function=_node),
    ])
