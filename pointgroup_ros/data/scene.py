"""The Scene: one labelled point cloud, and its .npz file format (also the "own data" format for users).

.npz keys (numpy.savez; read with allow_pickle=False):
    xyz       float32 (N, 3)  metres
    rgb       uint8 or float32 (N, 3), 0..255
    semantic  int64 (N,)      class index into the config's class_names, -100 = ignore (optional)
    instance  int64 (N,)      instance id 0..I-1, -100 = no instance (stuff, unlabelled) (optional)
    name      str (0-d array) scene name (optional; defaults to the file stem)
    gt_ids    int64 (N,)      ScanNet only (optional): the benchmark's per-vertex ground truth,
                              nyu40_label * 1000 + instance (1-based), 0 = unannotated
A file without semantic/instance is an unlabelled scene (inference only).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IGNORE = -100


class DataError(ValueError):
    """A data file or array is missing or malformed; the message names the file or field."""


@dataclass
class Scene:
    """One point cloud with optional per-point labels.

    xyz: float32 (N, 3), metres.
    rgb: uint8 or float32 (N, 3), 0..255.
    semantic: int64 (N,) class index or -100, or None when unlabelled.
    instance: int64 (N,) instance id 0..I-1 or -100, or None when unlabelled.
    name: scene name.
    gt_ids: int64 (N,) or None; ScanNet benchmark ground truth (nyu40 * 1000 + instance, 0 = none).
    """

    xyz: np.ndarray
    rgb: np.ndarray
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    name: str = ""
    gt_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def num_instances(self) -> int:
        """Number of instance ids (max id + 1), 0 when unlabelled or no instance."""
        if self.instance is None or not (self.instance >= 0).any():
            return 0
        return int(self.instance.max()) + 1

    def validate(self, where: str | None = None) -> None:
        """Check shapes, dtypes and ranges; raise DataError naming the field (and `where`, e.g. a file)."""
        at = f"{where or self.name or 'scene'}"
        xyz = np.asarray(self.xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise DataError(f"{at}: xyz must have shape (N, 3), got {xyz.shape}")
        n = xyz.shape[0]
        if not np.isfinite(xyz).all():
            raise DataError(f"{at}: xyz has NaN or infinite values")
        self.xyz = np.ascontiguousarray(xyz, dtype=np.float32)
        rgb = np.asarray(self.rgb)
        if rgb.shape != (n, 3):
            raise DataError(f"{at}: rgb must have shape ({n}, 3), got {rgb.shape}")
        if rgb.dtype != np.uint8:
            rgb = np.ascontiguousarray(rgb, dtype=np.float32)
            if n and (not np.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 255):
                raise DataError(f"{at}: rgb must be in 0..255")
        self.rgb = rgb
        for key in ("semantic", "instance", "gt_ids"):
            arr = getattr(self, key)
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.shape != (n,):
                raise DataError(f"{at}: {key} must have shape ({n},), got {arr.shape}")
            if not np.issubdtype(arr.dtype, np.integer):
                raise DataError(f"{at}: {key} must be integers, got {arr.dtype}")
            arr = np.ascontiguousarray(arr, dtype=np.int64)
            if key != "gt_ids" and n and ((arr < 0) & (arr != IGNORE)).any():
                raise DataError(f"{at}: {key} has negative values other than {IGNORE}")
            setattr(self, key, arr)
        if (self.semantic is None) != (self.instance is None):
            raise DataError(f"{at}: semantic and instance must both be given or both be absent")

    def check_classes(self, num_classes: int, where: str | None = None) -> None:
        """Raise DataError if a semantic label is >= num_classes."""
        if self.semantic is not None and self.num_points and self.semantic.max() >= num_classes:
            raise DataError(f"{where or self.name}: semantic label {int(self.semantic.max())} is out of range "
                            f"for {num_classes} classes")


def relabel_contiguous(instance: np.ndarray) -> tuple[np.ndarray, int]:
    """Map the ids >= 0 of an int64 (N,) array to 0..I-1 keeping their order; -100 stays. Returns (ids, I)."""
    out = np.full(instance.shape, IGNORE, dtype=np.int64)
    valid = instance >= 0
    uniq, inv = np.unique(instance[valid], return_inverse=True)
    out[valid] = inv.reshape(-1)
    return out, int(uniq.size)


def save_scene(scene: Scene, path: str | Path) -> Path:
    """Write a Scene to an .npz file (uncompressed; keys in the module docstring). Returns the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays: dict[str, np.ndarray] = {"xyz": scene.xyz, "rgb": scene.rgb, "name": np.array(scene.name)}
    for key in ("semantic", "instance", "gt_ids"):
        if getattr(scene, key) is not None:
            arrays[key] = getattr(scene, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def read_npz_arrays(path: str | Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an .npz file, read without unpickling; DataError naming the file if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def load_npz(path: str | Path) -> Scene:
    """Read a Scene from an .npz file written by save_scene (or by a user; keys in the module docstring)."""
    path = Path(path)
    data = read_npz_arrays(path)
    for key in ("xyz", "rgb"):
        if key not in data:
            raise DataError(f"{path}: missing array {key!r} (has {', '.join(sorted(data)) or 'nothing'})")
    unknown = sorted(set(data) - {"xyz", "rgb", "semantic", "instance", "name", "gt_ids"})
    if unknown:
        raise DataError(f"{path}: unknown array(s) {', '.join(unknown)}")
    name = str(data["name"]) if "name" in data else path.stem
    try:
        return Scene(data["xyz"], data["rgb"], data.get("semantic"), data.get("instance"), name,
                     data.get("gt_ids"))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
