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


# ---- camera views mixed with the rooms (train.camera_views) --------------------------------------------------

@pytest.fixture(scope="module")
def with_views() -> SyntheticDataset:
    return SyntheticDataset([7, 8], DATA, train=True, seed=0, camera_views=2)


def _normals(xyz: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    _, nb = cKDTree(xyz).query(xyz, k=20)
    local = xyz[nb] - xyz[nb].mean(axis=1, keepdims=True)
    return np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))[1][:, :, 0]


def test_views_come_after_the_rooms_in_order(with_views) -> None:
    assert len(with_views) == 6 and with_views.scene_seeds == [7, 8]
    assert [with_views.locate(i) for i in range(6)] == [(0, None), (1, None), (0, 0), (0, 1), (1, 0), (1, 1)]
    assert [with_views.load(i).name for i in range(6)] == [
        "synthetic_000007", "synthetic_000008", "synthetic_000007_view00", "synthetic_000007_view01",
        "synthetic_000008_view00", "synthetic_000008_view01"]
    with pytest.raises(IndexError):
        with_views[6]


def test_room_copies_come_first_each_augmented_on_its_own() -> None:
    ds = SyntheticDataset([7, 8], DATA, train=True, seed=0, camera_views=1, room_copies=2)
    assert len(ds) == 6
    assert [ds.locate(i) for i in range(6)] == [(0, None), (1, None), (0, None), (1, None), (0, 0), (1, 0)]
    assert ds.load(2) is ds.load(0) and ds.load(4).name == "synthetic_000007_view00"
    first, copy = ds[0], ds[2]  # the same room, two draws of the augmentation
    assert len(first.xyz) == len(copy.xyz) and not np.allclose(first.xyz, copy.xyz)
    np.testing.assert_array_equal(np.sort(first.instance), np.sort(copy.instance))
    with pytest.raises(ValueError, match="room_copies"):
        SyntheticDataset([7], DATA, train=True, room_copies=0)


def test_views_off_is_the_dataset_of_rooms(with_views) -> None:
    rooms = SyntheticDataset([7, 8], DATA, train=True, seed=0)
    assert len(rooms) == 2 and rooms.camera_views == 0
    for i in range(2):  # the rooms keep their items and augmentation draws whatever camera_views is
        a, b = rooms[i], with_views[i]
        np.testing.assert_array_equal(a.xyz, b.xyz)
        np.testing.assert_array_equal(a.instance, b.instance)
        np.testing.assert_array_equal(rooms.load(i).xyz, generate_scene(7 + i).xyz)
    with pytest.raises(IndexError):
        rooms[2]
    with pytest.raises(ValueError, match="camera_views"):
        SyntheticDataset([7], DATA, train=True, camera_views=-1)


def test_views_are_z_up_partial_and_centred(with_views) -> None:
    for i in range(2, 6):
        view = with_views.load(i)
        room = with_views.load(with_views.locate(i)[0])
        assert 2000 < view.num_points < room.num_points  # a part of the room, at the 2 cm voxel
        np.testing.assert_allclose(view.xyz.mean(0), 0.0, atol=1e-4)
        xyz = view.xyz.astype(np.float64)
        normals = np.abs(_normals(xyz)[:, 2])
        floor, wall = view.semantic == 0, view.semantic == 1
        assert floor.sum() > 200 and wall.sum() > 200
        # the floor is flat and at the bottom, the walls stand upright
        assert np.median(normals[floor]) > 0.95 and np.median(normals[wall]) < 0.2
        assert xyz[floor, 2].std() < 0.02
        assert np.percentile(xyz[floor, 2], 50) - xyz[:, 2].min() < 0.03
        assert np.ptp(xyz[wall, 2]) > 0.5


def test_view_labels_are_the_rooms(with_views) -> None:
    for i in range(2, 6):
        view, room = with_views.load(i), with_views.load(with_views.locate(i)[0])
        assert view.semantic is not None and view.instance is not None
        assert view.semantic.min() >= 0  # every rendered pixel shows a labelled sample
        stuff = np.isin(view.semantic, DATA.stuff_classes)
        assert (view.instance[stuff] == -100).all() and (view.instance[~stuff] >= 0).all()
        ids = np.unique(view.instance[view.instance >= 0])
        assert len(ids) >= 2 and set(ids.tolist()) <= set(room.instance[room.instance >= 0].tolist())
        for k in ids:  # an object keeps its room class
            assert set(view.semantic[view.instance == k].tolist()) == set(room.semantic[room.instance == k].tolist())
        # a view sees an object where the room has it: each id's points lie near the room's points of that id,
        # up to the unknown yaw and shift of base_link (compared through heights above the floor)
        floor_v = np.median(view.xyz[view.semantic == 0, 2])
        floor_r = np.median(room.xyz[room.semantic == 0, 2])
        for k in ids:
            top_v = view.xyz[view.instance == k, 2].max() - floor_v
            top_r = room.xyz[room.instance == k, 2].max() - floor_r
            assert top_v <= top_r + 0.05


def test_views_are_deterministic_and_independent_of_the_count(with_views) -> None:
    again = SyntheticDataset([7, 8], DATA, train=True, seed=0, camera_views=1)
    assert len(again) == 4
    first, twice = with_views.load(4), again.load(3)  # view 0 of room 8 in both
    assert first.name == twice.name
    np.testing.assert_array_equal(first.xyz, twice.xyz)
    np.testing.assert_array_equal(first.rgb, twice.rgb)
    np.testing.assert_array_equal(first.instance, twice.instance)
    assert with_views.load(4) is first  # kept in memory
    assert not np.array_equal(with_views.load(2).xyz[:100], with_views.load(3).xyz[:100])
    np.testing.assert_array_equal(with_views[3].xyz, with_views[3].xyz)  # augmentation seeded per item


def test_collate_mixes_a_room_and_a_view(with_views) -> None:
    room, view = with_views[0], with_views[2]
    b = collate([room, view])
    assert b.batch_size == 2 and len(b.xyz) == len(room.xyz) + len(view.xyz)
    assert view.num_instances == len(np.unique(view.instance[view.instance >= 0]))  # relabelled 0..I-1
    assert set(b.instance[b.batch_idx == 1].tolist()) - {-100} == set(
        range(room.num_instances, room.num_instances + view.num_instances))


def test_views_keep_every_point_with_voxel_zero() -> None:
    raw = SyntheticDataset([7], DATA, train=False, camera_views=1, view_voxel=0.0).load(1)
    down = SyntheticDataset([7], DATA, train=False, camera_views=1).load(1)
    assert raw.num_points > 2 * down.num_points
