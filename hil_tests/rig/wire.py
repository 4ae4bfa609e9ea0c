"""A serial "cable" between two parties that both want a tty path (like `socat pty pty`).

Two pty pairs; a thread copies bytes between their master ends. Either end can be opened,
closed and reopened (a board rebooting) while the wire stays. Bytes can be dropped or
corrupted on request, and the last bytes each way are kept for a dump when a test fails.

The copying thread waits with `poll` (not `select`, which refuses descriptors numbered above 1024:
the rig of a 56-node sim holds about 610, a larger grid's more), never blocks on a write (a full pty buffer drops the
bytes, as a UART nobody reads does), and is gone before `close()` frees the masters' numbers: a
thread still copying after that would read and write whatever file takes those numbers next.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import tty

JOIN_S = 30.0  # the copier ends at once when told; this bound only guards against a hang


class PtyWire:
    def __init__(self, name: str = "wire") -> None:
        self.name = name
        self._m_a, s_a = os.openpty()
        self._m_b, s_b = os.openpty()
        for fd in (s_a, s_b):
            tty.setraw(fd)
        for fd in (self._m_a, self._m_b):
            os.set_blocking(fd, False)
        self.a = os.ttyname(s_a)
        self.b = os.ttyname(s_b)
        self._keep = (s_a, s_b)  # holding the slaves open keeps the masters readable
        self.corrupt_next = 0  # flip the next N bytes (a->b and b->a)
        self.dropped = 0  # bytes lost to a full buffer at the far end (nobody reading)
        self.log: dict[str, collections.deque[bytes]] = {
            "a->b": collections.deque(maxlen=64),
            "b->a": collections.deque(maxlen=64),
        }
        self._stop_r, self._stop_w = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, name=f"wire-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        routes = {self._m_a: (self._m_b, "a->b"), self._m_b: (self._m_a, "b->a")}
        lines = select.poll()
        for fd in (*routes, self._stop_r):
            lines.register(fd, select.POLLIN)
        while True:
            ready = lines.poll()
            if any(fd == self._stop_r for fd, _ in ready):
                return
            for fd, _ in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EAGAIN, or EIO while no slave is attached
                    continue
                if data:
                    self._carry(data, *routes[fd])

    def _carry(self, data: bytes, dest: int, route: str) -> None:
        if self.corrupt_next:
            n = min(self.corrupt_next, len(data))
            data = bytes(b ^ 0xFF for b in data[:n]) + data[n:]
            self.corrupt_next -= n
        self.log[route].append(data)
        try:
            sent = os.write(dest, data)
        except OSError:  # EAGAIN: the far end's buffer is full
            sent = 0
        self.dropped += len(data) - sent

    def dump(self) -> str:
        return "\n".join(
            f"{route}: {b''.join(chunks).hex(' ')}" for route, chunks in self.log.items()
        )

    def close(self) -> None:
        """Stop the copier, then close every descriptor of the wire. Later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        os.write(self._stop_w, b"\x01")
        self._thread.join(JOIN_S)
        if self._thread.is_alive():  # never seen: a leaked descriptor beats a stolen byte
            return
        for fd in (self._m_a, self._m_b, *self._keep, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtyWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
