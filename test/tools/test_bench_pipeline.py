"""`pointgroup-ros bench --stages pipeline`: a whole frame through the node's FrameProcessor, timed per stage."""
from __future__ import annotations

from pointgroup_ros.cli import main


def test_time_frame_gives_every_stage_and_the_runs():
    from pointgroup_ros.ros.cloud import encode_cloud
    from pointgroup_ros.tools.bench import frame_processor, tiled_rooms, time_frame

    pipe, processor, header = frame_processor(None, None, "cpu")
    xyz, rgb = tiled_rooms(4000)
    runs, medians = time_frame(processor, encode_cloud(processor.kit, header, xyz, rgb), repeat=3)
    assert len(runs) == 3 and set(medians) == set(runs[0].timings_ms)
    assert medians["total"] >= medians["pipeline"] > 0
    assert all(sorted(r.timings_ms[k] for r in runs)[1] == v for k, v in medians.items())


def test_bench_pipeline_section_table(capsys):
    assert main(["bench", "--stages", "pipeline", "--sizes", "4000", "--repeat", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| scene | points | network points | device |" in out and "| rooms 4k | 4000 |" in out
    assert "peak RSS MB" in out and "instances" in out
