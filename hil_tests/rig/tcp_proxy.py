"""A TCP relay on loopback for the bench's network faults: the wire between two grid nodes.

`Relay(target_port)` listens on a port of its own (bound at once) and copies bytes both ways to the target. `cut()`
drops every connection through it and refuses new ones (a partition) until `heal()`. The nodes
never know: their peer connections break, they retry, and they reconnect once healed.
"""

from __future__ import annotations

import socket
import threading


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
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


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
