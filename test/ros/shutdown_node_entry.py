"""The node as its own process, for test_node_shutdown.py: pointgroup_ros.ros.node.main with fakes that take time.

    python shutdown_node_entry.py [--resolve-s S] [--load-s S] [--frame-s S]

The model resolver (main thread, while the node is built) sleeps --resolve-s, the pipeline factory (autostart's
configure, main thread) --load-s, and each frame's segment() --frame-s; each prints a marker line first (RESOLVING,
LOADING, FRAME STARTED) and one when it is done (RESOLVED, LOADED, FRAME DONE), so a test knows which moment its
SIGINT hits. The pipeline finds no instances (the synthetic preset's classes); it does not import torch, so
the process starts in about a second. Run with the environment of
the tests (ROS_DOMAIN_ID from conftest.py); under .venv/ros the generated pointgroup_ros messages join the package
as conftest.py does it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolve-s", type=float, default=0.0)
    parser.add_argument("--load-s", type=float, default=0.0)
    parser.add_argument("--frame-s", type=float, default=0.0)
    opts = parser.parse_args(argv)

    import numpy as np
    from pypi_ros import interfaces_dir

    import pointgroup_ros
    from pointgroup_ros.config import Config, load_config

    generated = interfaces_dir(Path(sys.prefix))
    if (generated / "msg").is_dir() and str(generated) not in pointgroup_ros.__path__:
        pointgroup_ros.__path__.append(str(generated))
    from rclpy.parameter import Parameter

    from pointgroup_ros.ros import node as node_module

    autostart = Parameter("autostart", value=True)  # as the launch files start it: configure + activate

    class NoInstances:
        """pointgroup_ros.pipeline.Segmentation.empty's fields, without importing the pipeline (torch: seconds
        of start-up per process)."""

        def __init__(self, n: int, class_names: tuple[str, ...]) -> None:
            none = np.full(n, -1, np.int32)
            self.semantic, self.instance = none, none.copy()
            self.instance_class = np.zeros(0, np.int32)
            self.instance_score = np.zeros(0, np.float32)
            self.instance_point_idx = np.zeros(0, np.int64)
            self.instance_offsets = np.zeros(1, np.int64)
            self.box_min = self.box_max = np.zeros((0, 3), np.float32)
            self.class_names = class_names
            self.frame = "input"
            self.network_points = 0
            self.timings_ms = {"fake": 0.1}
            self.num_instances = 0

        def instance_points(self, m: int) -> np.ndarray:
            raise IndexError(m)

        def instance_class_names(self) -> list[str]:
            return []

    class SlowPipeline:
        """A pipeline that finds nothing, slowly."""

        def __init__(self, cfg: Config) -> None:
            self.cfg = cfg
            self.max_points = 300_000
            self.device = "cpu"

        @property
        def class_names(self) -> tuple[str, ...]:
            return tuple(self.cfg.data.class_names)

        def segment(self, xyz: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            _say("FRAME STARTED")
            time.sleep(opts.frame_s)
            _say("FRAME DONE")
            return NoInstances(xyz.shape[0], self.class_names)

    def resolver(config: str, weights: str) -> Config:
        _say("RESOLVING")
        time.sleep(opts.resolve_s)
        _say("RESOLVED")
        return load_config(config or "synthetic")

    def factory(cfg: Config, weights: str, device: str, max_points: int) -> SlowPipeline:
        _say("LOADING")
        time.sleep(opts.load_s)
        _say("LOADED")
        return SlowPipeline(cfg)

    node_module.main(node_factory=lambda: node_module.PointGroupNode(pipeline_factory=factory,
                                                                     model_resolver=resolver,
                                                                     parameter_overrides=[autostart]))
    _say("MAIN RETURNED")


if __name__ == "__main__":
    main()
