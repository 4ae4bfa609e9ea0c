"""CPU seconds (user and kernel) and context switches of whole processes, from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcCpu:
    user_s: float = 0.0
    sys_s: float = 0.0
    switches: int = 0

    def __sub__(self, other: ProcCpu) -> ProcCpu:
        return ProcCpu(
            self.user_s - other.user_s, self.sys_s - other.sys_s, self.switches - other.switches
        )

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def sample(pids: list[int]) -> ProcCpu:
    """User and kernel CPU seconds and context switches, summed over `pids` (all their
    threads); a process that is gone counts 0."""
    user = system = 0.0
    switches = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
        switches += _switches(pid)
    return ProcCpu(user, system, switches)


def _switches(pid: int) -> int:
    """Context switches (voluntary + forced) of every thread of a process."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[-1])
    return total


def this_process() -> ProcCpu:
    """User and kernel CPU seconds of this process (the benchmark's client threads)."""
    t = os.times()
    return ProcCpu(t.user, t.system, 0)
