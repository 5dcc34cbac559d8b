"""The `pointgroup` node plus RViz 2 showing the labeled cloud (coloured by instance), boxes and labels.

    ros2 launch pointgroup_ros pointgroup_rviz.launch.py input_topic:=/camera/depth/color/points \\
        fixed_frame:=camera_depth_optical_frame

fixed_frame must be the input cloud's frame or one that TF links to it. The other arguments are those of
pointgroup.launch.py, which this file includes (and which declares them and their defaults).
"""
from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("pointgroup_ros")
    return LaunchDescription([
        DeclareLaunchArgument("fixed_frame", default_value="camera_depth_optical_frame",
                              description="RViz fixed frame (the input cloud's frame, or one TF links to it)"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "pointgroup.launch.py"]))),
        Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
             arguments=["-d", PathJoinSubstitution([share, "config", "pointgroup.rviz"]),
                        "-f", LaunchConfiguration("fixed_frame")]),
    ])
