"""`pointgroup-ros gpu-report --out DIR`: every GPU figure of issue 12 in one run, as report.md and report.json.

On a machine with an NVIDIA GPU (a CUDA build of torch and CuPy installed, README "Installing for a GPU"):
1. the `gpu` tests (`pytest -m gpu`, in a subprocess; their summary and full output go into the report);
2. the grouping benchmark on the GPU (tools/bench.py's grouping section: cluster_points on P and on Q,
   dual_set_proposals, NMS) on synthetic rooms of --sizes points;
3. the whole frame as the node runs it, through the authors' ScanNet network (--config scannet; randomly
   initialised unless --weights is given, which is fine for timing: the report says so): a PointCloud2 message
   is decoded, segmented and turned into the four output messages (labeled cloud, detections, markers,
   instances) by the node's FrameProcessor with a rosbags message kit (no ROS needed), in fp32 and in fp16
   (preprocess.precision), with per-stage medians and the peak GPU memory (torch's peak allocation plus what
   CuPy's own pool holds, which is nothing while CuPy allocates from torch: clustering.gpu.share_torch_allocator);
4. the card's name and the driver / CUDA / torch / spconv / CuPy versions;
5. the goals of issue 12 for an H100 / H200, each marked met or not met: a 133k-point frame end to end under
   40 ms, both grouping sets (P and Q) of a 250k-point frame under 1 ms, peak GPU memory of a 250k-point frame
   under 2 GB.
Each timing is the median of --repeat runs after a warm-up; the whole command takes a few minutes on an H200.
Without a GPU it says so and exits with status 2, measuring nothing.

The figures -> verdicts -> Markdown / JSON part (evaluate_goals, render_markdown, report_json) is pure, so the
tests check it without a GPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

# Goals of issue 12 for an H100 / H200.
GOAL_CARDS = ("H100", "H200")
E2E_POINTS, E2E_LIMIT_MS = 133_000, 40.0
GROUPING_POINTS, GROUPING_LIMIT_MS = 250_000, 1.0
MEMORY_POINTS, MEMORY_LIMIT_BYTES = 250_000, 2e9  # 2 GB = 2 * 10^9 bytes
SCHEMA = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 2 ** 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("gpu_report"),
                        help="folder for report.md, report.json and pytest_gpu.txt (created; files replaced)")
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N")
    parser.add_argument("--sizes", default=f"{E2E_POINTS},{GROUPING_POINTS}",
                        help="frame sizes in points for the grouping and pipeline benchmarks")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per figure after the warm-up (median)")
    parser.add_argument("--config", default="scannet", help="preset or YAML of the network (default: the authors' "
                        "ScanNet network)")
    parser.add_argument("--weights", default=None, help="checkpoint (default: random initialisation, for timing)")
    parser.add_argument("--precisions", default="fp32,fp16", help="preprocess.precision values to run")
    parser.add_argument("--skip-tests", action="store_true", help="do not run `pytest -m gpu`")
    parser.add_argument("--tests-timeout", type=float, default=300.0, help="seconds for `pytest -m gpu`")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a goal is not met")


# ---------------------------------------------------------------- pure: checks, parsing, verdicts, rendering


def no_gpu_reason(torch: Any, import_cupy: Callable[[], Any]) -> str | None:
    """Why this machine cannot run the report (None: it can). torch: the module; import_cupy: imports CuPy."""
    if torch is None:
        return "torch is not installed"
    if not getattr(torch.version, "cuda", None):
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA GPU"
    try:
        cupy = import_cupy()
    except ImportError:
        return "CuPy is not installed (pip install 'cupy-cuda12x>=13', or the extra pointgroup_ros[gpu])"
    try:
        if not cupy.cuda.is_available():
            return "CuPy sees no CUDA GPU"
    except Exception as exc:  # CuPy without a driver may raise instead of answering False
        return f"CuPy cannot reach a GPU ({type(exc).__name__}: {exc})"
    return None


_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)\b")


def parse_pytest_summary(output: str) -> dict[str, Any]:
    """Counts of pytest's final summary line ('3 passed, 1 skipped, 12 deselected in 4.20s'), and the line."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "xfailed": 0, "xpassed": 0, "deselected": 0}
    for line in reversed(output.strip().splitlines()):
        text = line.strip().strip("=").strip()
        if re.search(r"\bin [\d.]+s\b", text) and (_COUNT.search(text) or text.startswith("no tests ran")):
            for number, kind in _COUNT.findall(text):
                key = {"error": "errors", "warning": "warnings"}.get(kind, kind)
                counts[key] = counts.get(key, 0) + int(number)
            return {"summary": text, **counts}
    return {"summary": "no pytest summary line found", **counts}


