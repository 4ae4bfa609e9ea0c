"""Loopback ports for the rig's servers, without collisions.

`free_port()` used to bind port 0, read the port and close the socket: the kernel hands such a
port out again, to the next process's outgoing connection (a gateway's HTTP call to the ledger,
a meter's MQTT connection), before the server meant to listen on it has bound it, and a 25-node
sim died with `Address already in use`. Here ports come from below the kernel's ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range), where the kernel never picks one by itself, in blocks
of `BLOCK` ports: a process holds an exclusive `flock` on a block's lock file while it lives
(released by the kernel when it dies, even by SIGKILL), so two rigs running at once (two test
workers, two engineers' sims) never hand out the same port. Within its blocks a process hands
out each port once, skipping any a non-rig program already listens on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
import threading
from pathlib import Path

BLOCK = 256
MAX_BLOCKS = 4  # then a process hands out its blocks' ports again (those still in use skipped)
FLOOR = 10_000  # below this: well-known and registered services
LOCK_DIR = Path(tempfile.gettempdir()) / "sgrid-ports"


class PortsExhausted(RuntimeError):
    pass


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def usable(port: int) -> bool:
    """Nothing listens on (or holds) 127.0.0.1:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortPool:
    """The ports of this process: blocks below the ephemeral range, each locked while it lives."""

    def __init__(
        self, lock_dir: Path = LOCK_DIR, low: int = FLOOR, high: int | None = None
    ) -> None:
        self.lock_dir = lock_dir
        self.low = low
        self.high = high if high is not None else ephemeral_range()[0]  # exclusive
        self._lock = threading.Lock()
        self._held: list[tuple[int, int]] = []  # (block start, fd of its lock file)
        self._next: int | None = None  # next port to hand out in the newest block
        self._pid = os.getpid()

    def _blocks(self) -> list[int]:
        first = (self.low + BLOCK - 1) // BLOCK * BLOCK
        starts = list(range(first, self.high - BLOCK + 1, BLOCK))
        # start at a place that depends on the pid: processes started together rarely race
        # for the same lock file first
        k = self._pid % max(1, len(starts))
        return starts[k:] + starts[:k]

    def _take_block(self) -> int:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        held = {start for start, _ in self._held}
        for start in self._blocks():
            if start in held:
                continue
            fd = os.open(self.lock_dir / f"{start}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    continue
                raise
            os.set_inheritable(fd, False)  # children do not keep our blocks locked
            self._held.append((start, fd))
            return start
        raise PortsExhausted(
            f"every block of {BLOCK} ports in {self.low}..{self.high} is held by another process "
            f"(lock files in {self.lock_dir})"
        )

    def port(self) -> int:
        with self._lock:
            if os.getpid() != self._pid:  # a forked child: its parent's blocks are not its own
                self.__init__(self.lock_dir, self.low, self.high)  # type: ignore[misc]
            for _ in range(2 * MAX_BLOCKS * BLOCK):
                if self._next is None or self._next % BLOCK == 0:
                    self._next = self._following_block()
                port, self._next = self._next, self._next + 1
                if usable(port):
                    return port
            raise PortsExhausted("no usable port in this process's blocks")

    def _following_block(self) -> int:
        """The start of the block to hand out from next: a new one, or (at MAX_BLOCKS) the
        oldest held again."""
        if len(self._held) < MAX_BLOCKS:
            return self._take_block()
        starts = [start for start, _ in self._held]
        current = (self._next - 1) // BLOCK * BLOCK if self._next is not None else starts[-1]
        return starts[(starts.index(current) + 1) % len(starts)] if current in starts else starts[0]


_POOL = PortPool()


def free_port() -> int:
    """A loopback port nobody else is handed: listen on it soon (nothing else takes it meanwhile)."""
    return _POOL.port()
