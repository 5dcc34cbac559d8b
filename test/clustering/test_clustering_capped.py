"""grouping.max_neighbours: the authors' capped ball query (first K neighbours by index), emulated on the CPU."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from clustering_cases import random_cloud

from pointgroup_ros.clustering import cluster_points, dual_set_proposals, reference_cluster
from pointgroup_ros.config import Config, ConfigError, GroupingConfig

R = 0.1  # radius of the hand-made cases


def line(*x: float) -> np.ndarray:
    return np.array([[v, 0.0, 0.0] for v in x], np.float32)


def both(xyz, labels, min_points, k, ignore=(), scenes=None):
    """The vectorised emulation, checked against the literal transcription of the authors' code."""
    got = cluster_points(xyz, labels, R, min_points, ignore, max_neighbours=k, scenes=scenes)
    assert np.array_equal(got, reference_cluster(xyz, labels, R, min_points, ignore, max_neighbours=k, scenes=scenes))
    return got.tolist()


# A blob of five mutual neighbours (0..4) and a tail point 5 whose only other neighbour is 4 (x 0.1035 - 0.004
# = 0.0995 < R; 0.1035 - 0.003 > R). With K = 3 every blob list is [0, 1, 2] (4's too: 5 comes after 0, 1, 2).
BLOB_AND_TAIL = line(0.0, 0.001, 0.002, 0.003, 0.004, 0.1035)


def test_cap_splits_a_blob_and_strands_the_tail():
    labels = np.zeros(6, np.int64)
    # seed 0 reaches 0, 1, 2 only; seeds 3 and 4 list only visited points; 5 lists 4 (visited) and itself
    assert both(BLOB_AND_TAIL, labels, 1, 3) == [0, 0, 0, 1, 2, 3]
    assert both(BLOB_AND_TAIL, labels, 2, 3) == [0, 0, 0, -1, -1, -1]
    assert cluster_points(BLOB_AND_TAIL, labels, R, 2).tolist() == [0] * 6  # exact: one component
    assert both(BLOB_AND_TAIL, labels, 2, 6) == [0] * 6  # no list capped: the exact components
    # K = 5: only 4's list is capped ([0..4], without 5). 5 lists 4, but lists are directed: seed 0 never
    # reaches 5, and seed 5 finds 4 visited: a cluster of one, dropped
    assert both(BLOB_AND_TAIL, labels, 2, 5) == [0, 0, 0, 0, 0, -1]
    assert both(BLOB_AND_TAIL, labels, 1, 5) == [0, 0, 0, 0, 0, 1]


def test_directed_lists_reach_through_a_low_index_tail():
    # Tail 0 left of the blob 1..5 (x decreasing), its only other neighbour is 5 (0.0995 away). K = 3:
    # 0 lists [0, 5]; 5 lists [0, 1, 2]; 1..4 list [1, 2, 3].
    xyz = line(-0.0995, 0.004, 0.003, 0.002, 0.001, 0.0)
    labels = np.zeros(6, np.int64)
    # from seed 0: 5 (0's list), then 1 and 2 (5's list), then 3 (1's list); 4 is in nobody's list but its own
    assert both(xyz, labels, 1, 3) == [0, 0, 0, 0, 1, 0]
    assert both(xyz, labels, 5, 3) == [0, 0, 0, 0, -1, 0]
    assert cluster_points(xyz, labels, R, 5).tolist() == [0] * 6


def test_a_dropped_cluster_keeps_its_points_visited():
    # Seed 0 reaches {0, 1, 2} (< min_points: dropped); 3's list is [0, 1, 2] -> {3}: the blob is lost entirely
    labels = np.zeros(6, np.int64)
    assert both(BLOB_AND_TAIL, labels, 4, 3) == [-1] * 6
    assert cluster_points(BLOB_AND_TAIL, labels, R, 4).tolist() == [0] * 6


def test_other_classes_fill_the_lists_but_ignored_points_do_not():
    # Four points at one spot: 0, 1 of class 1 and 2, 3 of class 0. K = 2: 2 and 3 list [0, 1] (class 1 only)
    xyz = np.zeros((4, 3), np.float32)
    labels = np.array([1, 1, 0, 0])
    assert both(xyz, labels, 1, 2) == [0, 0, 1, 2]
    assert cluster_points(xyz, labels, R, 1).tolist() == [0, 0, 1, 1]
    # ignored points (stuff) are not in the ball query at all, as in the authors' code (thing points only)
    assert both(xyz, labels, 1, 2, ignore=(1,)) == [-1, -1, 0, 0]
    # non-finite points neither
    xyz[0] = np.nan
    # every list is [1, 2]: 1 alone (2 is of another class), 2 alone, and 3 reaches only 2, visited already
    assert both(xyz, labels, 1, 2) == [-1, 0, 1, 2]


