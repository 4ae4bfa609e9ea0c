"""The board's wake-up line: an event with a file descriptor, so that one `select` waits for it
and for the board's TCP sockets at once (no polling of the sockets while the firmware sleeps).

Set by whatever has news for a sleeping firmware: a pulse or input from the rig, UART bytes, the
console. `set()`/`clear()`/`wait()`/`is_set()` as `threading.Event`; `fileno()` for `select`.
"""

from __future__ import annotations

import os
import select
import threading
from typing import Protocol


class WakeLine(Protocol):
    """What a peripheral needs of the wake-up line: to raise it (a Waker, a threading.Event)."""

    def set(self) -> None: ...


class Waker:
    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._lock = threading.Lock()
        self._set = False
        self._closed = False

    def fileno(self) -> int:
        return self._r

    def set(self) -> None:
        with self._lock:
            if self._set or self._closed:  # closed: the number may belong to another file now
                return
            self._set = True
            try:
                os.write(self._w, b"\x01")
            except BlockingIOError:  # the pipe holds a byte already: readable either way
                pass

    def clear(self) -> None:
        with self._lock:
            self._set = False
            if self._closed:
                return
            try:
                while os.read(self._r, 64):
                    pass
            except BlockingIOError:
                pass

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set:
            select.select([self._r], [], [], timeout)
        return self._set

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._r, self._w):
                os.close(fd)
