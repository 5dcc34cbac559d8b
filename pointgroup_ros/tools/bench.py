"""`pointgroup-ros bench`: per-stage timing tables, beside the paper's Table 4 (Titan Xp, 133k points).

Sections (--stages): 'grouping' (grid + union on P and on Q, proposals, NMS, with the scipy baseline side
by side) and 'pipeline' (a whole frame as the node runs it: decode, voxelize, backbone and heads,
grouping, ScoreNet, NMS, results, message building, with peak memory). SECTIONS maps a name to a
function(args, scenes, device) -> list of table rows.

Scenes: synthetic indoor rooms (floor, walls and boxes sampled on their surfaces at about 2 cm spacing,
predicted classes with 2 % noise, offsets that pull object points most of the way to their centroids)
at the sizes of --sizes, plus the real ScanNet scans of --scannet (ground-truth classes and offsets
centroid - xyz scaled by 0.9) when given.

--tiled-scannet (instead of the sections): the real ScanNet scans laid side by side to about --tiled-points
(250k) points; cluster_points on P and Q against the plain scipy baseline at each radius of --tiled-radii
(2, 3 and 5 cm), run interleaved, as one Markdown table with the speed-ups.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# Paper Table 4 (Titan Xp, 4 ScanNet val scenes, 132,937 points on average), milliseconds.
PAPER_MS = {"ball query P": 38, "cluster P": 8, "ball query Q": 38, "cluster Q": 30, "ScoreNet": 95, "NMS": 41}
STUFF = (0, 1)
NUM_CLASSES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stages", default="grouping", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--sizes", default="50000,133000,250000", help="synthetic scene sizes (points)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="auto: the CPU, and the GPU too when CUDA and CuPy are there")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per stage (the median is shown)")
    parser.add_argument("--radius", type=float, default=0.03)
    parser.add_argument("--min-points", type=int, default=50)
    parser.add_argument("--no-baseline", action="store_true", help="skip the scipy cKDTree baseline")
    parser.add_argument("--weights", default=None, help="pipeline section: checkpoint (default: the demo model)")
    parser.add_argument("--config", default=None, help="pipeline section: preset or YAML (e.g. scannet for the "
                        "authors' full-size network; without --weights it is randomly initialised)")
    parser.add_argument("--scannet", type=Path, default=None,
                        help="folder with ScanNet <scene>_vert_all.npy / _sem_label_all.npy / _ins_label_all.npy")
    parser.add_argument("--tiled-scannet", nargs="?", const="", default=None, metavar="FOLDER",
                        help="instead of the sections: the real ScanNet scans of FOLDER (default: "
                             "$POINTGROUP_REALDATA/scannet or ../shared/realdata/scannet) tiled side by side to "
                             "about --tiled-points points; cluster_points on P and Q against the plain scipy "
                             "baseline at each of --tiled-radii, side by side in one run (skips with a message "
                             "when the folder is absent)")
    parser.add_argument("--tiled-points", type=int, default=250_000, help="--tiled-scannet: points to tile to")
    parser.add_argument("--tiled-radii", default="0.02,0.03,0.05", help="--tiled-scannet: radii in metres")
    parser.add_argument("--camera", type=Path, default=None,
                        help="pipeline section: an organized RGB-D capture (.pcd), resampled to 848x480 like a "
                             "RealSense frame, segmented with and without voxel downsampling")


@dataclass
class Scene:
    name: str
    xyz: Any  # float32 (N, 3)
    semantic: Any  # int64 (N,) class 0..19 (0, 1 = stuff)
    offsets: Any  # float32 (N, 3)


def synthetic_scene(n_points: int, seed: int = 0, spacing: float = 0.02) -> Scene:
    """An indoor-like room of about n_points surface samples; see the module docstring."""
    import numpy as np

    rng = np.random.default_rng(seed)
    density, height = 1.0 / spacing ** 2, 2.8
    # side s with floor s^2 + walls 4 s h + box surfaces ~0.6 s^2 = n / density
    side = (-4 * height + np.sqrt(16 * height ** 2 + 6.4 * n_points / density)) / 3.2
    faces: list[tuple[Any, ...]] = [((0, 0, 0), (side, 0, 0), (0, side, 0), 1, -1)]  # origin, u, v, class, instance
    for origin, u in (((0, 0, 0), (side, 0, 0)), ((0, 0, 0), (0, side, 0)), ((side, 0, 0), (0, side, 0)),
                      ((0, side, 0), (side, 0, 0))):
        faces.append((origin, u, (0, 0, height), 0, -1))
    area, instance = 0.0, 0
    while area < 0.6 * side * side:
        biggest = np.minimum([1.8, 1.8, 1.5], 0.5 * side)  # (small rooms for small point counts)
        x, y, z = rng.uniform(0.2 * biggest, biggest)
        ox, oy = rng.uniform(0.0, side - np.array([x, y]))
        cls = int(rng.integers(2, NUM_CLASSES))
        for o, u, v in (((0, 0, z), (x, 0, 0), (0, y, 0)), ((0, 0, 0), (x, 0, 0), (0, 0, z)),
                        ((0, y, 0), (x, 0, 0), (0, 0, z)), ((0, 0, 0), (0, y, 0), (0, 0, z)),
                        ((x, 0, 0), (0, y, 0), (0, 0, z))):
            faces.append(((ox + o[0], oy + o[1], o[2]), u, v, cls, instance))
        area += x * y + 2 * (x + y) * z
        instance += 1
    corner, edge_u, edge_v = (np.array([f[i] for f in faces], dtype=np.float64) for i in range(3))
    face_area = np.linalg.norm(np.cross(edge_u, edge_v), axis=1)
    counts = rng.multinomial(n_points, face_area / face_area.sum())
    face = np.repeat(np.arange(len(faces)), counts)
    a, b = rng.random((2, n_points, 1))
    xyz = corner[face] + a * edge_u[face] + b * edge_v[face] + rng.normal(0, 0.002, (n_points, 3))
    xyz -= xyz.mean(axis=0)
    semantic = np.array([f[3] for f in faces])[face]
    inst = np.array([f[4] for f in faces])[face]
    perm = rng.permutation(n_points)
    xyz, semantic, inst = xyz[perm], semantic[perm], inst[perm]
    offsets = np.zeros_like(xyz)
    has = inst >= 0
    centroid = np.stack([np.bincount(inst[has], weights=xyz[has, k]) for k in range(3)], 1) / np.bincount(inst[has])[:, None]
    offsets[has] = 0.9 * (centroid[inst[has]] - xyz[has]) + rng.normal(0, 0.01, (has.sum(), 3))
    noisy = rng.random(n_points) < 0.02
    semantic[noisy] = rng.integers(0, NUM_CLASSES, noisy.sum())
    return Scene(f"synthetic {n_points // 1000}k", xyz.astype(np.float32), semantic.astype(np.int64),
                 offsets.astype(np.float32))


def scannet_scenes(folder: Path) -> list[Scene]:
    import numpy as np

    nyu_to_20 = np.full(41, -100, dtype=np.int64)
    nyu_to_20[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]] = np.arange(20)
    scenes = []
    for vert_file in sorted(folder.glob("*_vert_all.npy")):
        name = vert_file.name[: -len("_vert_all.npy")]
        xyz = np.load(vert_file, allow_pickle=False)[:, :3].astype(np.float32)
        sem = nyu_to_20[np.clip(np.load(folder / f"{name}_sem_label_all.npy", allow_pickle=False), 0, 40)]
        ins = np.load(folder / f"{name}_ins_label_all.npy", allow_pickle=False).astype(np.int64)
        offsets = np.zeros_like(xyz)
        has = ins > 0
        count = np.maximum(np.bincount(ins[has]), 1).astype(np.float64)
        centroid = np.stack([np.bincount(ins[has], weights=xyz[has, k], minlength=len(count)) / count
                             for k in range(3)], 1)
        offsets[has] = 0.9 * (centroid[ins[has]] - xyz[has])
        scenes.append(Scene(f"ScanNet {name}", xyz, np.where(sem < 0, 0, sem), offsets))  # unannotated -> stuff
    return scenes


def _median_ms(runs: dict[str, tuple[Callable[[], Any], int]], sync: Callable[[], None],
               warm_up: tuple[str, ...] = ()) -> dict[str, float]:
    """Median time in ms of each named function, runs interleaved (so load on the machine hits all alike)."""
    for name in warm_up:  # kernel compilation, caches
        runs[name][0]()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(max(count for _, count in runs.values())):
        for name, (fn, count) in runs.items():
            if i < count:
                sync()
                start = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * sorted(t)[len(t) // 2] for name, t in times.items()}


def scipy_baseline(xyz: Any, labels: Any, radius: float, min_points: int, ignore: tuple[int, ...],
                   drop_ignored_first: bool = False) -> Any:
    """What a user would write: cKDTree(coords).query_pairs, same-label (and not ignored) filter, csgraph
    connected components. drop_ignored_first: build the tree on the points to group only (a stronger
    baseline when many points are ignored)."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    idx = np.flatnonzero(~np.isin(labels, ignore)) if drop_ignored_first else np.arange(len(xyz))
    lab = labels[idx]
    pairs = cKDTree(xyz[idx]).query_pairs(radius, output_type="ndarray")
    keep = lab[pairs[:, 0]] == lab[pairs[:, 1]]
    if not drop_ignored_first:
        keep &= ~np.isin(lab[pairs[:, 0]], ignore)
    pairs = pairs[keep]
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(idx), len(idx)))
    _, comp = connected_components(graph, directed=False)
    keep_point = (np.bincount(comp)[comp] >= min_points) & ~np.isin(lab, ignore)
    out = np.full(len(xyz), -1)
    out[idx[keep_point]] = comp[keep_point]  # not renumbered: timing only
    return out


