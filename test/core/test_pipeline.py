"""The inference pipeline: arrays in, a consistent Segmentation out, on any cloud (CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pointgroup_ros.config import GroupingConfig, PostprocessConfig, PreprocessConfig, load_config
from pointgroup_ros.pipeline import Pipeline, Segmentation, resolve_device

CFG = load_config("synthetic").replace(model={"widths": [16, 32]})
THING = 2  # 'chair' in the synthetic classes


def forced_pipeline(max_points: int = 300_000) -> Pipeline:
    """A pipeline whose heads say 'chair, no offset' everywhere: grouping then sees the true geometry."""
    pipe = Pipeline(CFG, None, device="cpu", max_points=max_points, warmup=False)
    with torch.no_grad():
        pipe.model.linear.weight.zero_()
        pipe.model.linear.bias.copy_(torch.nn.functional.one_hot(torch.tensor(THING), CFG.data.num_classes) * 10.0)
        pipe.model.offset_linear.weight.zero_()
        pipe.model.offset_linear.bias.zero_()
    return pipe


def blobs(seed: int = 0, per_blob: int = 400, count: int = 4) -> np.ndarray:
    """count dense balls (1.5 cm spacing scale) 1 m apart: separate clusters at r = 3 cm."""
    rng = np.random.default_rng(seed)
    centres = np.arange(count)[:, None] * np.array([1.0, 0.0, 0.0])
    pts = centres[:, None, :] + rng.normal(0, 0.05, (count, per_blob, 3))
    return pts.reshape(-1, 3).astype(np.float32)


def check_consistent(seg: Segmentation, n: int) -> None:
    assert seg.semantic.shape == (n,) and seg.instance.shape == (n,)
    m = seg.num_instances
    assert seg.instance_offsets.shape == (m + 1,) and seg.instance_offsets[0] == 0
    assert seg.instance_offsets[-1] == seg.instance_point_idx.shape[0]
    assert np.all(np.diff(seg.instance_score) <= 0), "sorted by descending score"
    for k in range(m):
        members = seg.instance_points(k)
        assert np.all(np.diff(members) > 0)
        # every point labelled k is a member of k (a member may belong to a better-scoring instance)
        assert np.isin(np.flatnonzero(seg.instance == k), members).all()
        assert np.all(seg.instance[members] <= k) and np.all(seg.instance[members] >= 0)


def test_groups_separate_objects_and_fills_every_field() -> None:
    pipe = forced_pipeline()
    xyz = blobs()
    seg = pipe.segment(xyz, None, grouping=GroupingConfig(radius=0.03, min_points=50, sets="p"),
                       postprocess=PostprocessConfig(score_threshold=0.0, nms_iou_threshold=0.3,
                                                     min_instance_points=100))
    check_consistent(seg, xyz.shape[0])
    assert set(np.unique(seg.semantic)) == {THING}
    assert seg.num_instances >= 4  # the four balls (their sparse fringes may add small extra clusters)
    big = [k for k in range(seg.num_instances) if len(seg.instance_points(k)) > 300]
    assert len(big) == 4
    centres = sorted(float(xyz[seg.instance_points(k), 0].mean()) for k in big)
    assert np.allclose(centres, [0, 1, 2, 3], atol=0.05)
    for k in big:
        pts = xyz[seg.instance_points(k)]
        assert np.allclose(seg.box_min[k], pts.min(0)) and np.allclose(seg.box_max[k], pts.max(0))
    assert seg.instance_class_names()[0] == "chair"
    assert set(seg.timings_ms) == {"prepare", "downsample", "voxelize", "backbone", "grouping", "scorenet", "nms", "assemble"}


def test_thresholds_apply_per_call() -> None:
    pipe = forced_pipeline()
    xyz = blobs()
    loose = pipe.segment(xyz, grouping=GroupingConfig(min_points=50, sets="p"),
                         postprocess=PostprocessConfig(0.0, 0.3, 100))
    none = pipe.segment(xyz, grouping=GroupingConfig(min_points=50, sets="p"),
                        postprocess=PostprocessConfig(0.0, 0.3, 10_000))
    assert loose.num_instances >= 4 and none.num_instances == 0
    assert np.all(none.instance == -1)
    wide = pipe.segment(xyz, grouping=GroupingConfig(radius=0.9, min_points=50, sets="p"),
                        postprocess=PostprocessConfig(0.0, 0.3, 100))
    assert wide.num_instances == 1 and len(wide.instance_points(0)) == xyz.shape[0]


def test_invalid_points_get_no_result_and_indices_line_up() -> None:
    pipe = forced_pipeline()
    xyz = blobs()
    xyz[::7] = np.nan
    xyz[3] = np.inf
    valid = np.ones(len(xyz), bool)
    valid[10:20] = False
    seg = pipe.segment(xyz, None, valid, GroupingConfig(sets="p"), PostprocessConfig(0.0, 0.3, 100))
    check_consistent(seg, xyz.shape[0])
    bad = ~np.isfinite(xyz).all(1) | ~valid
    assert np.all(seg.semantic[bad] == -1) and np.all(seg.instance[bad] == -1)
    assert not np.isin(np.flatnonzero(bad), seg.instance_point_idx).any()
    assert np.all(seg.semantic[~bad] == THING)


def test_subsampled_cloud_gives_every_point_a_result() -> None:
    xyz = blobs(per_blob=1500)
    full = forced_pipeline().segment(xyz, grouping=GroupingConfig(sets="p"),
                                     postprocess=PostprocessConfig(0.0, 0.3, 100))
    sub = forced_pipeline(max_points=2000).segment(xyz, grouping=GroupingConfig(radius=0.06, sets="p"),
                                                   postprocess=PostprocessConfig(0.0, 0.3, 100))
    check_consistent(sub, xyz.shape[0])
    assert np.all(sub.semantic == THING)
    big = [k for k in range(sub.num_instances) if len(sub.instance_points(k)) > 1000]
    assert len(big) == 4  # each ball's members cover (nearly) all of its 1500 input points
    assert sum(len(sub.instance_points(k)) for k in big) > 0.95 * xyz.shape[0]
    assert full.num_instances >= 4


def test_empty_and_tiny_clouds() -> None:
    pipe = forced_pipeline()
    for n in (0, 1, 5):
        seg = pipe.segment(np.zeros((n, 3), np.float32))
        check_consistent(seg, n)
        assert seg.num_instances == 0
    seg = pipe.segment(np.full((10, 3), np.nan, np.float32))
    assert np.all(seg.semantic == -1)


def test_bad_input_is_named() -> None:
    pipe = forced_pipeline()
    with pytest.raises(ValueError, match=r"xyz must have shape \(N, 3\)"):
        pipe.segment(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="rgb must have shape"):
        pipe.segment(np.zeros((4, 3), np.float32), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="valid must have shape"):
        pipe.segment(np.zeros((4, 3), np.float32), valid=np.ones(5, bool))
    with pytest.raises(ValueError, match="grouping.radius"):
        pipe.segment(np.zeros((4, 3), np.float32), grouping=GroupingConfig(radius=-1.0))


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")


def voxel_keys(xyz: np.ndarray, size: float) -> np.ndarray:
    """An independent voxel id per point (the grid anchored at the minimum, as the pipeline's)."""
    coords = np.floor((xyz.astype(np.float64) - xyz.min(0)) / size).astype(np.int64)
    return np.unique(coords, axis=0, return_inverse=True)[1].reshape(-1)


def test_sensor_density_is_downsampled_to_voxels_and_every_point_gets_its_voxels_result() -> None:
    pipe = forced_pipeline()
    xyz = blobs(per_blob=4000)  # ~20 points per 2 cm voxel near the centres, like a close-up depth camera
    settings = dict(grouping=GroupingConfig(radius=0.03, min_points=50, sets="p"),
                    postprocess=PostprocessConfig(0.0, 0.3, 100))
    seg = pipe.segment(xyz, **settings)  # default: the network's 2 cm voxels
    keys = voxel_keys(xyz, 0.02)
    assert seg.network_points == keys.max() + 1 < xyz.shape[0] / 2
    check_consistent(seg, xyz.shape[0])
    # one result per voxel: points sharing a voxel share the class and the instance
    for field in (seg.semantic, seg.instance):
        per_voxel = np.full(keys.max() + 1, -2)
        per_voxel[keys] = field
        assert np.array_equal(per_voxel[keys], field)
    big = [k for k in range(seg.num_instances) if len(seg.instance_points(k)) > 3000]
    assert len(big) == 4
    raw = pipe.segment(xyz, preprocess=PreprocessConfig(voxel_size=0.0), **settings)
    assert raw.network_points == xyz.shape[0]
    raw_big = [k for k in range(raw.num_instances) if len(raw.instance_points(k)) > 3000]
    # the same four balls, the same points (up to their sparse fringes)
    for k in big:
        members = set(seg.instance_points(k).tolist())
        best = max(len(members & set(raw.instance_points(j).tolist())) / len(members | set(raw.instance_points(j).tolist()))
                   for j in raw_big)
        assert best > 0.95
    coarse = pipe.segment(xyz, preprocess=PreprocessConfig(voxel_size=0.05), **settings)
    assert coarse.network_points == voxel_keys(xyz, 0.05).max() + 1


def test_range_limits_drop_near_and_far_points() -> None:
    pipe = forced_pipeline()
    xyz = blobs()  # balls at x = 0, 1, 2, 3
    seg = pipe.segment(xyz, grouping=GroupingConfig(sets="p"), postprocess=PostprocessConfig(0.0, 0.3, 50),
                       preprocess=PreprocessConfig(min_range=0.5, max_range=2.5))
    r = np.linalg.norm(xyz, axis=1)
    out = (r < 0.5) | (r > 2.5)
    assert out.sum() > 700
    assert np.all(seg.semantic[out] == -1) and np.all(seg.instance[out] == -1)
    assert np.all(seg.semantic[~out] == THING)
    centres = sorted(float(xyz[seg.instance_points(k), 0].mean()) for k in range(seg.num_instances)
                     if len(seg.instance_points(k)) > 300)
    assert np.allclose(centres, [1, 2], atol=0.05)


def test_a_cloud_with_nothing_left_is_an_empty_frame_in_the_requested_frame() -> None:
    pipe = forced_pipeline()
    xyz = blobs()
    gravity = np.eye(4)
    for seg in (pipe.segment(np.zeros((0, 3), np.float32), gravity_transform=gravity),
                pipe.segment(xyz, preprocess=PreprocessConfig(min_range=10.0), gravity_transform=gravity)):
        assert seg.num_instances == 0 and seg.frame == "gravity" and seg.network_points == 0
        assert np.all(seg.semantic == -1) and seg.box_min.shape == (0, 3)


def test_a_gravity_transform_must_be_rigid() -> None:
    pipe = forced_pipeline()
    with pytest.raises(ValueError, match="gravity_transform"):
        pipe.segment(blobs(), gravity_transform=np.diag([2.0, 1.0, 1.0, 1.0]))


def test_close_drops_the_model() -> None:
    """The node's lifecycle cleanup: close() gives the model up (on a GPU also torch's and CuPy's cached memory);
    the weights are really gone (no reference left), and segment() refuses afterwards."""
    import gc
    import weakref

    pipe = Pipeline(CFG, None, device="cpu", warmup=False)
    assert pipe.segment(blobs()).num_instances >= 0
    model = weakref.ref(pipe.model)
    pipe.close()
    gc.collect()
    assert model() is None
    with pytest.raises(RuntimeError, match="closed"):
        pipe.segment(blobs())
