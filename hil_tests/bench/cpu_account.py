"""CPU accounting for the benchmarks: pinning to one core, CPU seconds of processes and threads."""

from __future__ import annotations

import os
from pathlib import Path


def one_core() -> str:
    """Pin this process to one CPU for the in-process figures (the pipeline's commit thread
    then shares it: only the fsync wait overlaps, not CPU work). Returns what was done."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError) as exc:
        return f"not pinned ({exc})"
    return f"pinned to CPU {cpu}"


def unpin() -> None:
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    except (AttributeError, OSError):
        pass


def ticks(stat: str) -> float:
    """User + system CPU seconds from a /proc .../stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (all its threads); 0 if unknown or gone."""
    if pid is None:
        return 0.0
    try:
        return ticks(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0.0


def loop_thread_cpu_s(pid: int) -> float:
    """CPU seconds of a process's main thread (the gateway's asyncio loop)."""
    try:
        return ticks(Path(f"/proc/{pid}/task/{pid}/stat").read_text())
    except OSError:
        return 0.0