def _rows_at(rows: list[dict[str, Any]] | None, points: int) -> list[dict[str, Any]]:
    return [r for r in rows or [] if r.get("points") == points and "error" not in r]


def _verdict(figure: float | None, limit: float) -> bool | None:
    return None if figure is None or not math.isfinite(figure) else bool(figure < limit)


def evaluate_goals(grouping: list[dict[str, Any]] | None, pipeline: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The issue's goals against the figures: one entry per goal (and precision), met True / False / None.

    grouping: rows with 'points', 'group P' and 'group Q' (ms); pipeline: rows with 'points', 'precision',
    'total_ms' and 'peak_gpu_bytes'. A figure that was not measured gives met None.
    """
    goals: list[dict[str, Any]] = []
    pipe = pipeline or []
    precisions = list(dict.fromkeys(r.get("precision", "fp32") for r in pipe)) or ["fp32"]
    for precision in precisions:
        rows = [r for r in _rows_at(pipe, E2E_POINTS) if r.get("precision", "fp32") == precision]
        figure = rows[0].get("total_ms") if rows else None
        goals.append({"goal": f"{E2E_POINTS // 1000}k-point frame end to end (decode to four messages), {precision}",
                      "key": f"e2e_{E2E_POINTS // 1000}k_{precision}", "figure": figure, "limit": E2E_LIMIT_MS,
                      "unit": "ms", "met": _verdict(figure, E2E_LIMIT_MS)})
    rows = _rows_at(grouping, GROUPING_POINTS)
    figure = None
    if rows and rows[0].get("group P") is not None and rows[0].get("group Q") is not None:
        figure = float(rows[0]["group P"]) + float(rows[0]["group Q"])
    goals.append({"goal": f"both grouping sets (P and Q) of a {GROUPING_POINTS // 1000}k-point frame",
                  "key": f"grouping_{GROUPING_POINTS // 1000}k", "figure": figure, "limit": GROUPING_LIMIT_MS,
                  "unit": "ms", "met": _verdict(figure, GROUPING_LIMIT_MS)})
    for precision in precisions:
        rows = [r for r in _rows_at(pipe, MEMORY_POINTS) if r.get("precision", "fp32") == precision]
        figure = rows[0].get("peak_gpu_bytes") if rows else None
        goals.append({"goal": f"peak GPU memory of a {MEMORY_POINTS // 1000}k-point frame, {precision}",
                      "key": f"memory_{MEMORY_POINTS // 1000}k_{precision}",
                      "figure": None if figure is None else figure / 1e9, "limit": MEMORY_LIMIT_BYTES / 1e9,
                      "unit": "GB", "met": _verdict(figure, MEMORY_LIMIT_BYTES)})
    return goals


def verdict_word(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not measured"}[met]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """report.md from the report dictionary (the same one report.json holds)."""
    machine = report.get("machine", {})
    gpu = machine.get("gpu", "unknown GPU")
    out = [f"# GPU report: {gpu}", "",
           f"{report.get('created', '')}; `{report.get('command', 'pointgroup-ros gpu-report')}`; times are medians "
           f"of {report.get('repeat', '?')} runs after a warm-up, in ms.", ""]
    out += ["## Goals (issue 12, for an H100 / H200)", ""]
    out += _table(["goal", "limit", "measured", "verdict"],
                  [[g["goal"], f"< {g['limit']:g} {g['unit']}",
                    "-" if g.get("figure") is None else f"{g['figure']:.3f} {g['unit']}", verdict_word(g.get("met"))]
                   for g in report.get("goals", [])])
    out += [""] + [f"- {note}" for note in report.get("notes", [])] + [""]
    out += ["## Machine", ""]
    out += _table(["item", "value"], [[k, v] for k, v in machine.items()])
    tests = report.get("tests")
    out += ["", "## `pytest -m gpu`", ""]
    if not tests:
        out.append("not run")
    elif tests.get("skipped_run"):
        out.append(tests["skipped_run"])
    else:
        out += _table(["command", "exit status", "passed", "failed", "errors", "skipped", "seconds"],
                      [[tests.get("command"), tests.get("returncode"), tests.get("passed"), tests.get("failed"),
                        tests.get("errors"), tests.get("skipped"), tests.get("duration_s")]])
        out += ["", f"summary: `{tests.get('summary', '')}`" + (f"; full output: {tests['output_file']}"
                                                                  if tests.get("output_file") else "")]
    out += ["", "## Grouping (GPU, synthetic rooms)", ""]
    grouping = report.get("grouping") or []
    if report.get("grouping_error"):
        out.append(f"failed: {report['grouping_error']}")
    else:
        cols = ["scene", "points", "group P", "group Q", "P + Q", "proposals P+Q", "NMS", "proposals"]
        out += _table(cols, [[r.get(c) for c in cols] for r in grouping])
        out += ["", "group P / group Q: cluster_points on the points / on the offset-shifted points; proposals P+Q: "
                "dual_set_proposals (both sets and the CSR proposals); radius 0.03 m, 50 points minimum."]
    out += ["", "## Whole frame: PointCloud2 decode to the four output messages", ""]
    pipeline = report.get("pipeline") or []
    if report.get("pipeline_error"):
        out.append(f"failed: {report['pipeline_error']}")
    else:
        stages: list[str] = []
        for r in pipeline:
            stages += [s for s in r.get("stages_ms", {}) if s not in stages and s not in ("total", "pipeline")]
        cols = ["scene", "points", "network points", "precision", *stages, "pipeline", "total", "peak GPU MiB",
                "of it CuPy pool MiB", "instances found"]
        rows = []
        for r in pipeline:
            st = r.get("stages_ms", {})
            rows.append([r.get("scene"), r.get("points"), r.get("network_points"), r.get("precision"),
                         *[st.get(s) for s in stages], st.get("pipeline"), r.get("total_ms"),
                         None if r.get("peak_gpu_bytes") is None else r["peak_gpu_bytes"] / MIB,
                         None if r.get("cupy_pool_bytes") is None else r["cupy_pool_bytes"] / MIB, r.get("instances")])
        out += _table(cols, rows)
        out += ["", "decode: PointCloud2 -> arrays; prepare ... assemble: the pipeline's stages (CUDA synchronised "
                "after each); pipeline: their sum as seen from outside; build/...: building each output message; "
                "total: decode to the fourth message. Peak GPU memory: torch's peak allocation "
                "(torch.cuda.max_memory_allocated) plus CuPy's own pool."]
    return "\n".join(out) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def report_json(report: dict[str, Any]) -> str:
    """report.json: the report dictionary (strict JSON: no NaN / Infinity)."""
    return json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n"


def report_notes(machine: dict[str, Any], weights: str | None, allocator: str | None) -> list[str]:
    notes = []
    gpu = str(machine.get("gpu", ""))
    if not any(card in gpu for card in GOAL_CARDS):
        notes.append(f"The goals are set for an H100 / H200; this card is {gpu or 'unknown'}, so the verdicts are "
                     "only indicative.")
    if weights is None:
        notes.append("The network is the authors' ScanNet network with random weights (no checkpoint given): the "
                     "cost of the backbone and heads is the real one, but the number of proposals, hence ScoreNet, "
                     "NMS and the total, depends on the predictions, so those are indicative; pass --weights with "
                     "the converted authors' checkpoint for the real figures. The instances are meaningless.")
    if allocator:
        notes.append(f"CuPy memory: {allocator}.")
    notes.append("The frames are synthetic rooms (tools/bench.py), about 2 cm apart like ScanNet; the network sees "
                 "them after its 2 cm voxel downsampling (network points).")
    return notes


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """report.md and report.json in `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    js.write_text(report_json(report))
    md.write_text(render_markdown(report))
    return md, js


# ---------------------------------------------------------------- measuring (needs a GPU)


def _progress(message: str) -> None:
    print(f"[gpu-report {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_gpu_tests(out: Path, timeout_s: float) -> dict[str, Any]:
    """`pytest -m gpu` on this source tree in a subprocess: summary counts, exit status, output file."""
    if not (REPO_ROOT / "test" / "conftest.py").is_file():
        return {"skipped_run": f"not run: no test/ folder next to the package ({REPO_ROOT}); install from a source "
                               "checkout (pip install -e) to run them"}
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "test"]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout_s, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        output, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        output, code = text + f"\n[gpu-report] timed out after {timeout_s:g} s\n", None
    duration = round(time.perf_counter() - start, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pytest_gpu.txt").write_text(output)
    result = {"command": "pytest -m gpu -q test", "returncode": code, "duration_s": duration,
              "output_file": "pytest_gpu.txt", **parse_pytest_summary(output)}
    if code is None:
        result["summary"] = f"timed out after {timeout_s:g} s ({result['summary']})"
    return result


def machine_info(device: Any) -> dict[str, Any]:
    import importlib.metadata as metadata

    import cupy
    import numpy
    import torch

    props = torch.cuda.get_device_properties(device)
    info: dict[str, Any] = {"gpu": torch.cuda.get_device_name(device),
                            "GPU memory GiB": round(props.total_memory / 2 ** 30, 1),
                            "compute capability": f"{props.major}.{props.minor}"}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader",
                              "-i", str(device.index or 0)], capture_output=True, text=True, timeout=20)
        if smi.returncode == 0 and smi.stdout.strip():
            info["driver"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass

    def cuda_version(v: int) -> str:
        return f"{v // 1000}.{v % 1000 // 10}"

    info["driver CUDA version"] = cuda_version(cupy.cuda.runtime.driverGetVersion())
    info["torch"] = torch.__version__
    info["torch CUDA"] = torch.version.cuda
    info["cuDNN"] = torch.backends.cudnn.version()
    info["CuPy"] = cupy.__version__
    info["CuPy CUDA runtime"] = cuda_version(cupy.cuda.runtime.runtimeGetVersion())
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().startswith(("spconv", "cumm")):
            info[name] = dist.version
    info["numpy"] = numpy.__version__
    info["python"] = platform.python_version()
    info["CPU"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return info


def grouping_figures(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    """tools/bench.py's grouping section on the GPU (no scipy baseline), plus P + Q."""
    from . import bench

    args = argparse.Namespace(radius=0.03, min_points=50, repeat=repeat, no_baseline=True)
    rows = []
    for n in sizes:
        _progress(f"grouping: {n:,} points")
        row = bench.grouping_section(args, [bench.synthetic_scene(n)], "cuda")[0]
        row["P + Q"] = row["group P"] + row["group Q"]
        rows.append(row)
    return rows


def pipeline_figures(config: str, weights: str | None, device: str, sizes: list[int], precisions: list[str],
                     repeat: int) -> tuple[list[dict[str, Any]], str]:
    """Each frame size and precision: PointCloud2 -> the four messages, medians per stage, peak GPU memory.

    Returns (rows, model description)."""
    import cupy
    import torch

    from ..ros.cloud import encode_cloud
    from .bench import frame_processor, tiled_rooms, time_frame

    _progress(f"pipeline: building the network ({config}, {weights or 'random weights'}) on {device}")
    pipe, processor, header = frame_processor(config, weights, device)
    dev = pipe.device
    params = sum(p.numel() for p in pipe.model.parameters())
    description = f"config {config!r}, {pipe.weights_description}, {params:,} parameters"
    pool = cupy.get_default_memory_pool()
    rows = []
    for n in sizes:
        xyz, rgb = tiled_rooms(n)
        msg = encode_cloud(processor.kit, header, xyz, rgb)
        for precision in precisions:
            _progress(f"pipeline: {n:,} points, {precision}")
            pre = dataclasses.replace(pipe.cfg.preprocess, precision=precision)
            with cupy.cuda.Device(dev.index or 0):
                pool.free_all_blocks()
            runs, medians = time_frame(processor, msg, repeat, pre, warmup=2)
            stages = {k.removeprefix("pipeline/"): v for k, v in medians.items()}
            with cupy.cuda.Device(dev.index or 0):
                cupy_bytes = int(pool.total_bytes())
            torch_peak = int(torch.cuda.max_memory_allocated(dev))
            rows.append({"scene": f"rooms {n // 1000}k", "points": n, "network_points": runs[0].seg.network_points,
                         "precision": precision, "instances": runs[-1].seg.num_instances, "stages_ms": stages,
                         "total_ms": stages["total"], "total_min_ms": min(r.timings_ms["total"] for r in runs),
                         "peak_torch_bytes": torch_peak, "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(dev)),
                         "cupy_pool_bytes": cupy_bytes, "peak_gpu_bytes": torch_peak + cupy_bytes})
            _progress(f"  total {stages['total']:.1f} ms, peak GPU {(torch_peak + cupy_bytes) / MIB:.0f} MiB")
    return rows, description


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        torch = None

    def import_cupy() -> Any:
        import cupy
        return cupy

    reason = no_gpu_reason(torch, import_cupy)
    if reason is not None:
        print(f"gpu-report: no GPU to measure: {reason}. This command needs an NVIDIA GPU with a CUDA build of torch "
              "and CuPy (README, 'Installing for a GPU'); nothing was measured and no report was written.",
              file=sys.stderr)
        return 2
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
        device = torch.device(args.device)
        if device.type != "cuda":
            raise ValueError(f"--device must be cuda or cuda:N, got {args.device!r}")
        if args.repeat < 1:
            raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
        from ..config import PRECISIONS
        bad = [p for p in precisions if p not in PRECISIONS]
        if bad:
            raise ValueError(f"--precisions: unknown {bad} (known: {', '.join(PRECISIONS)})")
    except ValueError as exc:
        print(f"gpu-report: {exc}", file=sys.stderr)
        return 2
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    out: Path = args.out
    started = time.perf_counter()
    report: dict[str, Any] = {"schema": SCHEMA, "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                              "command": " ".join(["pointgroup-ros", *sys.argv[1:]]),
                              "repeat": args.repeat, "config": args.config, "weights": args.weights,
                              "machine": machine_info(device)}
    _progress(f"GPU: {report['machine']['gpu']}; report in {out}/")
    if args.skip_tests:
        report["tests"] = {"skipped_run": "not run (--skip-tests)"}
    else:
        _progress(f"running pytest -m gpu (up to {args.tests_timeout:g} s) ...")
        report["tests"] = run_gpu_tests(out, args.tests_timeout)
        _progress(f"tests: {report['tests'].get('summary')}")
    try:
        report["grouping"] = grouping_figures(sizes, args.repeat)
    except Exception as exc:  # keep going: the other figures are still worth the report
        report["grouping_error"] = _error(exc)
        _progress(f"grouping failed: {report['grouping_error']}")
    try:
        report["pipeline"], report["model"] = pipeline_figures(args.config, args.weights, str(device), sizes,
                                                               precisions, args.repeat)
    except Exception as exc:
        report["pipeline_error"] = _error(exc)
        _progress(f"pipeline failed: {report['pipeline_error']}")
    from ..clustering.gpu import allocator_status
    shared, allocator = allocator_status()
    report["cupy_allocates_from_torch"] = shared
    report["goals"] = evaluate_goals(report.get("grouping"), report.get("pipeline"))
    report["notes"] = report_notes(report["machine"], args.weights, allocator)
    report["duration_s"] = round(time.perf_counter() - started, 1)
    md, js = write_report(report, out)
    for goal in report["goals"]:
        figure = "-" if goal["figure"] is None else f"{goal['figure']:.3f} {goal['unit']}"
        print(f"  {goal['goal']}: {figure} (goal < {goal['limit']:g} {goal['unit']}): {verdict_word(goal['met'])}")
    _progress(f"wrote {md} and {js} in {report['duration_s']:.0f} s")
    tests = report["tests"]
    tests_failed = not tests.get("skipped_run") and tests.get("returncode") != 0  # None: timed out
    if tests_failed or "grouping_error" in report or "pipeline_error" in report:
        print("gpu-report: some parts failed (see the report)", file=sys.stderr)
        return 1
    if args.strict and any(g["met"] is not True for g in report["goals"]):
        return 1
    return 0
