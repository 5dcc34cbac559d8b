"""`pointgroup-ros demo` (`make demo`): the whole pipeline on what a robot gets, outputs in demo_out/.

It renders one frame of a held-out camera sequence (a depth camera on a robot in a generated room: an organized
PointCloud2 in the camera's optical frame, the robot's pose on /tf, the camera's mounting on /tf_static), writes
it as a rosbag2 bag, and runs the offline runner over it with --gravity-frame base_link (PointCloud2 decode ->
the z-up gravity frame -> PointGroup -> dual-set grouping -> ScoreNet -> NMS -> the node's four output topics):
  demo_out/instances.png     the camera's view: its colours beside the instances, pixel by pixel
  demo_out/pointgroup_bag/   an MCAP rosbag2 bag: the input cloud, /tf, /tf_static and /pointgroup/{labeled_points,
                             detections, markers, instances} (open it in Foxglove or `ros2 bag play`)
  demo_out/summary.json      the instances (class, score, point count), per-stage timings, and how well
                             they match the frame's ground truth

`pointgroup-ros demo --room` does the same for a whole generated room (z up, frame 'map'), seen from above.
`pointgroup-ros demo --sequence` runs a held-out camera sequence through the runner with --gravity-frame
base_link --track --tracking-frame odom, and writes
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

DEMO_SEED = 7  # a held-out room or camera sequence (seed ranges never seen in training)
DEMO_FRAME = 50  # which frame of the camera sequence the default demo shows (5 s into it: table, chairs, sofa)
INPUT_TOPIC = "/camera/points"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output folder (replaced if it exists)")
    p.add_argument("--weights", help="checkpoint (default: the shipped synthetic-data demo model)")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help="which held-out camera sequence (or room)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--sequence", action="store_true",
                      help="a held-out camera sequence, tracked, as an animated GIF (see above) instead of one frame")
    what.add_argument("--room", action="store_true", help="a whole held-out room (z up) instead of a camera frame")
    p.add_argument("--frame", type=int, default=DEMO_FRAME, help="which frame of the camera sequence to show")
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


def _pipeline(args: argparse.Namespace) -> "object":
    from ..config import load_config
    from ..pipeline import DEMO_WEIGHTS, Pipeline

    if args.weights is None and not DEMO_WEIGHTS.is_file():
        log.warning("the shipped demo model %s is missing: running with RANDOMLY INITIALISED weights, so the "
                    "instances below are meaningless", DEMO_WEIGHTS)
    # no --weights: the synthetic preset, which the shipped demo model fits
    return Pipeline(load_config("synthetic") if args.weights is None else None, args.weights, device=args.device)


def _fresh(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _summarize(args: argparse.Namespace, pipe: "object", scene: dict, result: "object", gt_scene: "object",
               topics: list[str], out: Path) -> int:
    """Write summary.json (instances, timings, ground-truth match) and print it for the user."""
    from ..evaluation.model_eval import label_ids_for, scene_gt_ids
    from ..evaluation.predictions import ScenePredictions
    from ..evaluation.scannet import evaluate_instances
    from ..pipeline import DEMO_WEIGHTS

    seg = result.seg  # type: ignore[attr-defined]
    label_of_class, eval_ids, eval_names = label_ids_for(pipe.cfg)  # type: ignore[attr-defined]
    figures = evaluate_instances([ScenePredictions.from_segmentation(seg, label_of_class)],
                                 [scene_gt_ids(gt_scene, label_of_class)], eval_ids, eval_names)
    names = seg.instance_class_names()
    timings = result.timings_ms  # type: ignore[attr-defined]
    summary = {
        "model": pipe.weights_description,  # type: ignore[attr-defined]
        "model_note": "synthetic-data demo model: knows only the classes below, trained on generated rooms and "
                      "camera views of them" if args.weights is None and DEMO_WEIGHTS.is_file() else None,
        "classes": list(pipe.class_names),  # type: ignore[attr-defined]
        "device": str(pipe.device),  # type: ignore[attr-defined]
        "scene": scene,
        "instances": [{"class": names[m], "score": round(float(seg.instance_score[m]), 4),
                       "points": int(seg.instance_offsets[m + 1] - seg.instance_offsets[m])}
                      for m in range(seg.num_instances)],
        "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        "ground_truth_match": {k: figures[k] for k in ("AP", "AP50", "AP25")},
        "outputs": {"png": "instances.png", "bag": "pointgroup_bag", "topics": topics},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    print(f"found {seg.num_instances} instances:")
    for inst in summary["instances"]:
        print(f"  {inst['class']:<10} score {inst['score']:.2f}  {inst['points']:>6} points")
    stages = [("decode", timings.get("decode", 0.0))]
    stages += [(k.split("/", 1)[1], v) for k, v in timings.items() if k.startswith("pipeline/")]
    stages += [("messages", sum(v for k, v in timings.items() if k.startswith("build/"))),
               ("total", timings.get("total", 0.0))]
    print("timings (ms): " + ", ".join(f"{name} {ms:.0f}" for name, ms in stages))
    ap50 = figures["AP50"]
    print(f"match with the ground truth: AP50 {ap50:.2f}" if ap50 is not None else "no ground truth")
    print(f"wrote {out}/instances.png, {out}/pointgroup_bag (MCAP), {out}/summary.json")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.sequence:
        return run_sequence(args)
    if args.room:
        return run_room(args)
    return run_camera_frame(args)


def run_camera_frame(args: argparse.Namespace) -> int:
    """The default demo: one frame of a held-out camera sequence, as a robot's bag holds it."""
    import dataclasses
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    from ..cloud_io import render_panels
    from ..data.camera import BASE_FRAME, CLOUD_TOPIC, OPTICAL_FRAME, generate_sequence, write_sequence_bag
    from ..ros.processing import OUTPUTS
    from .run import OUTPUT_NAMESPACE, process_bag

    if args.frame < 0:
        log.error("--frame must be >= 0, got %d", args.frame)
        return 2
    out = Path(args.out)
    pipe = _pipeline(args)
    seq = generate_sequence(args.seed, frames=args.frame + 1)
    seq = dataclasses.replace(seq, frames=seq.frames[-1:])  # a one-frame recording of that moment
    frame = seq.frames[0]
    print(f"input: frame {args.frame} of camera sequence {seq.name} (a held-out room), {seq.config.width}x"
          f"{seq.config.height} organized cloud in {OPTICAL_FRAME}, {int(frame.valid.sum())} valid points; "
          f"segmented in {BASE_FRAME} (z up) through /tf_static")
    print(f"model: {pipe.weights_description} on {pipe.device}; classes: {', '.join(pipe.class_names)}")  # type: ignore[attr-defined]
    _fresh(out)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_sequence_bag(seq, tmp)
        process_bag(paths.bag, out / "pointgroup_bag", pipe, progress=False, gravity_frame=BASE_FRAME,  # type: ignore[arg-type]
                    on_frame=lambda topic, stamp, result: frames.append(result))
    if not frames:
        log.error("the runner segmented no frame of the demo bag")
        return 1
    result = frames[0]
    panels = render_panels(result.cloud, result.seg.instance, view="grid")
    Image.fromarray(panels).resize((panels.shape[1] * 2, panels.shape[0] * 2), Image.NEAREST).save(
        out / "instances.png", format="PNG")
    objects = np.unique(frame.instance[frame.instance >= 0]).size
    scene = {"name": f"{seq.name} frame {args.frame}", "points": int(frame.valid.sum()), "objects": int(objects),
             "frame_id": OPTICAL_FRAME, "gravity_frame": BASE_FRAME}
    topics = [CLOUD_TOPIC, "/tf", "/tf_static"] + [f"{OUTPUT_NAMESPACE}/{name}" for name in OUTPUTS]
    return _summarize(args, pipe, scene, result, SimpleNamespace(semantic=frame.semantic, instance=frame.instance),
                      topics, out)


