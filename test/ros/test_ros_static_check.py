"""Static check of the ROS layer: mypy against rclpy's published Python sources (rclpy-intellisense here, the
real rclpy on a ROS machine), with mypy.ini. A negative control proves rclpy's signatures are really used."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the ROS layer, its file / runner helpers, and the `ros` tests (which cannot run here: their rclpy calls are
# at least type-checked)
CHECKED = ["pointgroup_ros/ros", "pointgroup_ros/cloud_io.py", "pointgroup_ros/tools/run.py",
           "test/ros/test_node_ros.py"]


def _mypy(*paths: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy)")
    spec = importlib.util.find_spec("rclpy")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / "node.py").is_file():
        pytest.skip("rclpy's Python sources are not installed (pip install rclpy-intellisense, or source ROS 2)")
    env = {**os.environ, "MYPYPATH": str(REPO / "test" / "ros")}
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "mypy.ini"),
                           "--no-error-summary", *paths], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_ros_layer_passes_mypy():
    result = _mypy(*CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_sees_rclpy_signatures(tmp_path):
    """Misused rclpy calls must be reported: the check is not vacuous (rclpy is not treated as Any)."""
    bad = tmp_path / "bad_node.py"
    bad.write_text(
        "from rclpy.node import Node\n"
        "class Bad(Node):\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__('bad')\n"
        "        self.create_subscription(int, 42, self.on_msg, 1)\n"
        "        self.declare_parameter(3, 1)\n"
        "        self.create_publishr(int, 'x', 1)\n"
        "    def on_msg(self, msg: object) -> None:\n"
        "        return None\n")
    result = _mypy(str(bad))
    out = result.stdout
    assert result.returncode != 0
    assert 'Argument 2 to "create_subscription" of "Node" has incompatible type "int"' in out, out
    assert 'Argument 1 to "declare_parameter" of "Node" has incompatible type "int"' in out, out
    assert '"Bad" has no attribute "create_publishr"' in out, out

