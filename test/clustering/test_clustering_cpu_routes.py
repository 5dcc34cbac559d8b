"""Every route of the CPU path gives the same clusters: dense (fine-cell groups) and sparse mode, the latter
with cell pairs expanded at once or with point-by-point ranges in chunks of any size (cpu.py)."""
from __future__ import annotations

import numpy as np
import pytest
from clustering_cases import SCANNET_SCENES, load_scan, random_cloud

import pointgroup_ros.clustering.cpu as cpu
from pointgroup_ros.clustering import cluster_points, reference_cluster

# (_SPARSE_PAIRS_PER_POINT, _POINT_MAJOR_SQUARES_PER_POINT, _POINT_CHUNK)
ROUTES = {
    "dense": (0, 1.5, 1 << 16),
    "sparse, cell pairs": (10**12, 10**12, 1 << 16),
    "sparse, point ranges": (10**12, 0, 1 << 16),
    "sparse, point ranges, chunks of 7 pairs": (10**12, 0, 7),
    "sparse, point ranges, one point per chunk": (10**12, 0, 1),
}


def use_route(monkeypatch, route: str) -> None:
    sparse, point_major, chunk = ROUTES[route]
    monkeypatch.setattr(cpu, "_SPARSE_PAIRS_PER_POINT", sparse)
    monkeypatch.setattr(cpu, "_POINT_MAJOR_SQUARES_PER_POINT", point_major)
    monkeypatch.setattr(cpu, "_POINT_CHUNK", chunk)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("seed", range(0, 48, 2))
def test_routes_match_reference(monkeypatch, route, seed):
    use_route(monkeypatch, route)
    dtype = np.float64 if seed % 3 == 0 else np.float32
    xyz, labels, radius, min_points = random_cloud(seed, dtype=dtype)
    if seed % 4 == 0:
        xyz[: len(xyz) // 4] += dtype(1e9)  # clamped cells at the edge of the key's range
    if seed % 6 == 2:
        xyz[::5, 1] = np.nan
    ignore = (1,) if seed % 8 < 4 else ()
    assert np.array_equal(cluster_points(xyz, labels, radius, min_points, ignore),
                          reference_cluster(xyz, labels, radius, min_points, ignore))


def test_point_ranges_cover_every_forward_neighbour(monkeypatch):
    """A lattice at the radius' scale: neighbours in every forward row, several points per coarse cell."""
    use_route(monkeypatch, "sparse, point ranges, chunks of 7 pairs")
    g = np.stack(np.meshgrid(*[np.arange(9)] * 3, indexing="ij"), -1).reshape(-1, 3)
    xyz = (g * 0.0099).astype(np.float32)
    labels = np.arange(len(g)) % 2
    for radius in (0.01, 0.0141, 0.0172, 0.02):
        assert np.array_equal(cluster_points(xyz, labels, radius, 1), reference_cluster(xyz, labels, radius, 1))


@pytest.mark.parametrize("radius", [0.02, 0.05])
def test_routes_agree_on_a_scannet_scan(monkeypatch, realdata, radius):
    xyz, semantic, offsets = load_scan(realdata, SCANNET_SCENES[1])
    ignore = (0, 1, -100)
    for coords in (xyz, xyz + np.float32(0.9) * offsets):
        want = cluster_points(coords, semantic, radius, 50, ignore)
        for route in ROUTES:
            with monkeypatch.context() as m:
                use_route(m, route)
                if route.endswith("one point per chunk"):
                    continue  # (slow on 80k points; the random clouds cover it)
                assert np.array_equal(cluster_points(coords, semantic, radius, 50, ignore), want), route
