"""A thread that reads a tty's bytes as they come and hands them on, and stops without a race.

A reader thread must never touch its descriptor after the owner closed it: the number is free
then, the next `open()` anywhere in the process gets it, and the thread's `read` steals that
file's bytes (seen: a board test read its flash file as empty right after `board.close()`, the
console's reader had consumed it). So the owner does not close the descriptor itself: `stop()`
wakes the thread through a pipe of its own, waits for it to end, and only then closes.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable

RETRY_S = 0.05  # after EIO (nobody attached to the pty yet), wait this long before reading again


class FdReader:
    def __init__(self, fd: int, on_data: Callable[[bytes], None], name: str) -> None:
        self.fd = fd
        self._on_data = on_data
        self._stop_r, self._stop_w = os.pipe()
        self.stopped = False
        # held by writers across "not stopped? write" and by stop() across "stopped, close": a
        # write never goes to a number another file took since
        self.lock = threading.Lock()
        self._once = threading.Lock()
        self._thread = threading.Thread(target=self._pump, name=name, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        lines = select.poll()  # poll, not select: no limit on the descriptor's number
        lines.register(self.fd, select.POLLIN)
        lines.register(self._stop_r, select.POLLIN)
        stop = select.poll()
        stop.register(self._stop_r, select.POLLIN)
        while True:
            ready = lines.poll()
            if any(fd == self._stop_r for fd, _ in ready):
                return
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO: no peer attached to our pty yet
                data = b""
            if data:
                self._on_data(data)
            elif stop.poll(RETRY_S * 1000):
                return

    def stop(self, *also_close: int | None) -> None:
        """End the thread, then close the descriptor (and `also_close`). Later calls do nothing."""
        with self._once:
            if self.stopped:
                return
            self.stopped = True  # writers see it under `lock` from their next write on
        os.write(self._stop_w, b"\x01")
        self._thread.join(timeout=5)
        if self._thread.is_alive():  # never seen; a leaked descriptor is better than a stolen one
            return
        if not self.lock.acquire(timeout=5):  # a writer stuck on a full tty: leak, not steal
            return
        try:
            for fd in (self.fd, *also_close, self._stop_r, self._stop_w):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        finally:
            self.lock.release()
