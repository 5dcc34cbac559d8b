"""Synthetic room generator: determinism, classes, touching same-class objects, objects against walls."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from pointgroup_ros.config import load_config
from pointgroup_ros.data import SYNTHETIC_CLASSES, SYNTHETIC_STUFF, SyntheticConfig, generate_scene

SEEDS = tuple(range(8))


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(s) for s in SEEDS]


def test_deterministic_by_seed() -> None:
    a, b, c = generate_scene(11), generate_scene(11), generate_scene(12)
    for key in ("xyz", "rgb", "semantic", "instance"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.num_points != c.num_points or not np.array_equal(a.xyz, c.xyz)
    assert a.name == "synthetic_000011"


def test_preset_matches_generator_classes() -> None:
    cfg = load_config("synthetic")
    assert cfg.data.class_names == SYNTHETIC_CLASSES
    assert cfg.data.stuff_classes == SYNTHETIC_STUFF


def test_labels_and_classes(scenes) -> None:
    seen = set()
    for s in scenes:
        assert 10_000 <= s.num_points <= 60_000
        assert s.xyz.dtype == np.float32 and s.rgb.dtype == np.uint8
        np.testing.assert_allclose(s.xyz.mean(0), 0.0, atol=1e-3)
        sem, ins = s.semantic, s.instance
        assert sem.min() >= 0 and sem.max() < len(SYNTHETIC_CLASSES)  # every point labelled
        stuff = np.isin(sem, SYNTHETIC_STUFF)
        assert (ins[stuff] == -100).all() and (ins[~stuff] >= 0).all()
        assert set(np.unique(ins[~stuff])) == set(range(s.num_instances))  # contiguous
        for i in range(s.num_instances):  # one class per instance
            assert np.unique(sem[ins == i]).size == 1
        assert {0, 1} <= set(np.unique(sem).tolist())
        assert len(set(np.unique(sem).tolist()) - {0, 1}) >= 2
        assert np.bincount(ins[ins >= 0]).min() >= 100  # every object big enough to be an instance
        seen |= set(np.unique(sem).tolist())
    assert seen == set(range(len(SYNTHETIC_CLASSES)))


def _instance_trees(s):
    return {i: cKDTree(s.xyz[s.instance == i]) for i in range(s.num_instances)}


def test_touching_same_class_objects_and_objects_against_walls(scenes) -> None:
    for s in scenes:
        trees = _instance_trees(s)
        cls = [int(s.semantic[s.instance == i][0]) for i in range(s.num_instances)]
        touching = []
        for i in range(s.num_instances):
            for j in range(i + 1, s.num_instances):
                if cls[i] == cls[j]:
                    d, _ = trees[j].query(s.xyz[s.instance == i], k=1)
                    if d.min() < 0.03:
                        touching.append((i, j))
        assert touching, f"{s.name}: no two same-class objects closer than 3 cm"
        wall = cKDTree(s.xyz[s.semantic == 1])
        against = [i for i in range(s.num_instances) if wall.query(s.xyz[s.instance == i])[0].min() < 0.03]
        assert against, f"{s.name}: no object against a wall"


def test_density_is_at_voxel_scale(scenes) -> None:
    d, _ = cKDTree(scenes[0].xyz).query(scenes[0].xyz, k=2)
    assert 0.01 < np.median(d[:, 1]) < 0.025  # ~2 cm spacing: grouping radius 3 cm connects surfaces


def test_parameters_change_size_and_are_checked() -> None:
    small = generate_scene(5, SyntheticConfig(room_size=(2.0, 2.0), extra_groups=(0, 0), spacing=0.03))
    assert small.num_points < generate_scene(5).num_points
    with pytest.raises(ValueError, match="room_size"):
        SyntheticConfig(room_size=(3.0, 2.0))


def test_grouping_on_p_with_true_classes_merges_touching_objects_only(scenes) -> None:
    """Connected components of same-class thing points at r = 3 cm: every object is one piece, and at least
    one piece holds two objects (what grouping on P alone does, and what the offsets must undo)."""
    for s in scenes[:3]:
        m = s.instance >= 0
        x, sem, ins = s.xyz[m], s.semantic[m], s.instance[m]
        pairs = cKDTree(x).query_pairs(0.03, output_type="ndarray")
        pairs = pairs[sem[pairs[:, 0]] == sem[pairs[:, 1]]]
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(x), len(x)))
        _, comp = connected_components(graph, directed=False)
        for i in range(s.num_instances):
            assert np.bincount(comp[ins == i]).max() >= 0.95 * (ins == i).sum(), f"{s.name}: object {i} in pieces"
        objects_per_piece = [np.unique(ins[comp == c]).size for c in np.unique(comp)]
        assert max(objects_per_piece) >= 2
