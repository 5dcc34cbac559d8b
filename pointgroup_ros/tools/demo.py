"""`pointgroup-ros demo` (`make demo`): the whole pipeline on a generated room, outputs in demo_out/.

It builds a held-out synthetic room, wraps it in a one-frame rosbag2 bag as a camera would publish it,
runs the offline runner over it (PointCloud2 decode -> PointGroup -> dual-set grouping -> ScoreNet -> NMS
-> the node's four output topics) and writes:
  demo_out/instances.png     the input colours beside the instances
  demo_out/pointgroup_bag/   an MCAP rosbag2 bag: the input cloud plus /pointgroup/{labeled_points,
                             detections, markers, instances} (open it in Foxglove or `ros2 bag play`)
  demo_out/summary.json      the instances (class, score, point count), per-stage timings, and how well
                             they match the room's ground truth

`pointgroup-ros demo --sequence` shows what a robot gets instead: a held-out camera sequence (a depth camera on
a robot driving through a room, in its optical frame, poses on /tf and /tf_static) run through the runner with
--gravity-frame base_link --track --tracking-frame odom, and writes
  demo_out/sequence.gif      the camera's view beside the tracked instances, each in its track's colour
  demo_out/sequence_bag/     the input topics plus the four outputs, ids = track ids
  demo_out/sequence.json     per frame the published track ids, and the timings
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("pointgroup_ros.demo")

DEMO_SEED = 7  # a held-out room (offset by HELD_OUT_SEED_BASE): never seen in training
INPUT_TOPIC = "/camera/points"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output folder (replaced if it exists)")
    p.add_argument("--weights", help="checkpoint (default: the shipped synthetic-data demo model)")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help="which held-out synthetic room")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--sequence", action="store_true",
                   help="a held-out camera sequence, tracked, as an animated GIF (see above) instead of a room")
    p.add_argument("--frames", type=int, default=40, help="with --sequence: frames of the sequence (10 Hz)")


def _write_input_bag(path: Path, scene: "object") -> None:
    """One PointCloud2 (x y z rgb, frame 'map') of the room in a rosbag2 bag, as a camera driver would."""
    import numpy as np
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ..ros.cloud import encode_cloud
    from ..ros.kit import RosbagsKit
    from ..ros.typestore import make_typestore

    store = make_typestore("humble")
    kit = RosbagsKit(store)
    stamp_ns = 1_700_000_000_000_000_000
    header = kit.make("std_msgs/msg/Header", stamp=kit.make("builtin_interfaces/msg/Time", sec=stamp_ns // 10**9,
                                                           nanosec=0), frame_id="map")
    msg = encode_cloud(kit, header, scene.xyz, np.clip(scene.rgb, 0, 255).astype(np.uint8))  # type: ignore[attr-defined]
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(INPUT_TOPIC, "sensor_msgs/msg/PointCloud2", typestore=store)
        writer.write(conn, stamp_ns, store.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2"))


def run(args: argparse.Namespace) -> int:
    from ..cloud_io import render_png
    from ..config import load_config
    from ..data.synthetic import generate_scene
    from ..evaluation.model_eval import label_ids_for, scene_gt_ids
    from ..evaluation.predictions import ScenePredictions
    from ..evaluation.scannet import evaluate_instances
    from ..pipeline import DEMO_WEIGHTS, Pipeline
    from ..training.sources import HELD_OUT_SEED_BASE
    from .run import process_bag

    out = Path(args.out)
    if args.sequence:
        return run_sequence(args)
    if args.weights is None and not DEMO_WEIGHTS.is_file():
        log.warning("the shipped demo model %s is missing: running with RANDOMLY INITIALISED weights, so the "
                    "instances below are meaningless", DEMO_WEIGHTS)
    # no --weights: the synthetic preset, which the shipped demo model fits
    pipe = Pipeline(load_config("synthetic") if args.weights is None else None, args.weights, device=args.device)
    scene = generate_scene(HELD_OUT_SEED_BASE + args.seed)
    print(f"scene: synthetic room {scene.name}, {scene.num_points} points, {scene.num_instances} objects "
          f"(a held-out room)")
    print(f"model: {pipe.weights_description} on {pipe.device}; classes: {', '.join(pipe.class_names)}")

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input_bag"
        _write_input_bag(src, scene)
        process_bag(src, out / "pointgroup_bag", pipe, progress=False,
                    on_frame=lambda topic, stamp, result: frames.append(result))
    result = frames[0]
    seg = result.seg
    render_png(out / "instances.png", result.cloud, seg.instance, view="oblique", size=720)

    label_of_class, eval_ids, eval_names = label_ids_for(pipe.cfg)
    figures = evaluate_instances([ScenePredictions.from_segmentation(seg, label_of_class)],
                                 [scene_gt_ids(scene, label_of_class)], eval_ids, eval_names)
    names = seg.instance_class_names()
    summary = {
        "model": pipe.weights_description,
        "model_note": "synthetic-data demo model: knows only the classes below, trained on generated rooms"
                      if args.weights is None and DEMO_WEIGHTS.is_file() else None,
        "classes": list(pipe.class_names),
        "device": str(pipe.device),
        "scene": {"name": scene.name, "points": scene.num_points, "objects": scene.num_instances},
        "instances": [{"class": names[m], "score": round(float(seg.instance_score[m]), 4),
                       "points": int(seg.instance_offsets[m + 1] - seg.instance_offsets[m])}
                      for m in range(seg.num_instances)],
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        "ground_truth_match": {k: figures[k] for k in ("AP", "AP50", "AP25")},
        "outputs": {"png": "instances.png", "bag": "pointgroup_bag", "topics": [
            INPUT_TOPIC, "/pointgroup/labeled_points", "/pointgroup/detections", "/pointgroup/markers",
            "/pointgroup/instances"]},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    print(f"found {seg.num_instances} instances:")
    for inst in summary["instances"]:
        print(f"  {inst['class']:<10} score {inst['score']:.2f}  {inst['points']:>6} points")
    t = result.timings_ms
    stages = [("decode", t.get("decode", 0.0))]
    stages += [(k.split("/", 1)[1], v) for k, v in t.items() if k.startswith("pipeline/")]
    stages += [("messages", sum(v for k, v in t.items() if k.startswith("build/"))), ("total", t.get("total", 0.0))]
    print("timings (ms): " + ", ".join(f"{name} {ms:.0f}" for name, ms in stages))
    ap50 = figures["AP50"]
    print(f"match with the room's ground truth: AP50 {ap50:.2f}" if ap50 is not None else "no ground truth")
    print(f"wrote {out}/instances.png, {out}/pointgroup_bag (MCAP), {out}/summary.json")
    return 0


def run_sequence(args: argparse.Namespace) -> int:
    """The --sequence demo: a camera sequence through the runner with tracking, as a GIF."""
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from ..cloud_io import render_panels
    from ..config import load_config
    from ..data.camera import BASE_FRAME, ODOM_FRAME, generate_sequence, write_sequence_bag
    from ..pipeline import Pipeline
    from .run import process_bag

    out = Path(args.out)
    pipe = Pipeline(load_config("synthetic") if args.weights is None else None, args.weights, device=args.device)
    with tqdm(total=args.frames, desc="rendering the camera sequence", unit="frame") as bar:
        seq = generate_sequence(args.seed, frames=args.frames, on_frame=lambda _: bar.update(1))
    print(f"sequence: {seq.name} (a held-out room), {args.frames} frames of {seq.config.width}x"
          f"{seq.config.height} at {seq.config.fps:g} Hz; model: {pipe.weights_description} on {pipe.device}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pictures, frames = [], []

    def on_frame(topic: str, stamp: int, result: "object") -> None:
        ids = result.published.point_ids(result.seg.instance)  # type: ignore[attr-defined]
        pictures.append(Image.fromarray(render_panels(result.cloud, ids, view="grid")))  # type: ignore[attr-defined]
        frames.append({"stamp_ns": int(stamp), "track_ids": sorted(int(i) for i in np.unique(ids[ids >= 0])),
                       "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}})  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_sequence_bag(seq, tmp)
        summary = process_bag(paths.bag, out / "sequence_bag", pipe, progress=True, on_frame=on_frame,
                              gravity_frame=BASE_FRAME, tracking_frame=ODOM_FRAME)
    pictures[0].save(out / "sequence.gif", save_all=True, append_images=pictures[1:], duration=int(1000 / seq.config.fps),
                     loop=0)
    tracks = sorted({i for f in frames for i in f["track_ids"]})
    (out / "sequence.json").write_text(json.dumps({"sequence": seq.name, "model": pipe.weights_description,
                                                   "tracks": tracks, "frames": frames}, indent=2))
    print(f"{summary.frames} frames segmented and tracked; track ids seen: {', '.join(map(str, tracks)) or 'none'}")
    print(f"wrote {out}/sequence.gif, {out}/sequence_bag (MCAP), {out}/sequence.json")
    return 0
