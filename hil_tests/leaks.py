"""Gateway-side processes a test module left running (a leak): found and killed at module end.

A channel node, gateway, ledger or emulated board that outlives the module that started it keeps
eating the CI machine's two cores for the rest of the run and makes later tests slow and flaky.
`hil_tests/conftest.py` calls `reap_leaked()` after the last test of each module (its module
fixtures are torn down by then); session fixtures start no such process.
"""

from __future__ import annotations

import os
import signal
import time

# command-line parts of the processes the rig starts for the gateway side
MARKERS = ("gateway", "sgrid")


def _command_line(pid: int) -> str:
    """The command line of `pid`, waiting out an exec in progress.

    Between the moment a child's exec lets `Popen` return and the moment the kernel has laid out
    the new program's arguments, /proc/<pid>/cmdline reads empty; a child just started would
    otherwise be missed. Living user processes always have a command line, so an empty one is
    read again for up to a second."""
    deadline = time.monotonic() + 1.0
    while True:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
        if raw or time.monotonic() > deadline:
            return raw.replace(b"\0", b" ").decode(errors="replace").strip()
        time.sleep(0.001)


def _children() -> list[tuple[int, int, str]]:
    """(pid, pgid, command line) of this process's living (not zombie) children."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[1]) != me:
                continue
            cmd = _command_line(int(entry))
        except (OSError, IndexError, ValueError):
            continue
        out.append((int(entry), int(fields[2]), cmd))
    return out


def leaked() -> list[tuple[int, int, str]]:
    return [c for c in _children() if any(m in c[2] for m in MARKERS)]


def reap_leaked() -> list[str]:
    """SIGKILL every leaked process (its whole group when it leads one); their command lines."""
    found = leaked()
    for pid, pgid, _cmd in found:
        try:
            if pgid == pid:
                os.killpg(pgid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid, _pgid, _cmd in found:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # a Popen object reaps it
            pass
    return [cmd for _pid, _pgid, cmd in found]
