"""A serial "cable" between two parties that both want a tty path (like `socat pty pty`).

Two pty pairs; a thread copies bytes between their master ends. Either end can be opened,
closed and reopened (a board rebooting) while the wire stays. Bytes can be dropped or
corrupted on request, and the last bytes each way are kept for a dump when a test fails.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import tty


class PtyWire:
    def __init__(self, name: str = "wire") -> None:
        self.name = name
        self._m_a, s_a = os.openpty()
        self._m_b, s_b = os.openpty()
        for fd in (s_a, s_b):
            tty.setraw(fd)
        self.a = os.ttyname(s_a)
        self.b = os.ttyname(s_b)
        self._keep = (s_a, s_b)  # holding the slaves open keeps the masters readable
        self.corrupt_next = 0  # flip the next N bytes (a->b and b->a)
        self.log: dict[str, collections.deque[bytes]] = {
            "a->b": collections.deque(maxlen=64),
            "b->a": collections.deque(maxlen=64),
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name=f"wire-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        routes = {self._m_a: (self._m_b, "a->b"), self._m_b: (self._m_a, "b->a")}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(routes), [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if not data:
                    continue
                if self.corrupt_next:
                    n = min(self.corrupt_next, len(data))
                    data = bytes(b ^ 0xFF for b in data[:n]) + data[n:]
                    self.corrupt_next -= n
                dest, route = routes[fd]
                self.log[route].append(data)
                try:
                    os.write(dest, data)
                except OSError:
                    pass

    def dump(self) -> str:
        return "\n".join(
            f"{route}: {b''.join(chunks).hex(' ')}" for route, chunks in self.log.items()
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._m_a, self._m_b, *self._keep):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtyWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
