"""The ScanNet benchmark's file formats: ground-truth files, prediction (submission) files and masks.

Ground truth: <scene>.txt, one integer per vertex of the scene's *_vh_clean_2.ply: label_id * 1000 +
instance, 0 = unannotated.
Predictions: <pred_dir>/<scene>.txt, one line per instance, 'relative/path/to/mask.txt label_id confidence'
(fields separated by single spaces, the path relative to the prediction file and inside pred_dir); each mask
file holds one integer per vertex, non-zero = member of the instance.
Reading follows the benchmark script: a mask path listed twice keeps its first position and its last label
and confidence (the script keys instances by mask path).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .predictions import ScenePredictions

MASK_DIR = "predicted_masks"
RESULT_FILE = "semantic_instance_evaluation.txt"  # the script's own output name, never a scene


class SubmissionError(ValueError):
    """A benchmark file is missing or malformed; the message names the file (and line)."""


def read_ids(path: str | os.PathLike[str], expected_count: int | None = None) -> np.ndarray:
    """Read one integer per line (a ground-truth or mask file) into int64 (N,).

    Raises SubmissionError naming the file and line for a non-integer line, or the counts when
    expected_count is given and differs.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubmissionError(f"cannot read {path}: {exc.strerror or exc}") from exc
    ids = _parse_01(data)
    if ids is None:
        lines = data.decode("utf-8", errors="replace").splitlines()
        try:
            ids = np.array(lines, dtype=np.int64) if lines else np.zeros(0, np.int64)
        except (ValueError, OverflowError):
            for i, line in enumerate(lines):  # error path only: find the offending line
                try:
                    int(line)
                except ValueError:
                    raise SubmissionError(f"{path}, line {i + 1}: expected one integer, got {line!r}") from None
            raise SubmissionError(f"{path}: integer out of range") from None
    if expected_count is not None and ids.shape[0] != expected_count:
        raise SubmissionError(f"{path}: {ids.shape[0]} lines, but the scene has {expected_count} vertices "
                              f"(one line per vertex of *_vh_clean_2.ply expected)")
    return ids


def _parse_01(data: bytes) -> np.ndarray | None:
    """Fast path for the common 'd\\n' per line layout (single digits); None when the file is not that."""
    if len(data) % 2:
        return None
    buf = np.frombuffer(data, np.uint8)
    digits, newlines = buf[0::2], buf[1::2]
    if not (np.all(newlines == 10) and np.all((digits >= 48) & (digits <= 57))):
        return None
    return (digits - 48).astype(np.int64)


def read_prediction_file(pred_file: str | os.PathLike[str], pred_dir: str | os.PathLike[str]
                         ) -> list[tuple[Path, int, float]]:
    """Parse one scene's prediction file into [(absolute mask path, label_id, confidence)], in file order.

    Raises SubmissionError (file and line) for a line without exactly three space-separated fields, an
    absolute mask path, a path leaving pred_dir, or a label / confidence that is not a number.
    """
    pred_file = Path(pred_file)
    root = Path(os.path.abspath(pred_dir))
    try:
        lines = pred_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise SubmissionError(f"cannot read {pred_file}: {exc.strerror or exc}") from exc
    entries: dict[Path, tuple[int, float]] = {}
    for i, line in enumerate(lines):
        where = f"{pred_file}, line {i + 1}"
        parts = line.split(" ")
        if len(parts) != 3:
            raise SubmissionError(f"{where}: expected 'relative/mask.txt label_id confidence' (three fields "
                                  f"separated by single spaces), got {line!r}")
        if os.path.isabs(parts[0]):
            raise SubmissionError(f"{where}: the mask path must be relative, got {parts[0]!r}")
        mask = Path(os.path.abspath(os.path.join(pred_file.parent, parts[0])))
        if os.path.commonpath([str(mask), str(root)]) != str(root):
            raise SubmissionError(f"{where}: mask {mask} lies outside the prediction folder {root}")
        try:
            label = int(float(parts[1]))
            conf = float(parts[2])
        except (ValueError, OverflowError):
            raise SubmissionError(f"{where}: label id and confidence must be numbers, got "
                                  f"{parts[1]!r} {parts[2]!r}") from None
        if not np.isfinite(conf):
            raise SubmissionError(f"{where}: confidence must be finite, got {parts[2]!r}")
        entries[mask] = (label, conf)
    return [(mask, label, conf) for mask, (label, conf) in entries.items()]


def load_scene_predictions(pred_file: str | os.PathLike[str], pred_dir: str | os.PathLike[str],
                           num_vertices: int) -> ScenePredictions:
    """Read a prediction file and its masks into ScenePredictions (each mask checked against num_vertices)."""
    entries = read_prediction_file(pred_file, pred_dir)
    members = [np.flatnonzero(read_ids(mask, num_vertices)) for mask, _, _ in entries]
    offsets = np.zeros(len(entries) + 1, np.int64)
    np.cumsum([m.size for m in members], out=offsets[1:])
    point_idx = np.concatenate(members) if members else np.zeros(0, np.int64)
    return ScenePredictions(point_idx, offsets, np.array([e[1] for e in entries], np.int64),
                            np.array([e[2] for e in entries], np.float64))


def write_submission(out_dir: str | os.PathLike[str], scene_name: str, predictions: ScenePredictions,
                     num_vertices: int, mask_dir: str = MASK_DIR) -> Path:
    """Write <out_dir>/<scene_name>.txt and one mask file per instance under <out_dir>/<mask_dir>/.

    predictions: label_ids must be the benchmark ids (NYU40 for ScanNet); num_vertices: N of the scene's
    mesh. Confidences are written with full precision (repr) so ties and order survive a round trip.
    Returns the path of the scene's prediction file.
    """
    if not scene_name or any(c in scene_name for c in " /\\") or scene_name.endswith(".txt"):
        raise ValueError(f"scene_name must be a bare name without spaces or slashes, got {scene_name!r}")
    if scene_name == Path(RESULT_FILE).stem:
        raise ValueError(f"scene_name {scene_name!r} collides with the evaluation's result file")
    out = Path(out_dir)
    (out / mask_dir).mkdir(parents=True, exist_ok=True)
    inst, pts = predictions.members(num_vertices)
    starts = np.searchsorted(inst, np.arange(predictions.num_instances + 1))
    text = np.empty((num_vertices, 2), np.uint8)
    text[:, 1] = ord("\n")
    lines = []
    for m in range(predictions.num_instances):
        rel = f"{mask_dir}/{scene_name}_{m:03d}.txt"
        text[:, 0] = ord("0")
        text[pts[starts[m]:starts[m + 1]], 0] = ord("1")
        (out / rel).write_bytes(text.tobytes())
        lines.append(f"{rel} {int(predictions.label_ids[m])} {float(predictions.confidences[m])!r}\n")
    pred_file = out / f"{scene_name}.txt"
    pred_file.write_text("".join(lines))
    return pred_file
