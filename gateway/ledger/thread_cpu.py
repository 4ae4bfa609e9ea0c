"""CPU seconds of this process's threads, summed by role (GET /v1/stats: where the time goes).

A thread's role is its name without a trailing number ("ledger-http-worker-7" is one of the
"ledger-http-worker" threads). Linux and the BSDs give each thread a CPU clock; elsewhere the
figures are left out.
"""

from __future__ import annotations

import re
import threading
import time

_NUMBERED = re.compile(r"[-_ ]?\d+( \(.*\))?$")
PREFIX = "thread_cpu_s."


def role(name: str) -> str:
    return _NUMBERED.sub("", name) or name


def by_role() -> dict[str, float]:
    """{"thread_cpu_s.<role>": CPU seconds of the live threads of that role}."""
    clock = getattr(time, "pthread_getcpuclockid", None)
    if clock is None:
        return {}
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            seconds = time.clock_gettime(clock(thread.ident))
        except OSError:  # it ended meanwhile
            continue
        key = PREFIX + role(thread.name)
        out[key] = out.get(key, 0.0) + seconds
    return out