def grouping_section(args: argparse.Namespace, scenes: list[Scene], device: str) -> list[dict[str, Any]]:
    import torch

    from pointgroup_ros.clustering import cluster_points, dual_set_proposals, nms

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for scene in scenes:
        q = scene.xyz + scene.offsets
        if device == "cuda":
            import cupy  # noqa: F401  (fail early with the clear message of the GPU path if missing)
        xyz_t = torch.from_numpy(scene.xyz).to(device)
        off_t = torch.from_numpy(scene.offsets).to(device)
        q_t = torch.from_numpy(q).to(device)
        sem_t = torch.from_numpy(scene.semantic).to(device)
        r, mp = args.radius, args.min_points
        row: dict[str, Any] = {"scene": scene.name, "points": len(scene.xyz), "device": device}
        proposals = dual_set_proposals(xyz_t, off_t, sem_t, STUFF, r, mp)
        scores = torch.rand(proposals.num_proposals, generator=torch.Generator().manual_seed(0)).to(device)
        n = args.repeat
        runs = {"group P": (lambda: cluster_points(xyz_t, sem_t, r, mp, STUFF), n),
                "group Q": (lambda: cluster_points(q_t, sem_t, r, mp, STUFF), n),
                "proposals P+Q": (lambda: dual_set_proposals(xyz_t, off_t, sem_t, STUFF, r, mp), n),
                "NMS": (lambda: nms(proposals, scores), n)}
        if not args.no_baseline and device == "cpu":
            runs["scipy P"] = (lambda: scipy_baseline(scene.xyz, scene.semantic, r, mp, STUFF), n)
            runs["scipy Q"] = (lambda: scipy_baseline(q, scene.semantic, r, mp, STUFF), min(n, 3))
            runs["scipy' P"] = (lambda: scipy_baseline(scene.xyz, scene.semantic, r, mp, STUFF, True), n)
            runs["scipy' Q"] = (lambda: scipy_baseline(q, scene.semantic, r, mp, STUFF, True), min(n, 3))
        row.update(_median_ms(runs, sync, warm_up=("group P", "group Q", "proposals P+Q", "NMS")))
        row["proposals"] = proposals.num_proposals
        if "scipy P" in row:
            row["x P"] = f"{row['scipy P'] / row['group P']:.1f}x"
            row["x Q"] = f"{row['scipy Q'] / row['group Q']:.1f}x"
            row["x P+Q"] = f"{(row['scipy P'] + row['scipy Q']) / row['proposals P+Q']:.1f}x"
            strong_p, strong_q = row["scipy' P"], row["scipy' Q"]
            row["x' P"] = f"{strong_p / row['group P']:.1f}x"
            row["x' Q"] = f"{strong_q / row['group Q']:.1f}x"
        rows.append(row)
    return rows


