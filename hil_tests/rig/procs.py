"""Child processes of the rig that never outlive it.

Every board, gateway, ledger, broker and etcd member the rig starts runs in its own process group
(`start_new_session`: a Ctrl-C at the terminal reaches the rig only, which stops its children in
order) and is registered with the reaper: one small watcher process per rig process, reading a
pipe from it. When the rig process ends in any way, SIGKILL included, the pipe closes and the
reaper terminates every group still registered (SIGTERM, SIGKILL after `GRACE_S`).

The rig itself stops on SIGINT, SIGTERM and SIGHUP whatever its parent left it
(`take_stop_signals`, first thing in its entry point): a shell script's background job (`cmd &`
without job control) starts with SIGINT ignored, and Python then keeps it ignored, so `kill -INT`
did nothing to a rig started that way (a `pytest -n 2` run itself started as such a job failed
test_procs' SIGINT case each time: its xdist workers, and their rigs, inherited the ignore).

Not PR_SET_PDEATHSIG: Linux sends it when the *thread* that forked the child ends, and the rig
starts children from worker threads, so a child would die with the thread pool that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

GRACE_S = 3.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_REAPER_CODE = f"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    op, pgid = line[:1], int(line[1:])
    if op == "+":
        groups.add(pgid)
    else:
        groups.discard(pgid)
def alive(g):  # a member that is not a zombie (those wait for init to reap them)
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/" + pid + "/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == g:
            return True
    return False
for sig in (signal.SIGTERM, signal.SIGKILL):
    for g in groups:
        try:
            os.killpg(g, sig)
        except OSError:
            pass
    deadline = time.monotonic() + {GRACE_S}
    while any(alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.05)
"""


class Reaper:
    """The watcher of this process's children (started on first use; one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd = -1  # the write end of its pipe: a bare fd, never inherited by any child
        self._owner = 0
        self.pid: int | None = None

    def _pipe(self) -> int:
        if self._fd < 0 or self._owner != os.getpid():
            r, w = os.pipe()  # both ends non-inheritable: only the reaper gets the read end
            try:
                self.pid = os.posix_spawn(
                    sys.executable,
                    [sys.executable, "-S", "-c", _REAPER_CODE],
                    dict(os.environ),
                    file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)],
                    setsid=True,  # no terminal signal reaches it: it ends at EOF only
                )
            finally:
                os.close(r)
            self._fd, self._owner = w, os.getpid()
        return self._fd

    def _send(self, line: str) -> None:
        with self._lock:
            try:
                os.write(self._pipe(), line.encode())
            except OSError:  # the reaper died: start another one next time
                self._fd = -1

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")


REAPER = Reaper()


def take_stop_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt in this (the main) thread from now on, so
    the rig stops its children in order, as at a Ctrl-C; unblocked and no longer ignored whatever
    the parent process left (an ignored or blocked disposition survives exec)."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def spawn(args: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(args, **popen)` in a new process group the reaper watches."""
    proc = subprocess.Popen(args, start_new_session=True, **popen)
    REAPER.watch(proc.pid)
    return proc


def stop(
    proc: subprocess.Popen[Any] | None, timeout: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    """Signal `proc`'s whole group (SIGTERM, SIGKILL after `timeout`), reap it, unregister it."""
    if proc is None:
        return
    if proc.poll() is None:
        _killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    _killpg(proc.pid, signal.SIGKILL)  # anything the child left behind in its group
    REAPER.forget(proc.pid)


def kill(proc: subprocess.Popen[Any] | None) -> None:
    """SIGKILL `proc`'s group at once (a power cut, a crash)."""
    stop(proc, timeout=10.0, sig=signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """Some process of group `pgid` lives (zombies, waiting for init to reap them, do not)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
