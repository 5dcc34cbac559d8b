"""The benchmark's file formats and `pointgroup-ros eval-scannet`: round trips, errors that name the file and
line, and the command's JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pointgroup_ros.cli import main
from pointgroup_ros.evaluation import (ScenePredictions, SubmissionError, evaluate_instances, load_scene_predictions,
                                       read_ids, read_prediction_file, write_submission)

CHAIR, TABLE = 5, 7


def write_gt(gt_dir: Path, scene: str, gt: np.ndarray) -> None:
    gt_dir.mkdir(parents=True, exist_ok=True)
    (gt_dir / f"{scene}.txt").write_text("".join(f"{v}\n" for v in gt))


def two_scenes() -> list[tuple[str, np.ndarray, ScenePredictions]]:
    gt0 = np.repeat([CHAIR * 1000 + 1, 0, TABLE * 1000 + 1], [200, 50, 150]).astype(np.int64)
    p0 = ScenePredictions(np.concatenate([np.arange(200), np.arange(250, 400)]), [0, 200, 350],
                          [CHAIR, TABLE], [0.9, 0.25])
    gt1 = np.repeat([CHAIR * 1000 + 1, CHAIR * 1000 + 2], [150, 150]).astype(np.int64)
    p1 = ScenePredictions(np.concatenate([np.arange(150), np.arange(150)]), [0, 150, 300], [CHAIR, CHAIR],
                          [0.3, 0.95])  # second is a duplicate of the first
    return [("scene0001_00", gt0, p0), ("scene0002_00", gt1, p1)]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    for scene, gt, pred in two_scenes():
        pred_file = write_submission(tmp_path, scene, pred, gt.size)
        lines = pred_file.read_text().splitlines()
        assert lines[0].startswith(f"predicted_masks/{scene}_000.txt {pred.label_ids[0]} ")
        mask0 = read_ids(tmp_path / lines[0].split(" ")[0], gt.size)
        assert mask0.dtype == np.int64 and set(np.unique(mask0)) <= {0, 1}
        back = load_scene_predictions(pred_file, tmp_path, gt.size)
        assert back.num_instances == pred.num_instances
        np.testing.assert_array_equal(back.label_ids, pred.label_ids)
        np.testing.assert_array_equal(back.confidences, pred.confidences)  # repr keeps every bit
        for m in range(pred.num_instances):
            a = np.unique(pred.point_idx[pred.offsets[m]:pred.offsets[m + 1]])
            np.testing.assert_array_equal(back.point_idx[back.offsets[m]:back.offsets[m + 1]], a)


def test_read_ids_accepts_the_general_integer_form_and_names_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "gt.txt"
    f.write_text("5001\r\n 0\n7002\n")
    np.testing.assert_array_equal(read_ids(f), [5001, 0, 7002])
    f.write_text("1\n0\n1.5\n")
    with pytest.raises(SubmissionError, match=r"gt.txt, line 3: expected one integer, got '1.5'"):
        read_ids(f)
    f.write_text("1\n0\n")
    with pytest.raises(SubmissionError, match="2 lines, but the scene has 3 vertices"):
        read_ids(f, expected_count=3)
    with pytest.raises(SubmissionError, match="cannot read"):
        read_ids(tmp_path / "missing.txt")


@pytest.mark.parametrize("line, message", [
    ("masks/a.txt 5", "three fields"),
    ("masks/a.txt  5 0.5", "three fields"),
    ("/abs/a.txt 5 0.5", "must be relative"),
    ("../outside.txt 5 0.5", "outside the prediction folder"),
    ("masks/a.txt chair 0.5", "must be numbers"),
    ("masks/a.txt 5 nan", "must be finite"),
])
def test_prediction_file_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    pred = tmp_path / "pred"
    pred.mkdir()
    f = pred / "scene0000_00.txt"
    f.write_text(f"masks/ok.txt 5 0.9\n{line}\n")
    with pytest.raises(SubmissionError, match=message) as info:
        read_prediction_file(f, pred)
    assert "scene0000_00.txt, line 2" in str(info.value)


def test_duplicate_mask_path_keeps_first_position_last_values(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("m/a.txt 5 0.1\nm/b.txt 7 0.2\nm/a.txt 6.0 0.3\n")
    entries = read_prediction_file(f, tmp_path)
    assert [(p.name, lab, conf) for p, lab, conf in entries] == [("a.txt", 6, 0.3), ("b.txt", 7, 0.2)]


def test_cli_writes_json_and_matches_in_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    scenes = two_scenes()
    for scene, gt, pred in scenes:
        write_gt(gt_dir, scene, gt)
        write_submission(pred_dir, scene, pred, gt.size)
    out = tmp_path / "res" / "ap.json"
    assert main(["eval-scannet", "--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result == evaluate_instances([s[2] for s in scenes], [s[1] for s in scenes])
    assert list(result) == ["AP", "AP50", "AP25", "classes"]
    assert len(result["classes"]) == 18 and result["classes"]["bed"] == {"AP": None, "AP50": None, "AP25": None}
    # chair: GT 5001 (scene 1, TP 0.9), 5001 (scene 2, TP at max(0.3, 0.95) = 0.95, FP at 0.3), 5002 FN:
    #   rows FP .3, TP .9, TP .95; 3 GT: s=.3: p=2/3, r=2/3; s=.9: p=1, r=2/3; s=.95: p=1, r=1/3; + (1, 0)
    #   r' = [2/3, 2/3, 2/3, 1/3, 0, 0]: w = [0, 1/6, 1/3, 1/6]; AP = 0 + 1/6 + 1/3 + 1/6 = 2/3
    # table: one TP (IoU 150/150, confidence 0.25) -> 1
    assert result["classes"]["chair"]["AP50"] == pytest.approx(2 / 3)
    assert result["classes"]["table"]["AP50"] == 1.0
    assert result["AP50"] == pytest.approx((2 / 3 + 1) / 2)
    printed = capsys.readouterr().out
    assert "over 2 scene(s)" in printed and "chair" in printed and "average" in printed


def test_cli_scene_sets_follow_the_official_script(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    (scene, gt, pred), (scene2, gt2, _) = two_scenes()
    write_gt(gt_dir, scene, gt)
    write_gt(gt_dir, scene2, gt2)
    write_submission(pred_dir, scene, pred, gt.size)
    args = ["eval-scannet", "--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir)]
    # a ground-truth scene without predictions: reported, not evaluated (an error with --strict)
    assert main(args) == 0
    assert scene2 in caplog.text
    assert main(args + ["--strict"]) == 2
    assert scene2 in capsys.readouterr().err
    # a prediction file without ground truth is an error naming the scene
    write_submission(pred_dir, "scene0099_00", ScenePredictions.empty(), 10)
    assert main(args) == 2
    assert "scene0099_00" in capsys.readouterr().err


def test_cli_reports_malformed_and_mismatched_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    (scene, gt, pred) = two_scenes()[0]
    write_gt(gt_dir, scene, gt)
    write_submission(pred_dir, scene, pred, gt.size + 1)  # masks one vertex too long
    args = ["eval-scannet", "--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{scene}_000.txt: {gt.size + 1} lines, but the scene has {gt.size} vertices" in err
    (gt_dir / f"{scene}.txt").write_text("5001\nabc\n")
    assert main(args) == 2
    assert f"{scene}.txt, line 2" in capsys.readouterr().err
    assert main(["eval-scannet", "--pred-dir", str(tmp_path / "nope"), "--gt-dir", str(gt_dir)]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval-scannet", "--pred-dir", str(empty), "--gt-dir", str(gt_dir)]) == 2
    assert "no prediction files" in capsys.readouterr().err


def test_write_submission_rejects_bad_scene_names(tmp_path: Path) -> None:
    for bad in ("", "a b", "x/y", "s.txt", "semantic_instance_evaluation"):
        with pytest.raises(ValueError):
            write_submission(tmp_path, bad, ScenePredictions.empty(), 5)