def default_scannet_folder() -> Path:
    """$POINTGROUP_REALDATA/scannet, else ../shared/realdata/scannet (from here, then from the repository)."""
    import os

    if os.environ.get("POINTGROUP_REALDATA"):
        return Path(os.environ["POINTGROUP_REALDATA"]) / "scannet"
    relative = Path("..") / "shared" / "realdata" / "scannet"
    if relative.is_dir():
        return relative
    return Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "scannet"


def tiled_scannet(folder: Path, n_points: int, gap: float = 1.0) -> Scene | None:
    """The scans of `folder` (scannet_scenes: ground-truth classes, offsets 0.9 x (instance centroid - xyz)),
    whole scans laid side by side along x with `gap` metres between them, cycling through the scans while
    that brings the total closer to n_points. None when the folder holds no scan."""
    import numpy as np

    scans = scannet_scenes(folder) if folder.is_dir() else []
    if not scans:
        return None
    xyz: list[Any] = []
    semantic: list[Any] = []
    offsets: list[Any] = []
    total, shift, k = 0, 0.0, 0
    while not xyz or abs(total + len(scans[k % len(scans)].xyz) - n_points) < abs(total - n_points):
        scan = scans[k % len(scans)]
        k += 1
        pts = scan.xyz - scan.xyz.min(axis=0)
        pts[:, 0] += shift
        shift = float(pts[:, 0].max()) + gap
        xyz.append(pts)
        semantic.append(scan.semantic)
        offsets.append(scan.offsets)
        total += len(pts)
    return Scene(f"ScanNet x{k} tiled", np.concatenate(xyz).astype(np.float32), np.concatenate(semantic),
                 np.concatenate(offsets).astype(np.float32))


