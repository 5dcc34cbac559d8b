"""ROS 2 settings for the `ros` tests: a DDS domain of their own, discovery on this machine only, and the
pointgroup_ros messages that test/ros/pypi_ros.py generated for the PyPI environment (.venv/ros).

Set before any test calls rclpy.init, for every run (make test's .venv/ros, colcon test, by hand):
- ROS_DOMAIN_ID from the process id (1..101), so that two runs on one machine (or a robot on the network) do
  not see each other's topics; POINTGROUP_TEST_ROS_DOMAIN_ID chooses one instead;
- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (Jazzy) and, on Humble, ROS_LOCALHOST_ONLY=1: no traffic leaves the
  machine.
Under .venv/ros, the generated pointgroup_ros/msg (installed in .venv/ros/pointgroup_ros_interfaces) joins the
pointgroup_ros package (its __path__), as colcon's install merges the two; the source tree holds no msg/ package.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pypi_ros import interfaces_dir

os.environ["ROS_DOMAIN_ID"] = os.environ.get("POINTGROUP_TEST_ROS_DOMAIN_ID", str(os.getpid() % 101 + 1))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if os.environ.get("ROS_DISTRO") == "humble":  # Jazzy warns that ROS_LOCALHOST_ONLY is deprecated
    os.environ["ROS_LOCALHOST_ONLY"] = "1"

_GENERATED = interfaces_dir(Path(sys.prefix))
if (_GENERATED / "msg").is_dir():
    import pointgroup_ros

    if str(_GENERATED) not in pointgroup_ros.__path__:
        pointgroup_ros.__path__.append(str(_GENERATED))
