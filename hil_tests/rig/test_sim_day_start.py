"""The day's real start is recorded (hil_tests/rig/sim/day_start.py): on time, or late and why."""

from __future__ import annotations

from hil_tests.rig.sim import day_start

PLAN = 1_782_000_000.0  # 00:00:00 UTC of a day (the planned start)


def test_a_bring_up_done_before_the_planned_start_starts_the_day_on_time():
    ds = day_start.record(PLAN, PLAN, PLAN + 14.0, PLAN - 300, PLAN - 120, 2.5)
    assert not ds["late"] and ds["why_late"] == "" and ds["waited_real_s"] == 2.5
    assert day_start.line(ds).startswith("day started on time at")


def test_a_grid_ready_after_the_planned_start_is_a_late_start_with_its_reason():
    began = PLAN + 900  # the next 15-minute boundary after the grid was ready
    ds = day_start.record(PLAN, began, began + 7.0, PLAN + 420, PLAN + 440, 0.0)
    assert ds["late"] and ds["late_s"] == 907.0
    assert "meters' second boots" in ds["why_late"]
    line = day_start.line(ds)
    assert "LATE" in line and "15 min after the planned" in line
    feeder_late = day_start.record(PLAN, began, began, PLAN - 10, PLAN + 30, 0.0)
    assert "feeder model" in feeder_late["why_late"]


def test_a_result_without_a_day_start_says_so():
    assert day_start.line({}) == "day start: not recorded"
