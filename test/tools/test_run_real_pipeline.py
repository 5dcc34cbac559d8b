"""`pointgroup-ros run` with the real pipeline (the shipped demo model, CPU) on the real recordings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointgroup_ros.cli import main
from pointgroup_ros.cloud_io import read_cloud

OUTPUTS = {"/pointgroup/labeled_points", "/pointgroup/detections", "/pointgroup/markers", "/pointgroup/instances"}


def _field(msg: object, name: str, dtype: str) -> np.ndarray:
    """One field of a PointCloud2 (rosbags message) as an (N,) array."""
    field = next(f for f in msg.fields if f.name == name)  # type: ignore[attr-defined]
    n = msg.width * msg.height  # type: ignore[attr-defined]
    return np.ndarray((n,), dtype, buffer=np.asarray(msg.data, np.uint8), offset=field.offset,  # type: ignore[attr-defined]
                      strides=(msg.point_step,))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_real_bag_through_the_real_pipeline(realdata: Path, tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader

    from pointgroup_ros.ros.cloud import decode_cloud

    out = tmp_path / "segmented"
    assert main(["run", str(realdata / "bags" / "watercan_ros1.bag"), "--out", str(out), "--device", "cpu",
                 "--no-progress"]) == 0
    with AnyReader([out]) as reader:
        assert OUTPUTS <= {c.topic for c in reader.connections}
        msgs = {c.topic: reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                if c.topic in OUTPUTS}
    msg = msgs["/pointgroup/labeled_points"]
    assert decode_cloud(msg).num_points == 13_966
    label, instance = _field(msg, "label", "<u4"), _field(msg, "instance", "<i4")
    assert label.max() <= 7  # 7 classes, 7 = no class
    instances = msgs["/pointgroup/instances"]
    assert len(msgs["/pointgroup/detections"].detections) == len(instances.instances)
    for inst in instances.instances:  # every instance's points carry an instance id in the labeled cloud
        assert np.all(instance[np.asarray(inst.point_indices)] >= 0)


@pytest.mark.slow
def test_real_capture_through_the_real_pipeline(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "pcl" / "table_scene_mug_stereo_textured.pcd"
    out = tmp_path / "mug.npz"
    assert main(["run", str(src), "--out", str(out), "--device", "cpu", "--max-points", "60000"]) == 0
    cloud = read_cloud(src)
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["xyz"], cloud.xyz)  # organized, point for point
        semantic = z["semantic"]
    assert np.all(semantic[~cloud.valid] == -1)
    assert np.all(semantic[cloud.valid] >= 0)  # subsampled, yet every valid point has a class
    assert (tmp_path / "mug.png").is_file()
