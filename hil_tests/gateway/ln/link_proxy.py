"""A TCP relay between two node processes on loopback that can hold one direction.

A node dials the relay instead of its peer's port; the relay forwards the (BOLT-8 encrypted,
never read) bytes both ways. `hold("back")` keeps what the peer sends back waiting in the relay:
the peer's ack of a batch never reaches the proposer, so the proposer never revokes its older
state, which a test then publishes from the proposer's database while the peer holds the newer
one (the case `channel_supersede` is for). In front of the ledger node's HTTP port, holding
"back" makes a ledger that takes requests and never answers them; `hold("out", b"POST ")` one
that never gets the submissions (each HTTP request is one chunk) while it answers reads.
`waiting(direction)`: the chunks read in that direction and not passed on yet.
"""

from __future__ import annotations

import socket
import threading
import time

DIRECTIONS = ("out", "back")  # out: dialer -> peer; back: peer -> dialer


class LinkProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._held = {d: threading.Event() for d in DIRECTIONS}
        self._starting = dict.fromkeys(DIRECTIONS, b"")  # what a held chunk starts with
        self._waiting = dict.fromkeys(DIRECTIONS, 0)
        self._count = threading.Lock()
        self._socks: list[socket.socket] = [self.server]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, direction: str, starting: bytes = b"") -> None:
        """Chunks read from now on in ``direction`` that start with ``starting`` (default:
        all) wait in the relay until `release`, with what follows them on their connection."""
        self._starting[direction] = starting
        self._held[direction].set()

    def release(self, direction: str) -> None:
        self._held[direction].clear()

    def waiting(self, direction: str) -> int:
        with self._count:
            return self._waiting[direction]

    def close(self) -> None:
        self._closed = True
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                target = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the peer is down (a ledger stopped for a while): refused as it is
                client.close()
                continue
            self._socks += [client, target]
            for src, dst, d in ((client, target, "out"), (target, client, "back")):
                threading.Thread(target=self._pipe, args=(src, dst, d), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if data.startswith(self._starting[direction]):
                    with self._count:
                        self._waiting[direction] += 1
                    while self._held[direction].is_set() and not self._closed:
                        time.sleep(0.01)
                    with self._count:
                        self._waiting[direction] -= 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
