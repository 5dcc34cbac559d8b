"""`pointgroup-ros prepare {scannet,s3dis,synthetic,camera}`: write training scenes as .npz files (see
data/scene.py), or camera sequences as rosbag2 bags with their ground truth (data/camera.py).

  prepare scannet --src scans/ --labels scannetv2-labels.combined.tsv --out data/scannet/train
      raw ScanNet v2 scenes (one folder per scene, or all files in one folder); also writes the benchmark's
      ground truth to OUT/gt/<scene>.txt. --src may also be a folder of <scene>_vert_all.npy files.
  prepare scannet --src scans_test/ --out data/scannet/test --test-split      (meshes only, no labels)
  prepare s3dis --src Stanford3dDataset_v1.2_Aligned_Version --out data/s3dis --areas 1 2 3 4 6
  prepare synthetic --out data/synthetic/train --num-scenes 64 --seed 0
  prepare camera --out data/sequences --seed 0 --count 3 --frames 60
      OUT/sequence_<seed>/ (MCAP bag: /camera/depth/points, /tf, /tf_static) and
      OUT/sequence_<seed>.groundtruth.npz for seeds SEED..SEED+COUNT-1 (docs/CAMERA_SEQUENCES.md)
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=("scannet", "s3dis", "synthetic", "camera"),
                        help="which source to prepare (camera: RGB-D-like sequences of synthetic rooms as bags)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder for <scene>.npz files (camera: sequence bags and ground truth)")
    parser.add_argument("--src", type=Path, help="raw dataset folder (scannet, s3dis)")
    parser.add_argument("--labels", type=Path,
                        help="scannet: scannetv2-labels.combined.tsv (default: looked up in SRC and its parent)")
    parser.add_argument("--test-split", action="store_true", help="scannet: unlabelled scenes (meshes only)")
    parser.add_argument("--no-gt", action="store_true", help="scannet: do not write OUT/gt/<scene>.txt")
    parser.add_argument("--areas", type=int, nargs="+", help="s3dis: only these area numbers")
    parser.add_argument("--scenes", nargs="+",
                        help="only these scene / room names (e.g. scene0000_00, Area_1_office_1)")
    parser.add_argument("--num-scenes", type=int, default=16, help="synthetic: number of scenes (default 16)")
    parser.add_argument("--seed", type=int, default=0,
                        help="synthetic: first seed, scene i uses seed + i; camera: first sequence seed (its room "
                             "is the synthetic room SEQUENCE_SEED_BASE + seed, 3,000,000 + seed)")
    parser.add_argument("--count", type=int, default=1, help="camera: number of sequences (default 1)")
    parser.add_argument("--frames", type=int, default=60, help="camera: frames per sequence (default 60, 10 Hz)")
    parser.add_argument("--unorganized", action="store_true",
                        help="camera: clouds of the valid points only (default: height x width with NaN holes)")
    parser.add_argument("--compress", action="store_true", help="camera: zstd-compressed MCAP chunks")
    parser.add_argument("--skip-existing", action="store_true",
                        help="keep .npz files (camera: sequences) that already exist")


def _label_map_path(args: argparse.Namespace) -> Path:
    if args.labels is not None:
        return args.labels
    name = "scannetv2-labels.combined.tsv"
    for folder in (args.src, args.src.parent):
        if (folder / name).is_file():
            return folder / name
    from ..data.scene import DataError
    raise DataError(f"{name} not found in {args.src} or {args.src.parent}; pass --labels PATH")


def _jobs(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(scene name, loader argument) for each scene to write."""
    from ..data.scene import DataError
    if args.dataset == "synthetic":
        if args.num_scenes < 1 or args.seed < 0:
            raise DataError(f"--num-scenes must be >= 1 and --seed >= 0, got {args.num_scenes} and {args.seed}")
        return [(f"synthetic_{s:06d}", s) for s in range(args.seed, args.seed + args.num_scenes)]
    if args.src is None:
        raise DataError(f"prepare {args.dataset} needs --src (the raw dataset folder)")
    if not args.src.is_dir():
        raise DataError(f"{args.src}: no such folder")
    if args.dataset == "scannet":
        from ..data.scannet import MESH_SUFFIX, find_scannet_meshes, find_scannet_npy
        meshes = find_scannet_meshes(args.src)
        if meshes:
            jobs: list[tuple[str, object]] = [(m.name[:-len(MESH_SUFFIX)], m) for m in meshes]
        else:
            jobs = [(n, n) for n in find_scannet_npy(args.src)]
        if not jobs:
            raise DataError(f"{args.src}: no ScanNet scenes (*{MESH_SUFFIX} or *_vert_all.npy)")
    else:
        from ..data.s3dis import find_s3dis_rooms
        rooms = find_s3dis_rooms(args.src, args.areas)
        if not rooms:
            raise DataError(f"{args.src}: no S3DIS rooms (Area_N/<room>/Annotations/)")
        jobs = [(f"{r.parent.name}_{r.name}", r) for r in rooms]
    if args.scenes:
        unknown = sorted(set(args.scenes) - {n for n, _ in jobs})
        if unknown:
            raise DataError(f"{args.src}: no scene(s) named {', '.join(unknown)}")
        jobs = [j for j in jobs if j[0] in set(args.scenes)]
    return jobs


