"""Multi-process training through torchrun and DistributedDataParallel (gloo on the CPU): 2 ranks."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TINY = """
data: {dataset: synthetic, class_names: [floor, wall, chair, table, cabinet, sofa, bin], stuff_classes: [0, 1]}
model: {widths: [16, 32]}
train: {epochs: 2, batch_size: 1, prepare_epochs: 1, checkpoint_every: 1, mixed_precision: false}
"""


@pytest.mark.slow
def test_torchrun_two_ranks_train_with_and_without_scorenet(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free loopback port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1",
                           "--master_port", str(port), "-m", "pointgroup_ros.cli", "train", "--config", str(cfg),
                           "--data", "synthetic", "--scenes", "4", "--out", str(out), "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and "score" in summary["last_losses"]  # epoch 2 trains ScoreNet too
    assert (out / "final.pth").is_file()
