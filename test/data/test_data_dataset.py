"""Datasets and collate: PointBatch shapes and dtypes, instance ids unique across the batch, seeding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pointgroup_ros.config import load_config
from pointgroup_ros.data import (DataError, FolderDataset, Scene, SceneListDataset, SyntheticDataset, collate,
                                 generate_scene, save_scene)
from pointgroup_ros.types import PointBatch

DATA = load_config("synthetic").data


@pytest.fixture(scope="module")
def synthetic() -> SyntheticDataset:
    return SyntheticDataset(range(3), DATA, train=True, seed=0)


def test_collate_shapes_dtypes_and_unique_instances(synthetic) -> None:
    samples = [synthetic[i] for i in range(3)]
    b = collate(samples)
    assert isinstance(b, PointBatch) and b.batch_size == 3
    n = sum(len(s.xyz) for s in samples)
    for t, dtype, shape in ((b.xyz, torch.float32, (n, 3)), (b.rgb, torch.float32, (n, 3)),
                            (b.voxel_xyz, torch.float32, (n, 3)), (b.batch_idx, torch.int64, (n,)),
                            (b.semantic, torch.int64, (n,)), (b.instance, torch.int64, (n,))):
        assert t.dtype == dtype and tuple(t.shape) == shape
    np.testing.assert_array_equal(torch.bincount(b.batch_idx).numpy(), [len(s.xyz) for s in samples])
    assert b.rgb.abs().max() < 1.6
    total = sum(s.num_instances for s in samples)
    ids = [set(b.instance[(b.batch_idx == i) & (b.instance >= 0)].tolist()) for i in range(3)]
    assert set().union(*ids) == set(range(total))
    assert all(ids[i].isdisjoint(ids[j]) for i in range(3) for j in range(i + 1, 3))
    stuff = (b.semantic == 0) | (b.semantic == 1)
    assert (b.instance[stuff] == -100).all()
    # scene 1's ids are its own ids shifted by scene 0's count
    first = samples[1].instance
    np.testing.assert_array_equal(b.instance[b.batch_idx == 1].numpy(),
                                  np.where(first >= 0, first + samples[0].num_instances, -100))


def test_dataloader_and_epochs(synthetic) -> None:
    loader = DataLoader(synthetic, batch_size=2, collate_fn=collate, shuffle=False)
    batches = list(loader)
    assert [x.batch_size for x in batches] == [2, 1]
    again = [synthetic[0].xyz for _ in range(2)]
    np.testing.assert_array_equal(*again)  # same seed, epoch and index: the same draw
    synthetic.set_epoch(1)
    assert not np.allclose(synthetic[0].xyz, again[0])
    synthetic.set_epoch(0)
    other_seed = SyntheticDataset(range(3), DATA, train=True, seed=1)
    assert not np.allclose(other_seed[0].xyz, again[0])
    with pytest.raises(IndexError):
        synthetic[3]


def test_folder_dataset_validation_mode(tmp_path) -> None:
    scenes = [generate_scene(s) for s in (20, 21)]
    for s in scenes:
        save_scene(s, tmp_path / f"{s.name}.npz")
    ds = FolderDataset(tmp_path, DATA, train=False, cache=True)
    assert len(ds) == 2 and ds.load(1).name == "synthetic_000021"
    b = SceneListDataset.collate([ds[0], ds[1]])
    np.testing.assert_array_equal(b.xyz.numpy(), np.concatenate([s.xyz for s in scenes]))
    np.testing.assert_allclose(b.voxel_xyz.numpy(), b.xyz.numpy() * DATA.scale, rtol=1e-6)
    with pytest.raises(DataError, match="no such folder"):
        FolderDataset(tmp_path / "absent", DATA, train=True)


def test_bad_scenes_and_batches() -> None:
    rng = np.random.default_rng(0)
    bad = Scene(rng.normal(size=(10, 3)), np.zeros((10, 3)), np.full(10, 9), np.full(10, -100), "bad")
    with pytest.raises(DataError, match="bad: semantic label 9 is out of range for 7 classes"):
        SceneListDataset([bad], DATA, train=False)[0]
    unlabelled = SceneListDataset([Scene(bad.xyz, bad.rgb, name="u")], DATA, train=True, seed=0)[0]
    assert unlabelled.semantic is None
    assert collate([unlabelled]).semantic is None
    labelled = SceneListDataset([generate_scene(0)], DATA, train=False)[0]
    with pytest.raises(DataError, match="mixes labelled and unlabelled"):
        collate([labelled, unlabelled])
    with pytest.raises(DataError, match="empty batch"):
        collate([])
