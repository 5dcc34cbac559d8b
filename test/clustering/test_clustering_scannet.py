"""cluster_points on the real ScanNet scans: original coordinates P and offset-shifted Q, against Algorithm 1."""
from __future__ import annotations

import numpy as np
import pytest
from clustering_cases import SCANNET_SCENES, load_scan

from pointgroup_ros.clustering import cluster_points, reference_cluster

STUFF_AND_IGNORED = (0, 1, -100)  # wall, floor, unannotated


@pytest.mark.parametrize("scene", SCANNET_SCENES)
@pytest.mark.parametrize("shift", [0.0, 0.6, 1.0])
def test_scannet_matches_reference(realdata, scene, shift):
    """shift 0: P; 1: Q with ground-truth offsets (every instance collapses onto its centroid); 0.6: between."""
    xyz, semantic, offsets = load_scan(realdata, scene)
    coords = xyz + np.float32(shift) * offsets
    for radius, min_points in ((0.03, 50), (0.05, 20)):
        got = cluster_points(coords, semantic, radius, min_points, STUFF_AND_IGNORED)
        assert np.array_equal(got, reference_cluster(coords, semantic, radius, min_points, STUFF_AND_IGNORED))
        if shift == 1.0:
            assert got.max() >= 5  # the instances are found