def _run_camera(args: argparse.Namespace) -> int:
    """prepare camera: generate and write sequences SEED..SEED+COUNT-1 (an existing sequence is rewritten)."""
    from tqdm import tqdm

    from ..data.camera import CameraConfig, generate_sequence, groundtruth_path, write_sequence_bag
    from ..data.scene import DataError

    if args.count < 1 or args.frames < 1 or args.seed < 0:
        log.error("--count and --frames must be >= 1 and --seed >= 0, got %d, %d and %d", args.count, args.frames,
                  args.seed)
        return 1
    config = CameraConfig(organized=not args.unorganized)
    written = 0
    with tqdm(total=args.count * args.frames, desc="prepare camera", unit="frame") as bar:
        for seed in range(args.seed, args.seed + args.count):
            bag = args.out / f"sequence_{seed:06d}"
            if args.skip_existing and (bag / "metadata.yaml").is_file() and groundtruth_path(bag).is_file():
                bar.update(args.frames)
                continue
            try:
                sequence = generate_sequence(seed, args.frames, config, on_frame=lambda _: bar.update(1))
                write_sequence_bag(sequence, args.out, overwrite=True, compress=args.compress)
            except (FileExistsError, DataError) as exc:
                log.error("%s", exc)
                return 1
            written += 1
    log.info("wrote %d sequence(s) to %s", written, args.out)
    return 0


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.dataset == "camera":
        return _run_camera(args)

    from ..data.scene import DataError, save_scene
    try:
        jobs = _jobs(args)
        label_map = None
        if args.dataset == "scannet" and not args.test_split and isinstance(jobs[0][1], Path):
            from ..data.scannet import read_label_map
            label_map = read_label_map(_label_map_path(args))
        args.out.mkdir(parents=True, exist_ok=True)
        written = 0
        for name, item in tqdm(jobs, desc=f"prepare {args.dataset}", unit="scene", disable=len(jobs) < 2):
            if args.skip_existing and (args.out / f"{name}.npz").is_file():
                continue
            if args.dataset == "synthetic":
                from ..data.synthetic import generate_scene
                scene = generate_scene(int(item))  # type: ignore[call-overload]
            elif args.dataset == "s3dis":
                from ..data.s3dis import prepare_s3dis_room
                scene = prepare_s3dis_room(item)  # type: ignore[arg-type]
            elif isinstance(item, Path):
                from ..data.scannet import prepare_scannet_scene
                scene = prepare_scannet_scene(item, label_map, labelled=not args.test_split)
            else:
                from ..data.scannet import load_scannet_npy
                scene = load_scannet_npy(args.src, str(item))
            save_scene(scene, args.out / f"{name}.npz")
            if args.dataset == "scannet" and scene.gt_ids is not None and not args.no_gt:
                from ..data.scannet import write_gt_txt
                write_gt_txt(scene, args.out / "gt" / f"{name}.txt")
            written += 1
    except DataError as exc:
        log.error("%s", exc)
        return 1
    log.info("wrote %d scene(s) to %s", written, args.out)
    return 0