def tiled_scannet_rows(args: argparse.Namespace, scene: Scene) -> list[dict[str, Any]]:
    """cluster_points (numpy, CPU) on P = xyz and Q = xyz + offsets against the plain scipy baseline, per radius;
    the four runs of a radius interleaved (_median_ms), so load on the machine hits them alike."""
    import numpy as np

    from pointgroup_ros.clustering import cluster_points

    p, q, sem, mp = scene.xyz, scene.xyz + scene.offsets, scene.semantic, args.min_points
    grouped = int((~np.isin(sem, STUFF)).sum())
    rows = []
    for r in (float(v) for v in args.tiled_radii.split(",") if v.strip()):
        n = args.repeat
        runs = {"ours P": (lambda: cluster_points(p, sem, r, mp, STUFF), n),
                "ours Q": (lambda: cluster_points(q, sem, r, mp, STUFF), n)}
        if not args.no_baseline:
            runs.update({"scipy P": (lambda: scipy_baseline(p, sem, r, mp, STUFF), n),
                         "scipy Q": (lambda: scipy_baseline(q, sem, r, mp, STUFF), min(n, 3))})
        ms = _median_ms(runs, lambda: None, warm_up=("ours P", "ours Q"))
        for name, coords in (("P", p), ("Q", q)):
            ours, base = ms[f"ours {name}"], ms.get(f"scipy {name}")
            clusters = int(cluster_points(coords, sem, r, mp, STUFF).max()) + 1
            rows.append({"radius m": f"{r:g}", "set": name, "points": len(p), "grouped": grouped,
                         "clusters": clusters, "ours ms": ours, "scipy ms": base,
                         "speed-up": None if base is None else f"{base / ours:.2f}x"})
    return rows


def run_tiled_scannet(args: argparse.Namespace) -> int:
    import os
    import platform

    import numpy as np
    import scipy

    folder = Path(args.tiled_scannet) if args.tiled_scannet else default_scannet_folder()
    scene = tiled_scannet(folder, args.tiled_points)
    if scene is None:
        print(f"--tiled-scannet: skipped, no ScanNet scans (<scene>_vert_all.npy, _sem_label_all.npy, "
              f"_ins_label_all.npy) in {folder} (absent or empty; give the folder, or set POINTGROUP_REALDATA)")
        return 0
    print(f"{scene.name}: {len(scene.xyz)} points from {folder}; classes 0, 1 (wall, floor; unannotated -> 0) "
          f"not grouped; min points {args.min_points}; medians of {args.repeat} interleaved runs (scipy Q: "
          f"{min(args.repeat, 3)}); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; numpy {np.__version__}, "
          f"scipy {scipy.__version__}")
    print("ours = cluster_points on numpy arrays (CPU); scipy = cKDTree(coords).query_pairs(r) + same-label, "
          "not-ignored filter + csgraph.connected_components (the plain baseline, tree on all points)\n")
    _print_table(tiled_scannet_rows(args, scene))
    return 0


