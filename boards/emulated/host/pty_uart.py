"""UARTs of the emulated board, exposed as ptys so that real serial peers can attach.

Either the board opens a tty path it was given (one end of a rig-made wire, which survives board
restarts like a real cable), or it makes its own pty pair and publishes the slave path.
"""

from __future__ import annotations

import os
import threading
import tty

from boards.emulated.host.fd_reader import FdReader
from boards.emulated.host.waker import WakeLine

MAX_BUFFER = 64 * 1024


class PtyUart:
    def __init__(self, name: str, path: str | None, wake: WakeLine) -> None:
        self.name = name
        self._wake = wake
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._ready = threading.Condition(self._lock)
        self.dropped = 0
        if path is None:
            self._fd, slave = os.openpty()
            tty.setraw(slave)
            self.path = os.ttyname(slave)
            self._keep_slave: int | None = slave  # keep the pair alive while nobody is attached
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self._fd)
            self.path = path
            self._keep_slave = None
        self._reader = FdReader(self._fd, self._take, name=f"uart-{name}")

    def _take(self, data: bytes) -> None:
        with self._lock:
            room = MAX_BUFFER - len(self._buf)
            if len(data) > room:  # a real UART FIFO overflows too
                self.dropped += len(data) - room
                data = data[:room]
            self._buf += data
            self._ready.notify_all()
        self._wake.set()

    def write(self, data: bytes) -> int:
        with self._reader.lock:  # once closed, the number may belong to another file
            if self._reader.stopped:
                raise OSError(f"uart {self.name} is closed")
            return os.write(self._fd, data)

    def any(self) -> int:
        with self._lock:
            return len(self._buf)

    def read(self, n: int, timeout_s: float) -> bytes:
        with self._lock:
            if not self._buf and timeout_s > 0:
                self._ready.wait(timeout_s)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data

    def close(self) -> None:
        self._reader.stop(self._keep_slave)
