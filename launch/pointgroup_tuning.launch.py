"""The `pointgroup` node plus rqt_reconfigure, to tune grouping and filtering live (its sliders use the ranges
of the parameter descriptors). Takes the arguments of pointgroup.launch.py, which it includes (and which declares
them and their defaults).

    ros2 launch pointgroup_ros pointgroup_tuning.launch.py input_topic:=/camera/depth/color/points

Changes apply from the next frame; keep the values you like in your params file (ros2 param dump /pointgroup).
"""
from __future__ import annotations

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("pointgroup_ros")
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "pointgroup.launch.py"]))),
        Node(package="rqt_reconfigure", executable="rqt_reconfigure", name="rqt_reconfigure", output="screen"),
    ])
