"""When the simulated day really started, and why it started late (pure; report.json
`day_start`, the terminal summary and report.html).

The day is planned to start at `--start-hour`; the rig starts it only once the grid is ready
(every meter's second boot done and a critical load's relay closed, grid.SimGrid.start) and the
feeder model is built, at the next 15-minute boundary after that. A slow bring-up thus moves
the whole span later (it still lasts `--hours`): the report says so instead of showing a day
that silently began at 00:15 rather than 00:00.
"""

from __future__ import annotations

import time
from typing import Any


def record(
    planned: float,
    began: float,
    started: float,
    grid_ready: float,
    physics_ready: float,
    idle_real_s: float,
) -> dict[str, Any]:
    """The day start's figures (virtual epoch seconds; `began`: the boundary the rig waited
    for, `started`: the clock when the physics began, a poll later)."""
    late = began > planned
    if not late:
        why = ""
    elif grid_ready > planned:
        why = "the grid was not ready (meters' second boots, the critical relay closed)"
    else:
        why = "the feeder model (pandapower) was not built"
    return {
        "planned": planned,
        "started": round(started, 1),
        "late": late,
        "late_s": round(max(0.0, started - planned), 1),
        "grid_ready": round(grid_ready, 1),
        "feeder_ready": round(physics_ready, 1),
        "waited_real_s": round(idle_real_s, 2),  # the rig idle until the start it chose
        "why_late": why,
    }


def line(ds: dict[str, Any]) -> str:
    """One sentence for the terminal and the HTML report."""
    if not ds:
        return "day start: not recorded"
    at, planned = _hhmm(ds["started"]), _hhmm(ds["planned"])
    if not ds.get("late"):
        return f"day started on time at {at} UTC (planned {planned})"
    minutes = ds["late_s"] / 60
    return (f"day started LATE at {at} UTC, {minutes:.0f} min after the planned {planned}: "
            f"{ds['why_late']} by then (grid ready at {_hhmm(ds['grid_ready'])}); the span "
            "runs from the actual start")  # fmt: skip


def _hhmm(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))
