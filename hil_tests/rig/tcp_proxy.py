"""A TCP relay on loopback for network faults: the wire between two nodes, or a node and its
ledger.

`Relay(target_port)` listens on a port of its own (bound at once) and copies bytes both ways to
the target; it never reads them (a BOLT-8 link stays encrypted). Two kinds of fault:

- `cut()` drops every connection through it and refuses new ones (a partition) until `heal()`.
  The nodes never know: their peer connections break, they retry, and they reconnect once
  healed.
- `hold(direction, containing)` keeps the chunks read from then on in one direction ("out":
  dialer to target; "back": target to dialer) that contain ``containing`` (default: all)
  waiting in the relay, with what follows them on their connection, until `release`.
  Holding "back" between two nodes keeps the peer's ack of a batch from the proposer, so
  the proposer never revokes its older state (the case `channel_supersede` is for). In front
  of the ledger node's HTTP port, holding "back" makes a ledger that takes requests and never
  answers them; `hold("out", b"POST ")` one that never gets the submissions while it answers
  reads (each HTTP request, a submission's body too, is one chunk). `waiting(direction)`: the
  chunks held now.
"""

from __future__ import annotations

import socket
import threading
import time

DIRECTIONS = ("out", "back")  # out: dialer -> target; back: target -> dialer


class Relay:
    def __init__(self, target_port: int, host: str = "127.0.0.1", connect_s: float = 5.0) -> None:
        self.host = host
        self.connect_s = connect_s
        self.target_port = target_port
        self._cut = False
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        # port 0: the kernel picks the port as it binds, so no other process can take it first
        self._server = socket.create_server((host, 0), backlog=64)
        self.port = self._server.getsockname()[1]
        self._server.settimeout(0.5)
        self._stop = threading.Event()
        self._held = {d: threading.Event() for d in DIRECTIONS}
        self._containing = dict.fromkeys(DIRECTIONS, b"")  # what a held chunk contains
        self._waiting = dict.fromkeys(DIRECTIONS, 0)
        self._thread = threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            conns, self._conns = self._conns, []
        for c in conns:
            _close(c)

    def heal(self) -> None:
        with self._lock:
            self._cut = False

    def hold(self, direction: str, containing: bytes = b"") -> None:
        """Chunks read from now on in ``direction`` that contain ``containing`` (default: all)
        wait in the relay until `release`, with what follows them on their connection."""
        self._containing[direction] = containing
        self._held[direction].set()

    def release(self, direction: str) -> None:
        self._held[direction].clear()

    def waiting(self, direction: str) -> int:
        with self._lock:
            return self._waiting[direction]

    def close(self) -> None:
        self._stop.set()
        self.cut()
        _close(self._server)
        self._thread.join(timeout=2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                _close(client)
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), self.connect_s)
            except OSError:
                _close(client)
                continue
            # the timeout was for connecting: an idle peer link is no reason to drop it
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:  # a cut while we were connecting upstream drops this link too
                refused = self._cut or self._stop.is_set()
                if not refused:
                    self._conns += [client, upstream]
            if refused:
                _close(client)
                _close(upstream)
                continue
            for a, b, d in ((client, upstream, "out"), (upstream, client, "back")):
                threading.Thread(target=self._pump, args=(a, b, d), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        held = self._held[direction]
        try:
            while data := src.recv(65536):
                if held.is_set() and self._containing[direction] in data:
                    self._hold_chunk(direction)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)

    def _hold_chunk(self, direction: str) -> None:
        with self._lock:
            self._waiting[direction] += 1
        while self._held[direction].is_set() and not self._stop.is_set():
            time.sleep(0.01)
        with self._lock:
            self._waiting[direction] -= 1


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


class RelayBank:
    """One relay per ordered pair of neighbouring nodes: node a reaches b at `port(a, b)`."""

    def __init__(self) -> None:
        self.relays: dict[tuple[str, str], Relay] = {}

    def add(self, a: str, b: str, target_port: int) -> int:
        self.relays[(a, b)] = Relay(target_port)
        return self.relays[(a, b)].port

    def port(self, a: str, b: str) -> int | None:
        r = self.relays.get((a, b))
        return r.port if r else None

    def isolate(self, name: str, on: bool) -> None:
        for (a, b), r in self.relays.items():
            if name in (a, b):
                r.cut() if on else r.heal()

    def close(self) -> None:
        for r in self.relays.values():
            r.close()
