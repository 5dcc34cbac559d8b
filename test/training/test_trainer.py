"""The trainer on the CPU: all four losses fall on synthetic rooms; checkpoints resume; evaluation runs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from pointgroup_ros.config import load_config
from pointgroup_ros.data.dataset import SyntheticDataset, collate
from pointgroup_ros.data.synthetic import SyntheticConfig
from pointgroup_ros.model.checkpoint import load_checkpoint
from pointgroup_ros.training.trainer import Trainer, learning_rate

SMALL_ROOMS = SyntheticConfig(room_size=(2.2, 2.4), spacing=0.03, extra_groups=(0, 0))


def small_config(epochs: int, prepare: int):
    return load_config("synthetic").replace(
        model={"widths": [16, 32, 48]},
        train={"epochs": epochs, "prepare_epochs": prepare, "batch_size": 1, "checkpoint_every": 4,
               "mixed_precision": False, "lr": 0.01},
        grouping={"min_points": 20})


def loader(cfg, seeds=(3, 4)) -> tuple[SyntheticDataset, DataLoader]:
    ds = SyntheticDataset(seeds, cfg.data, train=True, seed=0, synthetic=SMALL_ROOMS)
    return ds, DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True, collate_fn=collate,
                          generator=torch.Generator().manual_seed(0))


@pytest.mark.slow
def test_all_four_losses_fall_on_synthetic_rooms(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = small_config(epochs=14, prepare=4)
    ds, dl = loader(cfg)
    trainer = Trainer(cfg, tmp_path, device="cpu", tensorboard=False)
    result = trainer.fit(dl, progress=False, set_epoch=ds.set_epoch)
    history = result.history
    assert len(history) == 14
    assert all("score" not in h for h in history[:4]) and all("score" in h for h in history[4:])

    def mean(key: str, rows: list[dict]) -> float:
        return sum(r[key] for r in rows) / len(rows)

    for key in ("semantic", "offset_l1", "offset_dir"):
        first, last = mean(key, history[:2]), mean(key, history[-2:])
        assert last < 0.85 * first, f"{key} did not fall: {first:.4f} -> {last:.4f}"
    first, last = mean("score", history[4:6]), mean("score", history[-2:])
    assert last < first, f"score loss did not fall: {first:.4f} -> {last:.4f}"
    # the final checkpoint carries model, optimizer, epoch and config, and loads with weights_only
    ckpt = load_checkpoint(tmp_path / "final.pth")
    assert ckpt.extra["epoch"] == 14 and "optimizer" in ckpt.extra
    assert ckpt.make_config() == cfg


def test_learning_rate_steps_after_the_listed_epochs() -> None:
    train = small_config(10, 2).replace(train={"lr": 1e-3, "lr_steps": [4, 8], "lr_multiplier": 0.5}).train
    assert [learning_rate(train, e) for e in (1, 4, 5, 8, 9, 30)] == \
        pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    # the authors' schedule: constant
    assert learning_rate(load_config("scannet").train, 384) == 1e-3


def test_resume_continues_from_the_saved_epoch(tmp_path: Path) -> None:
    cfg = small_config(epochs=2, prepare=10).replace(train={"lr_steps": [2], "lr_multiplier": 0.1})
    ds, dl = loader(cfg, seeds=(5,))
    first = Trainer(cfg, tmp_path, device="cpu", tensorboard=False)
    first.fit(dl, progress=False)
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}

    again = Trainer(cfg.replace(train={"epochs": 3}), tmp_path, device="cpu", tensorboard=False)
    again.resume(tmp_path / "latest.pth")
    assert again.start_epoch == 3
    assert all(torch.equal(v, weights[k]) for k, v in again.model.state_dict().items())
    assert again.optimizer.state_dict()["state"], "optimizer moments restored"
    result = again.fit(dl, progress=False)
    assert [h["epoch"] for h in result.history] == [3]
    # epoch 3 comes after the step at epoch 2: the resumed run trains at lr * 0.1, as an unbroken run would
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_resume_rejects_a_weights_only_file(tmp_path: Path) -> None:
    from pointgroup_ros.model.checkpoint import CheckpointError, save_checkpoint

    cfg = small_config(epochs=1, prepare=1)
    trainer = Trainer(cfg, tmp_path, device="cpu", tensorboard=False)
    save_checkpoint(tmp_path / "weights.pth", trainer.model, cfg)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        trainer.resume(tmp_path / "weights.pth")


def test_initialize_fine_tunes_from_weights_with_a_fresh_optimizer(tmp_path: Path) -> None:
    """--init: the weights of another run (here stored as half precision, like the shipped model), epoch 1,
    no optimizer state; a file of another network is refused with the keys that do not fit."""
    from pointgroup_ros.model.checkpoint import CheckpointError, save_checkpoint

    cfg = small_config(epochs=1, prepare=10)
    source = Trainer(cfg, tmp_path / "a", device="cpu", tensorboard=False)
    source.model.half()
    save_checkpoint(tmp_path / "half.pth", source.model, cfg)
    source.model.float()

    tuned = Trainer(cfg, tmp_path / "b", device="cpu", tensorboard=False)
    tuned.initialize(tmp_path / "half.pth")
    assert tuned.start_epoch == 1 and not tuned.optimizer.state_dict()["state"]
    for key, value in tuned.model.state_dict().items():
        assert value.dtype == source.model.state_dict()[key].dtype
        assert torch.allclose(value.float(), source.model.state_dict()[key].float(), rtol=1e-3, atol=1e-3), key
    ds, dl = loader(cfg, seeds=(5,))
    assert tuned.fit(dl, progress=False).epochs_run == 1

    other = Trainer(cfg.replace(model={"widths": [16, 32]}), tmp_path / "c", device="cpu", tensorboard=False)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        other.initialize(tmp_path / "half.pth")


def test_train_command_refuses_init_with_resume_and_a_missing_init_file(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    from pointgroup_ros.cli import main

    base = ["train", "--config", "synthetic", "--data", "synthetic", "--scenes", "2", "--out", str(tmp_path / "run")]
    assert main(base + ["--resume", "a.pth", "--init", "b.pth"]) == 2
    assert "exclude each other" in caplog.text
    assert main(base + ["--init", str(tmp_path / "missing.pth")]) == 2
    assert "missing.pth" in caplog.text
    assert not (tmp_path / "run" / "final.pth").exists()