def test_scenes_keep_the_lists_apart():
    # Two scenes on top of each other, labels kept apart (scene * classes + class); K = 2
    xyz = np.zeros((4, 3), np.float32)
    labels = np.array([0, 0, 10, 10])
    assert both(xyz, labels, 1, 2) == [0, 0, 1, 2]  # one scene: 2 and 3 list [0, 1]
    scenes = np.array([0, 0, 1, 1])
    assert both(xyz, labels, 1, 2, scenes=scenes) == [0, 0, 1, 1]


@pytest.mark.parametrize("seed", range(60))
def test_matches_the_literal_transcription(seed):
    xyz, labels, radius, min_points = random_cloud(seed, n_max=160, dtype=np.float64 if seed % 5 == 0 else np.float32)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 12))
    ignore = (2,) if seed % 2 else ()
    scenes = rng.integers(0, 2, len(xyz)) if seed % 3 == 1 else None
    if seed % 7 == 3:
        xyz[rng.integers(0, len(xyz), 3)] = np.nan
    got = cluster_points(xyz, labels, radius, min_points, ignore, max_neighbours=k, scenes=scenes)
    assert got.dtype == np.int64
    assert np.array_equal(got, reference_cluster(xyz, labels, radius, min_points, ignore, max_neighbours=k,
                                                 scenes=scenes))


def test_random_cases_do_exercise_the_cap():
    changed = 0
    for seed in range(30):
        xyz, labels, radius, min_points = random_cloud(seed, n_max=160)
        capped = cluster_points(xyz, labels, radius, min_points, max_neighbours=3)
        changed += not np.array_equal(capped, cluster_points(xyz, labels, radius, min_points))
    assert changed >= 10


@pytest.mark.parametrize("seed", range(40))
def test_equals_exact_when_no_list_is_capped(seed):
    xyz, labels, radius, min_points = random_cloud(seed)
    ignore = (1,) if seed % 2 else ()
    exact = cluster_points(xyz, labels, radius, min_points, ignore)
    assert np.array_equal(cluster_points(xyz, labels, radius, min_points, ignore, max_neighbours=len(xyz)), exact)


def blob(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """n points within one radius (0.03): every list is [0 .. k-1]; seed 0 takes them, the rest are alone."""
    xyz = (np.random.default_rng(0).random((n, 3)) * 0.01).astype(np.float32)
    return xyz, np.concatenate([np.zeros(k, np.int64), np.arange(1, n - k + 1)])


def test_dense_blob_at_the_authors_cap(monkeypatch):
    from pointgroup_ros.clustering import capped

    xyz, expected = blob(1500, 1000)
    labels = np.zeros(len(xyz), np.int64)
    monkeypatch.setattr(capped, "_PAIRS_AT_ONCE", 1 << 40)  # all pairs at once, capped lists sorted
    assert np.array_equal(cluster_points(xyz, labels, 0.03, 1, max_neighbours=1000), expected)
    assert np.array_equal(cluster_points(xyz, labels, 0.03, 50, max_neighbours=1000), np.where(expected == 0, 0, -1))


def test_bounded_memory_route(monkeypatch):
    from pointgroup_ros.clustering import capped  # sorted lists per point in chunks, cut at once

    monkeypatch.setattr(capped, "_PAIRS_AT_ONCE", 0)
    monkeypatch.setattr(capped, "_PAIRS_PER_CHUNK", 5000)
    xyz, expected = blob(400, 100)
    assert np.array_equal(cluster_points(xyz, np.zeros(400, np.int64), 0.03, 1, max_neighbours=100), expected)
    for seed in range(10):
        cloud, lab, radius, min_points = random_cloud(seed, n_max=160)
        assert np.array_equal(cluster_points(cloud, lab, radius, min_points, max_neighbours=4),
                              reference_cluster(cloud, lab, radius, min_points, max_neighbours=4))


def test_torch_cpu_in_torch_out():
    xyz = torch.from_numpy(BLOB_AND_TAIL.astype(np.float64))
    got = cluster_points(xyz, torch.zeros(6, dtype=torch.int32), R, 1, max_neighbours=3,
                         scenes=torch.zeros(6, dtype=torch.int64))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int64 and got.tolist() == [0, 0, 0, 1, 2, 3]


def test_argument_errors():
    labels = np.zeros(6, np.int64)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="max_neighbours"):
            cluster_points(BLOB_AND_TAIL, labels, R, 1, max_neighbours=bad)
    with pytest.raises(ValueError, match="scenes"):
        cluster_points(BLOB_AND_TAIL, labels, R, 1, max_neighbours=3, scenes=np.zeros(5, np.int64))
    with pytest.raises(TypeError):
        cluster_points(torch.from_numpy(BLOB_AND_TAIL), torch.from_numpy(labels), R, 1, max_neighbours=3,
                       scenes=np.zeros(6, np.int64))
    with pytest.raises(ValueError, match="radius"):
        cluster_points(BLOB_AND_TAIL, labels, -1.0, 1, max_neighbours=3)


