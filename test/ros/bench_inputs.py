"""What a second and third camera cost: the node with the real model on the CPU, K inputs at 30 Hz each.

    .venv/ros/bin/python test/ros/bench_inputs.py [--inputs 1 2 3] [--seconds 60] [--cloud PCD] [--json OUT]

(.venv/ros: ROS 2 Jazzy's rclpy from PyPI, built by `make test`.) For each K the node runs in this process with
the shipped demo model on the CPU (autostart: configure + activate), `inputs` = cam0..cam{K-1}; a publisher
process sends a real RGB-D frame (../shared/realdata/pcl, a Kinect capture, every second pixel: 320 x 240, in the
camera's optical frame; gravity_frame is not set, the cost is what is measured) to every input at 30 Hz. After a
warm-up it counts, over `--seconds`, the frames each input gets published (~/camK/instances), the frames dropped
per input, and the node process's CPU time (every thread). Prints a Markdown table; not a test (no pass/fail).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_CLOUD = REPO.parent / "shared" / "realdata" / "pcl" / "frame_20121214T142255.814212.pcd"
RATE_HZ = 30.0
WARMUP_S = 10.0


def _join_generated_messages() -> None:
    """Under .venv/ros the generated pointgroup_ros messages join the package (as conftest.py does it)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from pypi_ros import interfaces_dir

    import pointgroup_ros

    generated = interfaces_dir(Path(sys.prefix))
    if (generated / "msg").is_dir() and str(generated) not in pointgroup_ros.__path__:
        pointgroup_ros.__path__.append(str(generated))


def _camera_frame(path: Path) -> tuple[Any, Any]:
    """(xyz, rgb) of the capture at half resolution, organized 240 x 320."""
    from pointgroup_ros.cloud_io import read_cloud

    cloud = read_cloud(path)
    xyz = cloud.xyz.reshape(cloud.height, cloud.width, 3)[::2, ::2].reshape(-1, 3)
    rgb = cloud.rgb.reshape(cloud.height, cloud.width, 3)[::2, ::2].reshape(-1, 3)
    return xyz, rgb


def publish(names: list[str], cloud_path: Path) -> None:
    """The publisher process: the same frame to every input at RATE_HZ until killed."""
    import rclpy

    from pointgroup_ros.ros.cloud import encode_cloud
    from pointgroup_ros.ros.kit import RclpyKit

    rclpy.init()
    node = rclpy.create_node("bench_cameras")
    kit = RclpyKit()
    xyz, rgb = _camera_frame(cloud_path)
    pubs = [node.create_publisher(kit.cls("sensor_msgs/msg/PointCloud2"), f"/pointgroup/{n}/input/points", 1)
            for n in names]
    period = 1.0 / RATE_HZ
    next_t = time.monotonic()
    try:
        while rclpy.ok():
            header = kit.make("std_msgs/msg/Header", stamp=node.get_clock().now().to_msg(),
                              frame_id="camera_link")
            msg = encode_cloud(kit, header, xyz, rgb, height=240)
            for pub in pubs:
                pub.publish(msg)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
    except KeyboardInterrupt:
        pass


def measure(count: int, seconds: float, cloud_path: Path) -> dict[str, Any]:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from pointgroup_ros.ros.kit import RclpyKit
    from pointgroup_ros.ros.node import PointGroupNode

    names = [f"cam{k}" for k in range(count)]
    rclpy.init()
    node = PointGroupNode(parameter_overrides=[Parameter("inputs", value=", ".join(names)),
                                               Parameter("device", value="cpu")])
    assert node.start(), "the node did not configure"
    listener = rclpy.create_node("bench_listener")
    kit = RclpyKit()
    counts = dict.fromkeys(names, 0)
    lock = threading.Lock()

    def counter(name: str) -> Any:
        def callback(msg: Any) -> None:
            with lock:
                counts[name] += 1
        return callback

    for name in names:
        listener.create_subscription(kit.cls("pointgroup_ros/msg/InstanceArray"), f"/pointgroup/{name}/instances",
                                     counter(name), 10)
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    publisher = subprocess.Popen([sys.executable, __file__, "--publish", *names, "--cloud", str(cloud_path)],
                                 env=os.environ.copy())
    try:
        time.sleep(WARMUP_S)
        with lock:
            start_counts = dict(counts)
        start_dropped = dict(node._mailbox.dropped)
        start_received = dict(node._mailbox.received)
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.monotonic()
        with lock:
            done = {n: counts[n] - start_counts[n] for n in names}
        dropped = {n: node._mailbox.dropped[n] - start_dropped[n] for n in names}
        received = {n: node._mailbox.received[n] - start_received[n] for n in names}
    finally:
        publisher.terminate()
        publisher.wait(10)
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
        rclpy.try_shutdown()
    wall = wall1 - wall0
    return {"inputs": count, "seconds": round(wall, 1),
            "published_hz": {n: round(done[n] / wall, 2) for n in names},
            "received_hz": {n: round(received[n] / wall, 1) for n in names},
            "dropped": dropped, "total_hz": round(sum(done.values()) / wall, 2),
            "cpu_cores": round((cpu1 - cpu0) / wall, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cloud", type=Path, default=DEFAULT_CLOUD)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--publish", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", "87")  # apart from the tests' domains
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    _join_generated_messages()
    if args.publish:
        publish(args.publish, args.cloud)
        return 0
    if not args.cloud.is_file():
        print(f"no capture at {args.cloud} (../shared/realdata): nothing measured", file=sys.stderr)
        return 2
    rows = []
    for count in args.inputs:
        print(f"{count} input(s) at {RATE_HZ:g} Hz each, {args.seconds:g} s ...", file=sys.stderr, flush=True)
        rows.append(measure(count, args.seconds, args.cloud))
    print("| inputs | frames published per input (Hz) | all inputs (Hz) | clouds received per input (Hz) | "
          "dropped per input | node CPU (cores) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['inputs']} | {', '.join(f'{v:.2f}' for v in row['published_hz'].values())} | "
              f"{row['total_hz']:.2f} | {', '.join(f'{v:.1f}' for v in row['received_hz'].values())} | "
              f"{', '.join(str(v) for v in row['dropped'].values())} | {row['cpu_cores']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