def tiled_rooms(n_points: int, seed: int = 0) -> tuple[Any, Any]:
    """Synthetic rooms (data.synthetic) side by side until about n_points: (xyz float32, rgb uint8)."""
    import numpy as np

    from pointgroup_ros.data.synthetic import generate_scene

    xyz, rgb, total, shift, k = [], [], 0, 0.0, 0
    while total < n_points:
        room = generate_scene(seed + k)
        k += 1
        pts = room.xyz - room.xyz.min(axis=0)
        pts[:, 0] += shift
        shift = float(pts[:, 0].max()) + 0.5
        xyz.append(pts)
        rgb.append(np.clip(room.rgb, 0, 255).astype(np.uint8))
        total += len(pts)
    return np.concatenate(xyz)[:n_points].astype(np.float32), np.concatenate(rgb)[:n_points]


def camera_frame(path: Path, height: int = 480, width: int = 848) -> Any:
    """An organized capture resampled to height x width by bilinear interpolation in the image, as a denser
    camera would see the same scene (a pixel stays NaN unless its four source pixels are all valid)."""
    import numpy as np

    from pointgroup_ros.cloud_io import make_cloud, read_cloud

    cloud = read_cloud(path)
    if cloud.height <= 1:
        raise ValueError(f"{path}: not an organized cloud (height {cloud.height})")
    grid = cloud.xyz.reshape(cloud.height, cloud.width, 3).astype(np.float64)
    colour = (cloud.rgb if cloud.rgb is not None else np.full((cloud.num_points, 3), 128, np.uint8))
    colour = colour.reshape(cloud.height, cloud.width, 3).astype(np.float64)
    v = np.linspace(0, cloud.height - 1, height)
    u = np.linspace(0, cloud.width - 1, width)
    v0, u0 = np.minimum(v.astype(int), cloud.height - 2), np.minimum(u.astype(int), cloud.width - 2)
    fv, fu = (v - v0)[:, None, None], (u - u0)[None, :, None]

    def lerp(img: Any) -> Any:
        a, b = img[v0][:, u0], img[v0][:, u0 + 1]
        c, d = img[v0 + 1][:, u0], img[v0 + 1][:, u0 + 1]
        return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv

    xyz = lerp(grid).reshape(-1, 3)  # NaN wherever a source pixel is NaN
    rgb = np.nan_to_num(lerp(colour).reshape(-1, 3), nan=0.0).clip(0, 255).astype(np.uint8)
    return make_cloud(xyz, rgb, height=height, width=width)


def frame_processor(config: str | None, weights: str | None, device: str) -> tuple[Any, Any, Any]:
    """The node's frame path without ROS: (Pipeline, FrameProcessor with a rosbags message kit, a Header in
    'map') for timing whole frames, PointCloud2 in, the four output messages out. No cap on the frame size."""
    from pointgroup_ros.config import load_config
    from pointgroup_ros.pipeline import Pipeline
    from pointgroup_ros.ros.kit import RosbagsKit
    from pointgroup_ros.ros.processing import FrameProcessor
    from pointgroup_ros.ros.typestore import make_typestore

    pipe = Pipeline(load_config(config) if config else None, weights, device=device, max_points=10_000_000)
    kit = RosbagsKit(make_typestore("humble"))
    return pipe, FrameProcessor(pipe, kit), kit.make("std_msgs/msg/Header", frame_id="map")


def time_frame(processor: Any, msg: Any, repeat: int, preprocess: Any = None, warmup: int = 1) -> tuple[
        list[Any], dict[str, float]]:
    """`warmup` untimed runs (allocator, kernels, spconv's tuning), then `repeat` timed ones of one PointCloud2
    through `processor`. Returns (the timed results, the median of each stage in ms, keyed as the processor
    reports them). On CUDA the peak-memory counters are reset before the timed runs, so they read this frame's."""
    import statistics

    import torch

    device = processor.pipeline.device
    cuda = device.type == "cuda"
    for _ in range(warmup):
        processor.process(msg, preprocess=preprocess)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    runs = [processor.process(msg, preprocess=preprocess) for _ in range(repeat)]
    if cuda:
        torch.cuda.synchronize(device)
    medians = {k: statistics.median(r.timings_ms.get(k, 0.0) for r in runs) for k in runs[0].timings_ms}
    return runs, medians


