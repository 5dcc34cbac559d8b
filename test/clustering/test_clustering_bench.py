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