def run_room(args: argparse.Namespace) -> int:
    """--room: a whole held-out room, z up, as one cloud in frame 'map'."""
    from ..cloud_io import render_png
    from ..data.synthetic import generate_scene
    from ..ros.processing import OUTPUTS
    from ..training.sources import HELD_OUT_SEED_BASE
    from .run import OUTPUT_NAMESPACE, process_bag

    out = Path(args.out)
    pipe = _pipeline(args)
    scene = generate_scene(HELD_OUT_SEED_BASE + args.seed)
    print(f"scene: synthetic room {scene.name}, {scene.num_points} points, {scene.num_instances} objects "
          f"(a held-out room)")
    print(f"model: {pipe.weights_description} on {pipe.device}; classes: {', '.join(pipe.class_names)}")  # type: ignore[attr-defined]
    _fresh(out)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input_bag"
        _write_input_bag(src, scene)
        process_bag(src, out / "pointgroup_bag", pipe, progress=False,  # type: ignore[arg-type]
                    on_frame=lambda topic, stamp, result: frames.append(result))
    result = frames[0]
    render_png(out / "instances.png", result.cloud, result.seg.instance, view="oblique", size=720)
    info = {"name": scene.name, "points": scene.num_points, "objects": scene.num_instances, "frame_id": "map"}
    topics = [INPUT_TOPIC] + [f"{OUTPUT_NAMESPACE}/{name}" for name in OUTPUTS]
    return _summarize(args, pipe, info, result, scene, topics, out)


def run_sequence(args: argparse.Namespace) -> int:
    """The --sequence demo: a camera sequence through the runner with tracking, as a GIF."""
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from ..cloud_io import render_panels
    from ..data.camera import BASE_FRAME, ODOM_FRAME, generate_sequence, write_sequence_bag
    from .run import process_bag

    out = Path(args.out)
    pipe = _pipeline(args)
    with tqdm(total=args.frames, desc="rendering the camera sequence", unit="frame") as bar:
        seq = generate_sequence(args.seed, frames=args.frames, on_frame=lambda _: bar.update(1))
    print(f"sequence: {seq.name} (a held-out room), {args.frames} frames of {seq.config.width}x"
          f"{seq.config.height} at {seq.config.fps:g} Hz; model: {pipe.weights_description} on {pipe.device}")
    _fresh(out)
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
