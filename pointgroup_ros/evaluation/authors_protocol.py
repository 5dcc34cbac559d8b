"""The test-time transform of the authors' test.py (dvlab-research/PointGroup), reproduced draw for draw.

Their test.py seeds numpy's global generator with test_seed 567 once, then loads the sorted scenes through a
DataLoader with test_workers = 16, whose collate function (testMerge -> dataAugment(xyz, jitter=False,
flip=True, rot=True)) draws, per scene:

    m = I;  m[0][0] *= randint(0, 2) * 2 - 1        (flip x with probability 1/2)
    theta = rand() * 2 pi;  m = m @ [[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]]   (rotation about z)
    xyz' = xyz @ m                                   (row vectors, float64)

The draws run in the workers, not in the main process: the 16 forked workers each start from the same numpy
state (seed 567; PyTorch 1.1, their version, did not reseed numpy in workers and the test loader has no
worker_init_fn), and the loader hands scene k to worker k mod 16 as that worker's (k // 16)-th scene. So
scene k gets the (k // 16)-th flip and angle of a RandomState(567) stream: scenes 0-15 share one transform,
16-31 the next, and so on. (PyTorch >= 1.9 seeds numpy in each worker from torch's seed, so their test.py run
today draws other transforms; the published 57.1 AP50 comes from the behaviour above.)

The draws and the matrix are bit for bit theirs (numpy's legacy RandomState stream is frozen; math.cos/sin as
they call them). What follows cannot be bit for bit: the pipeline receives float32 coordinates (theirs stay
float64 until voxelization), so a point lying within float32 rounding of a voxel face may fall in the
neighbouring voxel.
"""
from __future__ import annotations

import math

import numpy as np

AUTHORS_TEST_SEED = 567  # test_seed in their config/pointgroup_run1_scannet.yaml
AUTHORS_TEST_WORKERS = 16  # test_workers there: each worker replays the same stream


def authors_test_matrix(scene_index: int, seed: int = AUTHORS_TEST_SEED,
                        workers: int = AUTHORS_TEST_WORKERS) -> np.ndarray:
    """float64 (3, 3) m such that the authors' network sees scene `scene_index` (0-based, in sorted name order)
    as xyz @ m: an optional x flip followed by a rotation about z (see the module docstring)."""
    if scene_index < 0 or workers < 1:
        raise ValueError(f"scene_index must be >= 0 and workers >= 1, got {scene_index} and {workers}")
    stream = np.random.RandomState(seed)  # legacy generator: np.random.seed(567) then np.random.randint / rand
    for _ in range(scene_index // workers + 1):  # replay the worker's earlier scenes' draws (at most ~20)
        # dtype int64 = np.random.randint's default on their Linux ('l'); the draw is the same either way
        flip = int(stream.randint(0, 2, dtype=np.int64)) * 2 - 1
        theta = stream.rand() * 2 * math.pi
    c, s = math.cos(theta), math.sin(theta)
    return np.diag([float(flip), 1.0, 1.0]) @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def authors_test_transform(xyz: np.ndarray, scene_index: int, seed: int = AUTHORS_TEST_SEED,
                           workers: int = AUTHORS_TEST_WORKERS) -> np.ndarray:
    """Scene `scene_index`'s points (N, 3) as the authors' test.py hands them to the network: float32 of
    xyz @ authors_test_matrix(...) computed in float64 (as their float32 @ float64 matmul). The points keep
    their order, so per-point ground truth and predictions need no remapping."""
    rotated = np.asarray(xyz, dtype=np.float64) @ authors_test_matrix(scene_index, seed, workers)
    return rotated.astype(np.float32)
