"""`pointgroup-ros run` on recordings cut short by a power loss: MCAP files without summary or footer that end in
a torn chunk (rosbags' writer, uncompressed and zstd chunks; Foxglove's writer, lz4 chunks with CRCs), a bag
folder never closed (no metadata.yaml), a .db3 with its last pages missing, and files with nothing readable.
Every complete message is segmented and copied, the loss is reported, the input is never changed."""
from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from bag_builders import (CLOUD, TF, Item, chunk_spans, cloud, cut_copy, digest, output_qos, read_output,
                          tf_message, transform, transient_local, write_bag, write_mcap_lz4)
from ros_testing_fakes import FakePipeline

from pointgroup_ros.ros.bags import open_bag
from pointgroup_ros.ros.cloud import decode_cloud
from pointgroup_ros.ros.typestore import make_typestore
from pointgroup_ros.tools import run as runner

T0 = 1_700_000_000_000_000_000
POINTS = 30_000  # 480 kB per cloud: rosbags' writer closes a chunk past 1 MiB, so 3 clouds per chunk
N_CLOUDS = 7  # chunks: [tf_static, 3 x (tf, cloud)], [3 x (tf, cloud)], [tf, cloud]
TOTAL = 1 + 2 * N_CLOUDS
TOPIC = "/camera/points"
LABELED = "/pointgroup/labeled_points"


def _stamp(i: int) -> int:
    return T0 + (i + 1) * 100_000_000


