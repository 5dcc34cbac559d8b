"""`pointgroup-ros gpu-report` without a GPU: the refusal, and figures -> verdicts -> Markdown / JSON.

The measuring functions run in test/core/test_pipeline_gpu.py (a `gpu` test).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pointgroup_ros import cli
from pointgroup_ros.tools import gpu_report as gr


def grouping_rows(p_ms: float = 0.3, q_ms: float = 0.4) -> list[dict[str, Any]]:
    return [{"scene": "synthetic 133k", "points": 133_000, "device": "cuda", "group P": 0.2, "group Q": 0.25,
             "proposals P+Q": 0.6, "NMS": 0.3, "proposals": 40, "P + Q": 0.45},
            {"scene": "synthetic 250k", "points": 250_000, "device": "cuda", "group P": p_ms, "group Q": q_ms,
             "proposals P+Q": 0.9, "NMS": 0.4, "proposals": 70, "P + Q": p_ms + q_ms}]


def pipeline_row(points: int, precision: str, total_ms: float, peak_bytes: int) -> dict[str, Any]:
    stages = {"decode": 1.0, "prepare": 0.5, "downsample": 0.7, "voxelize": 0.9, "backbone": 12.0, "grouping": 0.8,
              "scorenet": 4.0, "nms": 0.5, "assemble": 1.2, "pipeline": 20.6, "build/labeled_points": 2.0,
              "build/detections": 0.3, "build/markers": 0.4, "build/instances": 1.1, "total": total_ms}
    return {"scene": f"rooms {points // 1000}k", "points": points, "network_points": points // 2,
            "precision": precision, "instances": 12, "stages_ms": stages, "total_ms": total_ms,
            "total_min_ms": total_ms - 1, "peak_torch_bytes": peak_bytes, "peak_reserved_bytes": peak_bytes * 2,
            "cupy_pool_bytes": 0, "peak_gpu_bytes": peak_bytes}


def pipeline_rows() -> list[dict[str, Any]]:
    return [pipeline_row(133_000, "fp32", 45.0, 900_000_000), pipeline_row(133_000, "fp16", 31.5, 700_000_000),
            pipeline_row(250_000, "fp32", 80.0, 2_100_000_000), pipeline_row(250_000, "fp16", 55.0, 1_500_000_000)]


def sample_report() -> dict[str, Any]:
    machine = {"gpu": "NVIDIA H200", "GPU memory GiB": 139.8, "driver": "570.86", "torch": "2.13.0+cu126",
               "CuPy": "13.4.1", "spconv-cu120": "2.3.8"}
    grouping, pipeline = grouping_rows(), pipeline_rows()
    return {"schema": gr.SCHEMA, "created": "2026-12-01T04:00:00+00:00", "command": "pointgroup-ros gpu-report",
            "repeat": 20, "config": "scannet", "weights": None, "machine": machine,
            "tests": {"command": "pytest -m gpu -q test", "returncode": 0, "duration_s": 41.0, "passed": 75,
                      "failed": 0, "errors": 0, "skipped": 6, "summary": "75 passed, 6 skipped in 41.0s",
                      "output_file": "pytest_gpu.txt"},
            "grouping": grouping, "pipeline": pipeline, "cupy_allocates_from_torch": True,
            "goals": gr.evaluate_goals(grouping, pipeline),
            "notes": gr.report_notes(machine, None, "CuPy allocates from torch's caching allocator")}


# ---------------------------------------------------------------- no GPU


def test_without_a_gpu_it_says_so_and_fails_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "pointgroup_ros.cli", "gpu-report", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "no GPU to measure" in proc.stderr and "nothing was measured" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()


def test_without_a_gpu_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["gpu-report", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu-report: no GPU to measure: torch ") and not (tmp_path / "r").exists()


def _fake_torch(cuda_build: str | None = "12.6", available: bool = True) -> Any:
    return SimpleNamespace(__version__="2.13.0", version=SimpleNamespace(cuda=cuda_build),
                           cuda=SimpleNamespace(is_available=lambda: available))


def _cupy(available: Any) -> Any:
    def is_available() -> bool:
        if isinstance(available, Exception):
            raise available
        return available

    return lambda: SimpleNamespace(cuda=SimpleNamespace(is_available=is_available))


def _no_cupy() -> Any:
    raise ImportError("No module named 'cupy'")


@pytest.mark.parametrize("torch_module, import_cupy, expected", [
    (None, _cupy(True), "torch is not installed"),
    (_fake_torch(cuda_build=None), _cupy(True), "torch 2.13.0 is a CPU-only build"),
    (_fake_torch(available=False), _cupy(True), "torch 2.13.0 (CUDA 12.6) sees no CUDA GPU"),
    (_fake_torch(), _no_cupy, "CuPy is not installed"),
    (_fake_torch(), _cupy(False), "CuPy sees no CUDA GPU"),
    (_fake_torch(), _cupy(RuntimeError("cudaErrorNoDevice")), "CuPy cannot reach a GPU (RuntimeError: cudaErrorNoDevice)"),
    (_fake_torch(), _cupy(True), None),
])
def test_no_gpu_reason(torch_module: Any, import_cupy: Any, expected: str | None) -> None:
    reason = gr.no_gpu_reason(torch_module, import_cupy)
    assert reason == expected if expected is None else reason.startswith(expected)


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize("text, counts, summary", [
    ("....s\n75 passed, 6 skipped, 1163 deselected in 41.02s\n", {"passed": 75, "skipped": 6, "deselected": 1163},
     "75 passed, 6 skipped, 1163 deselected in 41.02s"),
    ("F.\n===== 1 failed, 2 passed, 1 error, 3 warnings in 2.00s =====\n", {"failed": 1, "passed": 2, "errors": 1},
     "1 failed, 2 passed, 1 error, 3 warnings in 2.00s"),
    ("no tests ran in 0.01s", {"passed": 0}, "no tests ran in 0.01s"),
    ("ImportError while loading conftest", {"passed": 0, "failed": 0}, "no pytest summary line found"),
])
def test_parse_pytest_summary(text: str, counts: dict[str, int], summary: str) -> None:
    parsed = gr.parse_pytest_summary(text)
    assert {k: parsed[k] for k in counts} == counts and parsed["summary"] == summary


def test_goal_verdicts_from_figures() -> None:
    goals = {g["key"]: g for g in gr.evaluate_goals(grouping_rows(0.3, 0.4), pipeline_rows())}
    assert list(goals) == ["e2e_133k_fp32", "e2e_133k_fp16", "grouping_250k", "memory_250k_fp32", "memory_250k_fp16"]
    assert goals["e2e_133k_fp32"]["met"] is False and goals["e2e_133k_fp32"]["figure"] == 45.0
    assert goals["e2e_133k_fp16"]["met"] is True and goals["e2e_133k_fp16"]["limit"] == 40.0
    assert goals["grouping_250k"]["met"] is True and math.isclose(goals["grouping_250k"]["figure"], 0.7)
    assert goals["memory_250k_fp32"]["met"] is False and math.isclose(goals["memory_250k_fp32"]["figure"], 2.1)
    assert goals["memory_250k_fp16"]["met"] is True and goals["memory_250k_fp16"]["unit"] == "GB"
    slow = {g["key"]: g for g in gr.evaluate_goals(grouping_rows(0.5, 0.6), pipeline_rows())}
    assert slow["grouping_250k"]["met"] is False  # 1.1 ms: both sets count


def test_goals_not_measured() -> None:
    goals = gr.evaluate_goals(None, None)
    assert [g["key"] for g in goals] == ["e2e_133k_fp32", "grouping_250k", "memory_250k_fp32"]
    assert all(g["met"] is None and g["figure"] is None for g in goals)
    other_sizes = gr.evaluate_goals([{"points": 50_000, "group P": 0.1, "group Q": 0.1}],
                                    [pipeline_row(50_000, "fp32", 10.0, 10)])
    assert all(g["met"] is None for g in other_sizes)
    failed_row = gr.evaluate_goals(None, [{"points": 133_000, "precision": "fp32", "error": "x"}])
    assert failed_row[0]["met"] is None
    nan = gr.evaluate_goals(None, [pipeline_row(133_000, "fp32", float("nan"), 10)])
    assert nan[0]["met"] is None


def _table_blocks(markdown: str) -> list[list[str]]:
    blocks, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def test_markdown_is_well_formed_and_carries_the_verdicts() -> None:
    report = sample_report()
    md = gr.render_markdown(report)
    assert md.startswith("# GPU report: NVIDIA H200\n")
    blocks = _table_blocks(md)
    assert len(blocks) == 5  # goals, machine, tests, grouping, pipeline
    for block in blocks:
        widths = {line.count("|") for line in block}
        assert len(widths) == 1, block  # every row has the header's columns
        assert set(block[1].replace("|", "")) == {"-"}
    goals = blocks[0]
    assert goals[0] == "| goal | limit | measured | verdict |"
    assert "| 133k-point frame end to end (decode to four messages), fp32 | < 40 ms | 45.000 ms | NOT met |" in goals
    assert "| both grouping sets (P and Q) of a 250k-point frame | < 1 ms | 0.700 ms | met |" in goals
    assert "| peak GPU memory of a 250k-point frame, fp32 | < 2 GB | 2.100 GB | NOT met |" in goals
    assert "random weights" in md and "H100 / H200; this card" not in md  # an H200: no card note
    assert "| pytest -m gpu -q test | 0 | 75 | 0 | 0 | 6 | 41.0 |" in md
    pipeline = blocks[4]
    assert pipeline[0].startswith("| scene | points | network points | precision | decode | prepare |")
    assert pipeline[0].endswith("| build/instances | pipeline | total | peak GPU MiB | of it CuPy pool MiB | "
                                "instances found |")
    assert pipeline[2 + 2].startswith("| rooms 250k | 250000 | 125000 | fp32 | 1.000 |")
    assert pipeline[2 + 2].endswith("| 20.6 | 80.0 | 2002.7 | 0.000 | 12 |")
    assert len(pipeline) == 2 + 4


def test_markdown_of_failed_parts_and_another_card() -> None:
    report = sample_report()
    report["machine"]["gpu"] = "NVIDIA GeForce RTX 4090"
    report["notes"] = gr.report_notes(report["machine"], "authors.pth", None)
    report.update(grouping_error="RuntimeError: boom", pipeline_error="CUDARuntimeError: oom",
                  tests={"skipped_run": "not run (--skip-tests)"})
    report["goals"] = gr.evaluate_goals(None, None)
    md = gr.render_markdown(report)
    assert "failed: RuntimeError: boom" in md and "failed: CUDARuntimeError: oom" in md
    assert "not run (--skip-tests)" in md and "this card is NVIDIA GeForce RTX 4090" in md
    assert "random weights" not in md and md.count("not measured") == 3


def test_json_is_strict_and_round_trips(tmp_path: Path) -> None:
    report = sample_report()
    report["pipeline"][0]["total_min_ms"] = float("nan")
    report["out"] = tmp_path
    md_path, json_path = gr.write_report(report, tmp_path / "new" / "dir")
    data = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["pipeline"][0]["total_min_ms"] is None and data["out"] == str(tmp_path)
    assert data["machine"]["gpu"] == "NVIDIA H200" and data["schema"] == gr.SCHEMA
    assert [g["met"] for g in data["goals"]] == [False, True, True, False, True]
    assert md_path.read_text() == gr.render_markdown(report)


# ---------------------------------------------------------------- run() with the measurements faked


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import torch

    calls: dict[str, Any] = {}
    monkeypatch.setattr(gr, "no_gpu_reason", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("device", str(d)))
    monkeypatch.setattr(gr, "machine_info", lambda device: {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.13.0"})

    def tests(out: Path, timeout: float) -> dict[str, Any]:
        calls["tests_timeout"] = timeout
        return {"command": "pytest -m gpu -q test", "returncode": 0, "passed": 3, "summary": "3 passed in 1.00s"}

    def grouping(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
        calls["grouping"] = (sizes, repeat)
        return grouping_rows()

    def pipeline(config: str, weights: Any, device: str, sizes: list[int], precisions: list[str], repeat: int) -> Any:
        calls["pipeline"] = (config, weights, device, sizes, precisions, repeat)
        return [r for r in pipeline_rows() if r["precision"] in precisions], "config 'scannet', random initialisation"

    monkeypatch.setattr(gr, "run_gpu_tests", tests)
    monkeypatch.setattr(gr, "grouping_figures", grouping)
    monkeypatch.setattr(gr, "pipeline_figures", pipeline)
    return calls


def test_run_writes_both_files(fake_gpu: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    assert cli.main(["gpu-report", "--out", str(out), "--repeat", "3"]) == 0
    assert fake_gpu["device"] == "cuda:0" and fake_gpu["grouping"] == ([133_000, 250_000], 3)
    assert fake_gpu["pipeline"] == ("scannet", None, "cuda:0", [133_000, 250_000], ["fp32", "fp16"], 3)
    data = json.loads((out / "report.json").read_text())
    assert data["tests"]["passed"] == 3 and len(data["goals"]) == 5 and data["repeat"] == 3
    assert "| 133k-point frame end to end (decode to four messages), fp16 | < 40 ms | 31.500 ms | met |" in (
        out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "fp32: 45.000 ms (goal < 40 ms): NOT met" in printed and "wrote" in printed
    # --strict: a goal not met is a failure
    assert cli.main(["gpu-report", "--out", str(out), "--strict", "--skip-tests"]) == 1
    assert json.loads((out / "report.json").read_text())["tests"] == {"skipped_run": "not run (--skip-tests)"}
    assert cli.main(["gpu-report", "--out", str(out), "--strict", "--skip-tests", "--precisions", "fp16"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert [g["met"] for g in data["goals"]] == [True, True, True]


def test_run_reports_a_failed_part_and_exits_1(fake_gpu: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("spconv: no kernel for this GPU")

    monkeypatch.setattr(gr, "pipeline_figures", broken)
    assert cli.main(["gpu-report", "--out", str(tmp_path), "--skip-tests"]) == 1
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["pipeline_error"] == "RuntimeError: spconv: no kernel for this GPU" and data["grouping"]
    assert "some parts failed" in capsys.readouterr().err


def test_run_rejects_bad_arguments(fake_gpu: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gpu-report", "--out", str(tmp_path / "x"), "--precisions", "fp8"]) == 2
    assert cli.main(["gpu-report", "--out", str(tmp_path / "x"), "--device", "cpu"]) == 2
    assert cli.main(["gpu-report", "--out", str(tmp_path / "x"), "--repeat", "0"]) == 2
    err = capsys.readouterr().err
    assert "fp8" in err and "--device must be cuda" in err and "--repeat must be >= 1" in err
    assert not (tmp_path / "x").exists()
