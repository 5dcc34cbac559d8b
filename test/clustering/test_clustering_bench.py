"""`pointgroup-ros bench` runs (tiny scenes) and the GPU path fails clearly without CuPy."""
from __future__ import annotations

import sys

import pytest

from pointgroup_ros.cli import main


def test_bench_grouping_runs(capsys):
    assert main(["bench", "--sizes", "3000", "--repeat", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| synthetic 3k | 3000 | cpu |" in out and "x P+Q" in out and "Table 4" in out
    assert main(["bench", "--stages", "nope"]) == 2


def test_missing_cupy_gives_a_clear_error(monkeypatch):
    from pointgroup_ros.clustering import gpu

    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(ImportError, match="GPU grouping needs CuPy"):
        gpu._cupy()


def test_bench_tiled_scannet_skips_without_the_scans(capsys, tmp_path):
    assert main(["bench", "--tiled-scannet", str(tmp_path / "absent")]) == 0
    assert "--tiled-scannet: skipped, no ScanNet scans" in capsys.readouterr().out


def test_bench_tiled_scannet_table(capsys, realdata):
    from pointgroup_ros.tools.bench import tiled_scannet

    scene = tiled_scannet(realdata / "scannet", 250_000)
    assert 240_000 < len(scene.xyz) < 260_000 and scene.name == "ScanNet x3 tiled"
    assert len(scene.semantic) == len(scene.offsets) == len(scene.xyz)
    assert main(["bench", "--tiled-scannet", str(realdata / "scannet"), "--tiled-points", "1", "--repeat", "1",
                 "--tiled-radii", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "| radius m | set | points | grouped | clusters | ours ms | scipy ms | speed-up |" in out
    assert "| 0.02 | P | 81369 |" in out and "| 0.02 | Q | 81369 |" in out


def test_bench_tiled_scannet_without_the_baseline(capsys, realdata):
    assert main(["bench", "--tiled-scannet", str(realdata / "scannet"), "--tiled-points", "1", "--repeat", "1",
                 "--tiled-radii", "0.02", "--no-baseline"]) == 0
    out = capsys.readouterr().out
    assert "| 0.02 | P | 81369 |" in out and "| 0.02 | Q | 81369 |" in out
    rows = [line for line in out.splitlines() if line.startswith("| 0.02 |")]
    assert len(rows) == 2 and all(line.endswith("| - | - |") for line in rows)