def _items() -> list[Item]:
    items = [Item("/tf_static", TF, T0, tf_message(
        transform("base_link", "camera_optical_frame", T0, (0.0, 0.0, 1.0), (-0.5, 0.5, -0.5, 0.5))))]
    for i in range(N_CLOUDS):
        ns = _stamp(i)
        items.append(Item("/tf", TF, ns, tf_message(transform("odom", "base_link", ns, (0.1 * i, 0, 0), (0, 0, 0, 1)))))
        items.append(Item(TOPIC, CLOUD, ns, cloud("camera_optical_frame", ns, POINTS, seed=i)))
    return items


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Intact bags (read-only templates): rosbags MCAP (plain and zstd chunks), sqlite3, Foxglove lz4 MCAP."""
    root = tmp_path_factory.mktemp("recordings")
    items = _items()
    qos = {"/tf_static": transient_local()}
    from rosbags.rosbag2.metadata import dump_qos_v8

    return {"mcap": write_bag(root / "plain", items, qos=qos),
            "zstd": write_bag(root / "zstd", items, zstd_chunks=True, qos=qos),
            "db3": write_bag(root / "sqlite", items, storage="sqlite3", qos=qos),
            "lz4": write_mcap_lz4(root / "lz4.mcap", items, qos_text={"/tf_static": dump_qos_v8(transient_local())})}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args([*argv, "--no-progress"])


def _run(src: Path, out: Path, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    """Run the command; (exit code, every log line)."""
    before = digest(src)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        rc = runner.run(_args(str(src), "--out", str(out)), pipeline=FakePipeline(cell=0.5))
    assert digest(src) == before  # the input is only read
    assert not any(r.exc_info for r in caplog.records)  # never a traceback
    return rc, "\n".join(r.getMessage() for r in caplog.records)


def _check_output(out: Path, frames: int) -> None:
    """The output holds the first `frames` clouds' outputs, each at its input's time, and /tf_static kept its
    transient-local QoS (viewers that join late still get it)."""
    got = read_output(out)
    assert [t for t, _ in got[LABELED]] == [_stamp(i) for i in range(frames)]
    assert [t for t, _ in got[TOPIC]] == [_stamp(i) for i in range(len(got[TOPIC]))]
    assert len(got[TOPIC]) >= frames
    for name in ("detections", "markers", "instances"):
        assert len(got[f"/pointgroup/{name}"]) == frames
    first = decode_cloud(got[LABELED][0][1])
    assert first.num_points == POINTS
    from rosbags.interfaces import QosDurability

    assert got["/tf_static"] and got["/tf"]
    (profile,) = output_qos(out)["/tf_static"]
    assert profile.durability == QosDurability.TRANSIENT_LOCAL


def _cut_in_chunk(src: Path, dst: Path, chunk: int, fraction: float) -> tuple[Path, int]:
    spans, _ = chunk_spans(src)
    start, length = spans[chunk]
    return cut_copy(src, dst, start + int(fraction * length)), start


@pytest.mark.parametrize("kind", ["mcap", "zstd"])
def test_torn_last_chunk_keeps_every_complete_message(recordings, tmp_path, caplog, kind):
    # 75% of the second chunk is on disk: its first two (tf, cloud) pairs and the third tf are complete
    src, start = _cut_in_chunk(recordings[kind], tmp_path / "in" / "rec.mcap", 1, 0.75)
    rc, text = _run(src, tmp_path / "out", caplog)
    assert rc == 0
    _check_output(tmp_path / "out", frames=3 + 2)
    assert f"read {7 + 5} of ~? message(s)" in text
    assert f"torn Chunk record after byte {start}" in text
    assert "5 message(s) recovered from the start of that chunk" in text
    assert "5 cloud(s) segmented" in text and "input incomplete" in text


def test_chunk_torn_in_its_header_is_lost(recordings, tmp_path, caplog):
    src, start = _cut_in_chunk(recordings["mcap"], tmp_path / "in" / "rec.mcap", 2, 0.0)
    src = cut_copy(recordings["mcap"], src, start + 20)  # inside the chunk record's fixed fields
    rc, text = _run(src, tmp_path / "out", caplog)
    assert rc == 0
    _check_output(tmp_path / "out", frames=6)
    assert f"read {1 + 12} of ~? message(s)" in text and "1 chunk lost" in text


def test_cut_at_the_footer_loses_nothing(recordings, tmp_path, caplog):
    _, summary_start = chunk_spans(recordings["zstd"])
    for cut in (summary_start, summary_start + 50):  # without summary; with a torn summary
        src = cut_copy(recordings["zstd"], tmp_path / "in" / "rec.mcap", cut)
        out = tmp_path / f"out{cut}"
        rc, text = _run(src, out, caplog)
        assert rc == 0
        _check_output(out, frames=N_CLOUDS)
        assert f"read {TOTAL} of ~? message(s)" in text and "no message lost" in text


def test_unclosed_bag_folder_and_metadata_count(recordings, tmp_path, caplog):
    # a folder as rosbag2 leaves it when the recording never closed: the storage file, no metadata.yaml
    folder = tmp_path / "unclosed"
    _cut_in_chunk(recordings["mcap"], folder / "unclosed_0.mcap", 2, 0.5)
    rc, text = _run(folder, tmp_path / "out", caplog)
    assert rc == 0
    _check_output(tmp_path / "out", frames=6)
    # with a metadata.yaml that names the file, its message count tells how much was lost
    shutil.copy(recordings["mcap"].parent / "metadata.yaml", folder / "metadata.yaml")
    (folder / "unclosed_0.mcap").rename(folder / recordings["mcap"].name)
    rc, text = _run(folder, tmp_path / "out2", caplog)
    assert rc == 0 and f"read {TOTAL - 1} of {TOTAL} message(s)" in text  # the last cloud is lost


def test_lz4_chunks_with_crcs_and_a_damaged_chunk(recordings, tmp_path, caplog):
    src = recordings["lz4"]
    spans, _ = chunk_spans(src)
    assert len(spans) >= 4
    data = bytearray(src.read_bytes()[:spans[3][0] + spans[3][1] // 2])  # torn in the fourth chunk
    start, length = spans[1]
    data[start + length // 2] ^= 0xFF  # a flipped byte in the second chunk: its CRC no longer matches
    damaged = tmp_path / "in" / "lz4.mcap"
    damaged.parent.mkdir()
    damaged.write_bytes(bytes(data))
    with open_bag(damaged, make_typestore("humble")) as bag:
        kept = [t for c, t, _ in bag.messages() if c.topic == TOPIC]
        lost = bag.loss.describe()
    assert "1 damaged chunk(s) skipped (chunk at byte" in lost and "crc" in lost.lower()
    assert "torn Chunk record" in lost
    rc, text = _run(damaged, tmp_path / "out", caplog)
    assert rc == 0
    got = read_output(tmp_path / "out")
    assert [t for t, _ in got[LABELED]] == kept
    assert kept[:2] == [_stamp(0), _stamp(1)] and _stamp(2) not in kept and _stamp(4) in kept
    from rosbags.interfaces import QosDurability

    assert output_qos(tmp_path / "out")["/tf_static"][0].durability == QosDurability.TRANSIENT_LOCAL


def test_sqlite_bag_with_missing_pages(recordings, tmp_path, caplog):
    full = recordings["db3"]
    src = cut_copy(full, tmp_path / "in" / "rec.db3", int(full.stat().st_size * 0.6))
    rc, text = _run(src, tmp_path / "out", caplog)
    assert rc == 0
    got = read_output(tmp_path / "out")
    frames = len(got[LABELED])
    assert 1 <= frames < N_CLOUDS
    _check_output(tmp_path / "out", frames=frames)
    read = len(got[TOPIC]) + len(got["/tf"]) + len(got["/tf_static"])
    assert f"read {read} of {TOTAL} message(s)" in text and "the database is torn after message id" in text


@pytest.mark.parametrize("what", ["mcap-header-only", "mcap-garbage", "mcap-empty", "db3-first-page"])
def test_nothing_readable_is_one_line(recordings, tmp_path, caplog, what):
    if what == "mcap-header-only":
        src = cut_copy(recordings["mcap"], tmp_path / "in" / "rec.mcap", 8 + 9 + 4 + 4 + 4 + len("rosbags-"))
        src = cut_copy(recordings["mcap"], src, 8 + 9 + int.from_bytes(src.read_bytes()[9:17], "little"))
        expected = "not one complete message"
    elif what == "mcap-garbage":
        src = tmp_path / "in" / "rec.mcap"
        src.parent.mkdir()
        src.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
        expected = "not an MCAP file"
    elif what == "mcap-empty":
        src = tmp_path / "in" / "rec.mcap"
        src.parent.mkdir()
        src.write_bytes(b"")
        expected = "shorter than the MCAP magic"
    else:
        src = cut_copy(recordings["db3"], tmp_path / "in" / "rec.db3", 5000)
        expected = "the topics cannot be read"
    rc, text = _run(src, tmp_path / "out", caplog)
    assert rc == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0] and expected in errors[0], errors
    assert str(src) in errors[0] and ("try" in errors[0] or "check" in errors[0])
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


# ---------------------------------------------------------------------------------------------- real bags

def test_real_mcap_cut_short(realdata, tmp_path, caplog):
    real = realdata / "bags" / "watercan_ros2_mcap" / "watercan_ros2_mcap.mcap"
    spans, summary_start = chunk_spans(real)
    src = cut_copy(real, tmp_path / "in" / "watercan.mcap", summary_start)  # no summary, no footer
    rc, text = _run(src, tmp_path / "out", caplog)
    assert rc == 0 and "1 cloud(s) segmented" in text and "no message lost" in text
    got = read_output(tmp_path / "out")
    assert decode_cloud(got[LABELED][0][1]).num_points == 13_966
    # its only chunk torn: the schema and channel are on disk, the one cloud is not
    start, length = spans[0]
    src = cut_copy(real, tmp_path / "in" / "watercan.mcap", start + length // 2)
    rc, text = _run(src, tmp_path / "out2", caplog)
    assert rc == 1 and "not one complete message" in text and "mcap recover" in text


def test_real_sqlite_cut_short(realdata, tmp_path, caplog):
    # its one message is the last thing in the file (pages 6-116 of 116): losing the last page loses it, but the
    # topics table and the b-tree's message count are still readable, so the error says what was there
    real = realdata / "bags" / "watercan_ros2_sqlite3" / "watercan_ros2_sqlite3.db3"
    src = cut_copy(real, tmp_path / "in" / "watercan.db3", real.stat().st_size - 4096)
    rc, text = _run(src, tmp_path / "out", caplog)
    assert rc == 1 and "not one complete message" in text and "read 0 of 1 message(s)" in text
    src = cut_copy(real, tmp_path / "in" / "watercan.db3", real.stat().st_size)  # whole again: read as before
    rc, text = _run(src, tmp_path / "out", caplog)
    assert rc == 0 and "1 cloud(s) segmented" in text and "input incomplete" not in text