def pipeline_section(args: argparse.Namespace, scenes: list[Scene], device: str) -> list[dict[str, Any]]:
    """The whole frame as the node runs it: PointCloud2 decode, the pipeline's stages, message building."""
    import resource

    import numpy as np
    import torch

    from pointgroup_ros.config import PreprocessConfig
    from pointgroup_ros.ros.cloud import encode_cloud

    pipe, processor, header = frame_processor(args.config, args.weights, device)
    kit = processor.kit
    print(f"model: {pipe.weights_description}, {sum(p.numel() for p in pipe.model.parameters()):,} parameters")
    inputs = [(f"rooms {n // 1000}k", *tiled_rooms(n)) for n in (int(s) for s in args.sizes.split(",") if s.strip())]
    if args.scannet is not None:
        for path in sorted(Path(args.scannet).glob("*_vert_all.npy")):
            vert = np.load(path, allow_pickle=False)
            inputs.append((f"ScanNet {path.name[:12]}", vert[:, :3].astype(np.float32),
                           np.clip(vert[:, 3:6], 0, 255).astype(np.uint8)))
    cases: list[tuple[str, Any, PreprocessConfig | None]] = [
        (name, encode_cloud(kit, header, xyz, rgb), None) for name, xyz, rgb in inputs]
    if args.camera is not None:
        frame = camera_frame(args.camera)
        msg = encode_cloud(kit, header, frame.xyz, frame.rgb, height=frame.height)
        raw = PreprocessConfig(voxel_size=0.0)
        cases += [(f"camera 848x480 {args.camera.stem}", msg, None), ("  same, no downsampling", msg, raw)]
    rows = []
    for name, msg, preprocess in cases:
        runs, medians = time_frame(processor, msg, args.repeat, preprocess)
        cloud = runs[0].cloud
        row: dict[str, Any] = {"scene": name, "points": int(cloud.valid.sum()) if cloud.valid is not None
                               else cloud.num_points, "network points": runs[0].seg.network_points,
                               "device": device}
        row.update({k.split("/")[-1] if k.startswith("pipeline/") else k: v
                    for k, v in medians.items() if k != "pipeline"})
        row["instances"] = runs[-1].seg.num_instances
        if device == "cuda":
            row["peak GPU MB"] = torch.cuda.max_memory_allocated() / 2**20
        else:
            row["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(row)
    return rows


SECTIONS: dict[str, Callable[[argparse.Namespace, list[Scene], str], list[dict[str, Any]]]] = {
    "grouping": grouping_section,
    "pipeline": pipeline_section,
}


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]

    def cell(v: Any) -> str:
        return f"{v:.1f}" if isinstance(v, float) else ("-" if v is None else str(v))

    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row.get(c)) for c in columns) + " |")


def run(args: argparse.Namespace) -> int:
    if args.tiled_scannet is not None:
        return run_tiled_scannet(args)
    import torch

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in SECTIONS]
    if unknown:
        print(f"unknown --stages {unknown}; known: {', '.join(SECTIONS)}")
        return 2
    devices = ["cpu"]
    has_cuda = torch.cuda.is_available()
    if args.device == "cuda" and not has_cuda:
        print("--device cuda: no CUDA device is visible to torch")
        return 2
    if args.device == "cuda":
        devices = ["cuda"]
    elif args.device == "auto" and has_cuda:
        devices.append("cuda")
    scenes = [synthetic_scene(int(s)) for s in args.sizes.split(",") if s.strip()]
    if args.scannet is not None:
        scenes += scannet_scenes(args.scannet)
    if "grouping" in stages:
        print("columns: group P / group Q = cluster_points on one set; proposals P+Q = dual_set_proposals (both "
              "sets and the CSR proposals); scipy = cKDTree(coords).query_pairs + same-label filter + "
              "connected_components (the issue's baseline); scipy' = the same with the tree built on non-stuff "
              "points only; x = speed-up")
    print("paper Table 4 (Titan Xp, 133k points), ms: " + ", ".join(f"{k} {v}" for k, v in PAPER_MS.items())
          + f"; grouping total {sum(PAPER_MS[k] for k in ('ball query P', 'cluster P', 'ball query Q', 'cluster Q'))}"
          + "; backbone + heads 243; total 491")
    print(f"radius {args.radius} m, min points {args.min_points}; times are medians of {args.repeat} runs in ms")
    for stage in stages:
        for device in devices:
            name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
            print(f"\n## {stage} on {device} ({name})\n")
            _print_table(SECTIONS[stage](args, scenes, device))
    return 0
