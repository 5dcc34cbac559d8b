"""S3DIS preparation on hand-made Area_N/<room>/Annotations files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointgroup_ros.config import S3DIS_CLASSES
from pointgroup_ros.data import DataError
from pointgroup_ros.data.s3dis import find_s3dis_rooms, prepare_s3dis_room, read_s3dis_txt

FILES = {"ceiling_1": 3, "floor_1": 4, "wall_1": 2, "wall_2": 2, "chair_1": 5, "chair_2": 3, "table_1": 4,
         "stairs_1": 2}


def make_room(root: Path, area: str = "Area_1", room: str = "office_1", files=FILES) -> Path:
    ann = root / area / room / "Annotations"
    ann.mkdir(parents=True)
    for k, (name, n) in enumerate(sorted(files.items())):
        rows = [f"{k + 0.5 * i:.3f} {i:.3f} {k:.3f} {10 * k} {i} 200" for i in range(n)]
        (ann / f"{name}.txt").write_text("\n".join(rows) + "\n")
    (root / area / room / f"{room}.txt").write_text("")  # the unlabelled room file is not read
    return root / area / room


def test_prepare_room(tmp_path) -> None:
    room = make_room(tmp_path)
    s = prepare_s3dis_room(room)
    assert s.name == "Area_1_office_1" and s.num_points == sum(FILES.values())
    order = sorted(FILES)  # files are read in name order
    sem_of = {n: S3DIS_CLASSES.index(n.rsplit("_", 1)[0]) if n != "stairs_1" else S3DIS_CLASSES.index("clutter")
              for n in order}
    expected_sem = np.concatenate([np.full(FILES[n], sem_of[n]) for n in order])
    np.testing.assert_array_equal(s.semantic, expected_sem)
    # things (chair_1, chair_2, stairs_1 as clutter, table_1) are instances 0..3; ceiling/floor/wall -100
    inst = {"chair_1": 0, "chair_2": 1, "stairs_1": 2, "table_1": 3}
    expected_ins = np.concatenate([np.full(FILES[n], inst.get(n, -100)) for n in order])
    np.testing.assert_array_equal(s.instance, expected_ins)
    np.testing.assert_allclose(s.xyz.mean(0), 0.0, atol=1e-5)
    np.testing.assert_array_equal(s.rgb[:, 2], 200)
    assert S3DIS_CLASSES[7] == "table" and S3DIS_CLASSES[8] == "chair"


def test_stuff_classes_are_configurable(tmp_path) -> None:
    s = prepare_s3dis_room(make_room(tmp_path), stuff_classes=())
    assert s.num_instances == len(FILES)  # every file one instance


def test_find_rooms(tmp_path) -> None:
    make_room(tmp_path, "Area_1", "office_2")
    make_room(tmp_path, "Area_5", "hallway_1")
    assert [r.name for r in find_s3dis_rooms(tmp_path)] == ["office_2", "hallway_1"]
    assert [r.name for r in find_s3dis_rooms(tmp_path, areas=[5])] == ["hallway_1"]


def test_bad_inputs(tmp_path) -> None:
    room = make_room(tmp_path)
    (room / "Annotations" / "chair_2.txt").write_text("1 2 3 4 5 6\n1 2 3 4 5\n")
    with pytest.raises(DataError, match="chair_2.txt: malformed line"):
        prepare_s3dis_room(room)
    (room / "Annotations" / "chair_2.txt").write_text("1 2 3 4 5 6 7\n")
    with pytest.raises(DataError, match="chair_2.txt: each line must have 6 values"):
        read_s3dis_txt(room / "Annotations" / "chair_2.txt")
    (room / "Annotations" / "chair_2.txt").unlink()
    (room / "Annotations" / "chair.txt").write_text("1 2 3 4 5 6\n")
    with pytest.raises(DataError, match=r"chair.txt: annotation file names must be <class>_<number>.txt"):
        prepare_s3dis_room(room)
    with pytest.raises(DataError, match="Annotations: missing"):
        prepare_s3dis_room(tmp_path / "Area_1")
