"""Which configuration a pipeline or the node runs: from the weights unless the user names one, and a clear
error when the two do not fit each other."""
from __future__ import annotations

import pytest
import torch

from pointgroup_ros.config import SCANNET20_CLASSES, load_config
from pointgroup_ros.model.checkpoint import CheckpointError, save_checkpoint
from pointgroup_ros.pipeline import DEMO_WEIGHTS, build_model, resolve_model

pytestmark = pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="the shipped demo model is missing")


@pytest.fixture(scope="module")
def scannet_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A (randomly initialised) ScanNet-shaped model saved with its configuration, and as a bare state_dict
    (the authors' files carry no configuration)."""
    folder = tmp_path_factory.mktemp("weights")
    cfg = load_config("scannet")
    model = build_model(cfg, None)
    with_config = folder / "scannet_model.pth"
    save_checkpoint(with_config, model, config=cfg)
    bare = folder / "bare_state_dict.pth"
    torch.save(model.state_dict(), bare)
    return with_config, bare


def test_nothing_named_gives_the_demo_model_and_its_configuration() -> None:
    cfg, ckpt = resolve_model(None, None)
    assert ckpt is not None and ckpt.path == DEMO_WEIGHTS
    assert cfg.data.class_names == load_config("synthetic").data.class_names
    assert cfg.grouping == load_config("synthetic").grouping


def test_weights_alone_bring_their_configuration(scannet_weights) -> None:
    with_config, bare = scannet_weights
    for path in (with_config, bare):  # stored configuration, or the preset the weights fit
        cfg, ckpt = resolve_model("", str(path))
        assert ckpt is not None and cfg.data.class_names == SCANNET20_CLASSES
        assert cfg.data.dataset == "scannet"


def test_a_configuration_that_does_not_fit_the_weights_says_which_one_they_need(scannet_weights) -> None:
    with_config, bare = scannet_weights
    for path in (with_config, bare):
        with pytest.raises(CheckpointError, match=r"does not fit configuration 'synthetic'.*needs config 'scannet'"):
            resolve_model("synthetic", str(path))
    cfg, _ = resolve_model("scannet", str(bare))  # named and fitting: fine
    assert cfg.data.num_classes == 20


def test_weights_that_fit_no_preset_are_described(tmp_path) -> None:
    cfg = load_config("synthetic").replace(model={"widths": [16, 32]}, data={"class_names": list("abcde"),
                                                                             "stuff_classes": [0]})
    path = tmp_path / "odd.pth"
    torch.save(build_model(cfg, None).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"fits none of the presets.*5 classes and feature width 16"):
        resolve_model(None, str(path))
    named, _ = resolve_model(cfg, str(path))  # the user's own configuration fits
    assert named.data.num_classes == 5
