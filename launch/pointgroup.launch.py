"""Start the `pointgroup` node: its parameter file, the input remap, and a few optional overrides.

    ros2 launch pointgroup_ros pointgroup.launch.py input_topic:=/camera/depth/color/points gravity_frame:=base_link
    ros2 launch pointgroup_ros pointgroup.launch.py weights:=/models/scannet.pth device:=cuda:1 namespace:=robot1
    ros2 launch pointgroup_ros pointgroup.launch.py params_file:=/path/my_params.yaml log_level:=debug
    ros2 launch pointgroup_ros pointgroup.launch.py gravity_frame:=base_link tracking:=true tracking_frame:=odom
    ros2 launch pointgroup_ros pointgroup.launch.py autostart:=false   # then: ros2 lifecycle set /pointgroup configure

The node is a managed (lifecycle) node: with autostart (the default) it configures (loads the model) and
activates itself at start-up; a configure that fails ends the process with code 1, and then the launch, with the
reason. autostart:=false leaves it unconfigured for `ros2 lifecycle set` or a lifecycle manager.

Every parameter and its default lives in config/pointgroup_node.yaml (the params file) or comes from the model;
this file declares none of them again. config, weights, device, gravity_frame, tracking_frame, tracking and
use_sim_time given here override the params file only when they are not empty; log_level sets the node's logging
level when given.
"""
from __future__ import annotations

from typing import Any

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

OVERRIDES = ("config", "weights", "device", "gravity_frame", "tracking_frame")  # strings, set only when not empty
SWITCHES = ("use_sim_time", "tracking", "autostart")  # booleans, set only when not empty
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _end_launch_if_failed(event: Any, context: LaunchContext) -> list[Any]:
    """The node ended with an error (autostart could not load the model, bad parameters): end the launch too,
    saying why, rather than leave RViz and the rest running without it."""
    if event.returncode == 0:
        return []
    reason = (f"the pointgroup node exited with code {event.returncode}: it could not start or load its model "
              "(the reason is in its log above); ending the launch")
    return [LogInfo(msg=reason), Shutdown(reason=reason)]


def _node(context: LaunchContext) -> list[Any]:
    overrides: dict[str, str | bool] = {}
    for name in OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    for name in SWITCHES:
        value = LaunchConfiguration(name).perform(context).strip().lower()
        if value:
            if value not in TRUE + FALSE:
                raise ValueError(f"{name} must be true or false, got {value!r}")
            overrides[name] = value in TRUE
    parameters: list = [LaunchConfiguration("params_file")]
    if overrides:
        parameters.append(overrides)
    log_level = LaunchConfiguration("log_level").perform(context)
    node = Node(
        package="pointgroup_ros",
        executable="pointgroup_node",
        name="pointgroup",
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        remappings=[("~/input/points", LaunchConfiguration("input_topic"))],
        arguments=["--ros-args", "--log-level", log_level] if log_level else [],
        output="screen",
        emulate_tty=True,
    )
    return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_end_launch_if_failed))]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("input_topic", default_value="/points",
                              description="sensor_msgs/PointCloud2 topic to segment (remaps ~/input/points)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("pointgroup_ros"), "config",
                                                                  "pointgroup_node.yaml"]),
                              description="node parameter file"),
        DeclareLaunchArgument("config", default_value="",
                              description="preset name or config YAML; empty: as in the params file (there: the "
                                          "configuration stored in the weights)"),
        DeclareLaunchArgument("weights", default_value="",
                              description="model checkpoint (.pth); empty: as in the params file"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty: as in the params file"),
        DeclareLaunchArgument("gravity_frame", default_value="",
                              description="z-up TF frame to segment in and publish boxes in (e.g. base_link); "
                                          "empty: as in the params file (there: the input frame)"),
        DeclareLaunchArgument("tracking", default_value="",
                              description="true: track the instances over frames (ids = track ids); empty: as in "
                                          "the params file (there: false)"),
        DeclareLaunchArgument("tracking_frame", default_value="",
                              description="fixed TF frame to track in (odom, map); empty: as in the params file "
                                          "(there: odom)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="true: configure (load the model) and activate the lifecycle node at "
                                          "start-up, ending the launch if that fails; false: leave it unconfigured "
                                          "(ros2 lifecycle set /pointgroup configure, then activate)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true: use /clock (bag playback); empty: as in the params file"),
        DeclareLaunchArgument("log_level", default_value="",
                              description="--log-level value: debug, info, warn, error or fatal (every logger), or "
                                          "pointgroup:=debug (the node and the core only); empty: info"),
        OpaqueFunction(function=_node),
    ])
