"""The node's rate bookkeeping without ROS: RateWindow / Throughput on a fake monotonic clock, and the problems
/diagnostics reports from them (throughput_problems), with hand-computed cases."""
from __future__ import annotations

import threading

import pytest
from ros_testing_fakes import FakeClock

from pointgroup_ros.ros.processing import RateWindow, Throughput, throughput_problems

TOPIC = "/robot/front/pointgroup/input/points"


def _problems(throughput: Throughput, stale_s: float = 5.0, listened: bool = True, dropped_total: int = 0) -> list[str]:
    return throughput_problems(throughput.read(), TOPIC, stale_s, listened, dropped_total)


def test_ten_clouds_in_two_seconds_are_five_hz():
    clock = FakeClock()
    window = RateWindow(10.0, clock)
    for _ in range(10):
        clock.advance(0.2)
        window.tick()
    reading = window.read()
    # the window is not full yet: 10 events over the 2 s since the start
    assert reading.count == 10 and reading.rate_hz == pytest.approx(5.0)
    assert reading.since_last_s == 0.0 and reading.silent_s == 0.0


def test_the_window_slides_and_the_rate_decays():
    clock = FakeClock()
    window = RateWindow(10.0, clock)
    for _ in range(80):  # 4 Hz for 20 s (0.25 s steps are exact in binary)
        clock.advance(0.25)
        window.tick()
    assert (window.read().count, window.read().rate_hz) == (40, 4.0)  # only the last 10 s count
    clock.advance(5.0)  # the input stops: half the window is empty
    reading = window.read()
    assert (reading.count, reading.rate_hz, reading.since_last_s, reading.silent_s) == (20, 2.0, 5.0, 5.0)
    clock.advance(5.0)  # an event exactly window_s old has left the window
    assert (window.read().count, window.read().rate_hz) == (0, 0.0)


def test_no_event_yet_counts_silence_from_the_restart():
    clock = FakeClock()
    window = RateWindow(10.0, clock)
    assert window.read().rate_hz == 0.0  # no time has passed: no division by zero
    clock.advance(3.0)
    window.restart()  # the model is ready
    clock.advance(6.0)
    reading = window.read()
    assert (reading.count, reading.since_last_s, reading.silent_s) == (0, None, 6.0)
    window.tick()
    clock.advance(1.0)
    reading = window.read()
    assert (reading.count, reading.since_last_s, reading.silent_s) == (1, 1.0, 1.0)
    assert reading.rate_hz == pytest.approx(1 / 7.0)  # one cloud in the 7 s since the restart


def test_restart_forgets_the_rate_but_keeps_the_last_event():
    clock = FakeClock()
    window = RateWindow(10.0, clock)
    for _ in range(8):  # clouds while the model loads
        clock.advance(0.5)
        window.tick()
    clock.advance(2.0)
    window.restart()
    clock.advance(2.0)
    reading = window.read()
    assert (reading.count, reading.rate_hz) == (0, 0.0)
    assert reading.since_last_s == 4.0  # the cloud before the restart did arrive...
    assert reading.silent_s == 2.0  # ...but a silent input is counted from the restart


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="window_s"):
        RateWindow(0.0)


def test_nothing_for_six_seconds_with_stale_five_warns():
    clock = FakeClock()
    throughput = Throughput(10.0, clock)
    throughput.restart()
    clock.advance(4.9)
    assert _problems(throughput) == []
    clock.advance(1.1)
    assert _problems(throughput) == [f"no cloud on {TOPIC} for 6.0 s (none yet)"]
    throughput.cloud_received(replaced=False)  # the camera comes back: the warning clears
    throughput.frame_published()
    assert _problems(throughput) == []
    clock.advance(12.0)  # and stops again
    assert _problems(throughput) == [f"no cloud on {TOPIC} for 12.0 s"]
    assert dict(throughput.read().key_values())["seconds since last cloud"] == "12.0"


def test_stale_zero_never_warns():
    clock = FakeClock()
    throughput = Throughput(10.0, clock)
    clock.advance(3600.0)
    assert _problems(throughput, stale_s=0.0) == []
    assert dict(throughput.read().key_values())["seconds since last cloud"] == "never"


def _steady(throughput: Throughput, clock: FakeClock, seconds: float, in_hz: float, out_every: int) -> None:
    """Clouds at in_hz for `seconds`; every out_every-th is published, the others dropped (replaced)."""
    for i in range(int(seconds * in_hz)):
        clock.advance(1.0 / in_hz)
        published = i % out_every == 0
        throughput.cloud_received(replaced=not published)
        if published:
            throughput.frame_published()


def test_output_well_below_the_input_warns_about_dropped_frames():
    clock = FakeClock()
    throughput = Throughput(10.0, clock)
    _steady(throughput, clock, 20.0, in_hz=8.0, out_every=4)  # 8 Hz in, 2 Hz out, 6 Hz dropped
    reading = throughput.read()
    assert (reading.clouds.rate_hz, reading.published.rate_hz, reading.dropped.count) == (8.0, 2.0, 60)
    (problem,) = _problems(throughput, dropped_total=120)
    assert problem == ("frames are dropped: processing is slower than the input (output 2.0 Hz, input 8.0 Hz; "
                       "frames dropped (newer frame arrived): 60 in the last 10 s, 120 in all)")
    values = dict(reading.key_values())
    assert values["input rate Hz (last 10 s)"] == "8.00"
    assert values["output rate Hz (last 10 s, frames published)"] == "2.00"
    assert values["frames dropped (last 10 s)"] == "60"
    # nobody listens: frames are not segmented on purpose, no warning
    assert _problems(throughput, listened=False) == []


@pytest.mark.parametrize("in_hz,out_every", [(8.0, 2), (0.5, 4)])
def test_no_drop_warning_at_half_the_input_or_a_slow_input(in_hz, out_every):
    clock = FakeClock()
    throughput = Throughput(10.0, clock)
    # 8 Hz in, 4 Hz out: exactly half is not "well below"; 0.5 Hz in: too slow to compare
    _steady(throughput, clock, 40.0, in_hz=in_hz, out_every=out_every)
    assert _problems(throughput, stale_s=0.0) == []


def test_an_output_below_the_input_without_drops_is_not_blamed_on_speed():
    """E.g. frames skipped for a missing transform, or subscribers that just came: no drops, no speed warning."""
    clock = FakeClock()
    throughput = Throughput(10.0, clock)
    for _ in range(50):
        clock.advance(0.2)
        throughput.cloud_received(replaced=False)
    assert throughput.read().clouds.rate_hz == 5.0 and throughput.read().published.rate_hz == 0.0
    assert _problems(throughput) == []


def test_rate_window_is_thread_safe():
    clock = FakeClock()
    window = RateWindow(1e9, clock)  # nothing leaves the window
    threads = [threading.Thread(target=lambda: [window.tick() for _ in range(2000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    reads = [window.read().count for _ in range(200)]
    for thread in threads:
        thread.join()
    assert window.read().count == 8000 and reads == sorted(reads)