def test_dual_set_proposals_capped():
    g = torch.Generator().manual_seed(0)
    n = 2000
    xyz = torch.rand(n, 3, generator=g)
    semantic = torch.randint(0, 4, (n,), generator=g)
    batch = (torch.arange(n) >= n // 2).to(torch.int64)
    centres = torch.rand(3, 3, generator=g)
    offsets = (centres[torch.randint(0, 3, (n,), generator=g)] - xyz) * 0.97  # dense Q blobs
    kw = dict(batch_idx=batch, num_classes=4, return_set=True)
    exact, exact_q = dual_set_proposals(xyz, offsets, semantic, (0,), 0.05, 5, **kw)
    same, same_q = dual_set_proposals(xyz, offsets, semantic, (0,), 0.05, 5, max_neighbours=n, **kw)
    assert torch.equal(exact.point_idx, same.point_idx) and torch.equal(exact.offsets, same.offsets)
    assert torch.equal(exact_q, same_q)
    props, from_q = dual_set_proposals(xyz, offsets, semantic, (0,), 0.05, 5, max_neighbours=20, **kw)
    label = torch.where(semantic == 0, -1, batch * 4 + semantic)
    p = cluster_points(xyz, label, 0.05, 5, (-1,), max_neighbours=20, scenes=batch)
    q = cluster_points(xyz + offsets, label, 0.05, 5, (-1,), max_neighbours=20, scenes=batch)
    num_p = int(p.max()) + 1
    members = [props.point_idx[a:b].tolist() for a, b in zip(props.offsets[:-1], props.offsets[1:])]
    expected = ([torch.nonzero(p == c).squeeze(1).tolist() for c in range(num_p)]
                + [torch.nonzero(q == c).squeeze(1).tolist() for c in range(int(q.max()) + 1)])
    assert members == expected
    assert from_q.tolist() == [False] * num_p + [True] * (len(expected) - num_p)
    assert sum(map(len, members)) < sum(exact.offsets[1:] - exact.offsets[:-1]).item()  # the cap loses points


@pytest.mark.gpu
def test_cuda_inputs_run_on_the_host_and_come_back(caplog):
    from pointgroup_ros.clustering import capped

    capped._noted_host_copy = False
    xyz = torch.from_numpy(BLOB_AND_TAIL).cuda()
    with caplog.at_level(logging.INFO, logger="pointgroup_ros.clustering.capped"):
        got = cluster_points(xyz, torch.zeros(6, dtype=torch.int64, device="cuda"), R, 1, max_neighbours=3)
        cluster_points(xyz, torch.zeros(6, dtype=torch.int64, device="cuda"), R, 1, max_neighbours=3)
    assert got.is_cuda and got.tolist() == [0, 0, 0, 1, 2, 3]
    assert sum("runs on the CPU" in r.getMessage() for r in caplog.records) == 1
    import cupy

    got = cluster_points(cupy.asarray(BLOB_AND_TAIL), cupy.zeros(6, dtype=cupy.int64), R, 1, max_neighbours=3)
    assert isinstance(got, cupy.ndarray) and got.tolist() == [0, 0, 0, 1, 2, 3]


def test_config_field():
    assert GroupingConfig().max_neighbours == 0
    cfg = Config().replace(grouping={"max_neighbours": 1000})
    assert cfg.grouping.max_neighbours == 1000
    for bad, what in ((-1, "must be an integer >= 0"), (2.5, "must be an integer"), (True, "must be an integer")):
        with pytest.raises(ConfigError, match=f"grouping.max_neighbours: {what}"):
            Config().replace(grouping={"max_neighbours": bad})
    from pointgroup_ros.tools.train import apply_overrides

    assert apply_overrides(Config(), ["grouping.max_neighbours=1000"]).grouping.max_neighbours == 1000
    assert Config().to_dict()["grouping"]["max_neighbours"] == 0
