"""A threaded HTTP/1.1 server whose threads and connections are bounded.

The stdlib `ThreadingHTTPServer` starts one thread per connection and keeps it while the peer
stays connected, with a listen backlog of 5: 600 idle sockets cost 600 threads, and a burst of 16
clients meets SYN retransmits (~1 s stalls). Here one selector thread owns every connection and
reads requests without blocking; only a *complete* request (head and `Content-Length` body) is
handed to one of a fixed pool of worker threads, which runs the ordinary `BaseHTTPRequestHandler`
on it. So an idle or stalled connection costs a file descriptor, never a thread:

- `workers` threads answer requests (plus the selector thread): the thread count is fixed;
- at most `max_connections` connections are open: a new one evicts the longest-idle one;
- a connection idle for `idle_timeout_s`, or holding an incomplete request for
  `request_timeout_s`, is closed; a response that cannot be written within `write_timeout_s`
  closes its connection. No thread waits on a client's reading: what a socket does not take
  at once is written by the selector as the client reads it (a few clients that never read
  must not hold every worker);
- the listen backlog is `backlog` (default 512, capped by the kernel's somaxconn).
Chunked request bodies are not accepted (411): every client here sends Content-Length.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import select
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from gateway.deferred_answer import DeferredAnswer, PendingWrite, write_now
from gateway.http_request_size import request_size
from gateway.lean_http import Headers, LeanRequestHandler

__all__ = [
    "DeferredAnswer",
    "Headers",
    "LeanRequestHandler",
    "Limits",
    "PooledHTTPServer",
    "write_now",
]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    workers: int = 16
    max_connections: int = 512
    idle_timeout_s: float = 30.0
    request_timeout_s: float = 10.0
    write_timeout_s: float = 10.0
    backlog: int = 512
    max_body: int = 4 * 1024 * 1024
    linger_s: float = 0.002  # a worker waits this long for a kept connection's next request


@dataclass(eq=False)
class Conn:
    """One client connection, owned by the selector thread or by one worker at a time."""

    sock: socket.socket
    address: tuple[str, int]
    buffer: bytearray = field(default_factory=bytearray)
    last_active: float = field(default_factory=time.monotonic)
    busy: bool = False
    continued: bool = False  # "100 Continue" sent for the request being read
    closed_by_peer: bool = False
    out: bytearray = field(default_factory=bytearray)  # an answer's rest, written by the selector
    keep_after: bool = False  # read the connection again once `out` is written
    write_deadline: float = 0.0


class PooledHTTPServer:
    """`serve_forever()` / `shutdown()` / `server_close()` / `server_address`, like socketserver."""

    select_timeout_s = 0.5  # the selector's longest sleep: sweeps of idle connections, stopping

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        limits: Limits | None = None,
        name: str = "http",
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.name = name
        self.socket = socket.create_server(address, backlog=self.limits.backlog)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._selector = selectors.DefaultSelector()
        self._conns: dict[socket.socket, Conn] = {}
        self._work: queue.SimpleQueue[Conn | None] = queue.SimpleQueue()
        self._returned: queue.SimpleQueue[tuple[Conn, bool]] = queue.SimpleQueue()
        self._writes: queue.SimpleQueue[PendingWrite] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_pending = False  # a wake-up byte is on its way: one is enough
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._workers: list[threading.Thread] = []
        self.evicted = 0  # connections closed to make room, or for idling (for /metrics, tests)
        self._next_sweep = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._workers = [
            threading.Thread(target=self._worker, name=f"{self.name}-worker-{i}", daemon=True)
            for i in range(self.limits.workers)
        ]
        for thread in self._workers:
            thread.start()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                for key, events in self._selector.select(timeout=self.select_timeout_s):
                    if events & selectors.EVENT_WRITE:
                        self._write(self._conns[key.fileobj])  # type: ignore[index]
                    elif key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        # cleared after the read: a connection returned from now on sends a
                        # byte again (cleared before it, one returned in between had its byte
                        # read here and left the flag set: the next ones sent none)
                        self._wake_pending = False
                    else:
                        self._read(self._conns[key.fileobj])  # type: ignore[index]
                self._take_back()
                self._sweep()
        finally:
            for _ in self._workers:
                self._work.put(None)
            for conn in list(self._conns.values()):
                self._close(conn)
            self._stopped.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._wake(force=True)
        self._stopped.wait(10)

    def server_close(self) -> None:
        for sock in (self.socket, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()
        self._selector.close()

    def _wake(self, force: bool = False) -> None:
        """Wake the selector (it takes back returned connections); a byte already on its way
        and not yet read does that too, so none is sent then."""
        if self._wake_pending and not force:
            return
        self._wake_pending = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def defer_answer(self, handler: BaseHTTPRequestHandler) -> DeferredAnswer:
        """For `LeanRequestHandler.defer`: the request being served by `handler` is answered
        later (the worker that runs it does not give its connection back)."""
        conn: Conn = handler.pooled_conn  # type: ignore[attr-defined]
        return DeferredAnswer(self, conn, handler, keep=not handler.close_connection)

    def give_back(self, conn: Conn, keep: bool) -> None:
        """A worker or a deferred answer is done with `conn`: the selector reads it again."""
        self._returned.put((conn, keep and not conn.closed_by_peer))
        self._wake()

    def write_later(self, pending: PendingWrite) -> None:
        """An answer's rest that the socket did not take at once: the selector writes it as the
        client reads (closing the connection after `write_timeout_s`), then reads it again."""
        self._writes.put(pending)
        self._wake(force=True)

    # -- the selector thread ------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave the rest in the backlog for now
                log.warning("%s: accept failed: %s", self.name, exc)
                return
            if len(self._conns) >= self.limits.max_connections and not self._evict_idlest():
                sock.close()  # every connection is busy with a request: refuse this one
                continue
            sock.settimeout(self.limits.write_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock, address)
            self._conns[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ)

    def _evict_idlest(self) -> bool:
        idle = [c for c in self._conns.values() if not c.busy]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.last_active))
        self.evicted += 1
        return True

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.buffer += data
        conn.last_active = time.monotonic()
        self._dispatch(conn)

    def _dispatch(self, conn: Conn) -> None:
        size = request_size(conn.buffer, self.limits.max_body)
        if isinstance(size, str):
            self._refuse(conn, size)
        elif size < 0:
            if not conn.continued:  # the client waits for this before it sends the body
                conn.continued = True
                with contextlib.suppress(OSError):  # best effort: never wait on the client
                    write_now(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        elif size:
            conn.busy = True
            self._selector.unregister(conn.sock)
            self._work.put(conn)

    def _refuse(self, conn: Conn, status: str) -> None:
        with contextlib.suppress(OSError):  # best effort: never wait on the client
            write_now(
                conn.sock,
                f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode(),
            )
        self._close(conn)

    def _take_back(self) -> None:
        while True:
            try:
                pending = self._writes.get_nowait()
            except queue.Empty:
                break
            conn = pending.conn
            if conn.sock not in self._conns:
                continue  # closed meanwhile (stopping)
            conn.out += pending.data
            conn.keep_after = pending.keep
            conn.write_deadline = time.monotonic() + self.limits.write_timeout_s
            self._selector.register(conn.sock, selectors.EVENT_WRITE)
        while True:
            try:
                conn, keep = self._returned.get_nowait()
            except queue.Empty:
                return
            conn.busy = False
            conn.last_active = time.monotonic()
            if not keep or self._stop.is_set():
                self._close(conn)
                continue
            self._selector.register(conn.sock, selectors.EVENT_READ)
            self._dispatch(conn)  # a pipelined request may already be buffered

    def _write(self, conn: Conn) -> None:
        try:
            sent = write_now(conn.sock, conn.out)
        except OSError:  # the peer is gone
            self._close(conn)
            return
        del conn.out[:sent]
        if conn.out:
            return
        self._selector.unregister(conn.sock)
        self._returned.put((conn, conn.keep_after and not conn.closed_by_peer))

    def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 0.25
        for conn in list(self._conns.values()):
            if conn.out and now > conn.write_deadline:  # not read for write_timeout_s
                self._close(conn)
                self.evicted += 1
                continue
            if conn.busy:
                continue
            limit = self.limits.request_timeout_s if conn.buffer else self.limits.idle_timeout_s
            if now - conn.last_active > limit:
                self._close(conn)
                self.evicted += 1

    def _close(self, conn: Conn) -> None:
        if self._conns.pop(conn.sock, None) is None:
            return
        if not conn.busy or conn.out:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()

    # -- the workers --------------------------------------------------------------------------

    def _worker(self) -> None:
        while (conn := self._work.get()) is not None:
            keep: bool | None = True
            while keep:
                keep = False
                try:
                    keep = self._answer(conn)
                except Exception:  # a handler bug must not kill the worker
                    log.exception("%s: request from %s failed", self.name, conn.address[0])
                if not keep or not self._linger(conn):
                    break
            if keep is not None:  # None: deferred, its answer gives the connection back
                self.give_back(conn, keep)

    def _linger(self, conn: Conn) -> bool:
        """Wait up to `linger_s` for the next request on a kept connection; True if it is complete.

        A client that sends its next request right after reading an answer is then served by
        the same worker, without handing the connection back to the selector and out again
        (two thread wake-ups and two epoll changes per request). Only while no request waits
        for a worker; whatever is not a complete request goes back to the selector as usual."""
        if self.limits.linger_s <= 0 or not self._work.empty() or self._stop.is_set():
            return False
        size = request_size(conn.buffer, self.limits.max_body)
        if isinstance(size, int) and size > 0:
            return True  # pipelined: already buffered
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        if not poller.poll(self.limits.linger_s * 1000):
            return False
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return False
        except OSError:
            data = b""
        if not data:
            conn.closed_by_peer = True
            return False
        conn.buffer += data
        conn.last_active = time.monotonic()
        size = request_size(conn.buffer, self.limits.max_body)
        return isinstance(size, int) and size > 0

    def _answer(self, conn: Conn) -> bool | None:
        """Serve the buffered request: True to keep the connection, None if the handler
        deferred its answer (the connection is no longer this worker's)."""
        size = request_size(conn.buffer, self.limits.max_body)
        assert isinstance(size, int) and size > 0
        request = bytes(conn.buffer[:size])
        del conn.buffer[:size]
        conn.continued = False
        handler = self.handler.__new__(self.handler)
        handler.server = self  # type: ignore[assignment]
        handler.request = handler.connection = conn.sock
        handler.client_address = conn.address
        handler.rfile = io.BytesIO(request)  # type: ignore[assignment]
        handler.wfile = out = io.BytesIO()  # written below without waiting on the client
        handler.close_connection = True
        handler.deferred = None  # type: ignore[attr-defined]
        handler.pooled_conn = conn  # type: ignore[attr-defined]
        try:
            handler.handle_one_request()
        except Exception:
            deferred: DeferredAnswer | None = handler.deferred  # type: ignore[attr-defined]
            if deferred is None:
                raise
            log.exception("%s: request from %s failed", self.name, conn.address[0])
            deferred.send(500, b'{"error": {"reason": "internal", "detail": "see the log"}}')
            return None
        if handler.deferred is not None:  # type: ignore[attr-defined]
            return None
        keep = not handler.close_connection and not self._stop.is_set()
        data = out.getvalue()
        try:
            sent = write_now(conn.sock, data)
        except OSError:  # the peer is gone
            return False
        if sent < len(data):  # the client reads slowly, or not: the selector writes the rest
            self.write_later(PendingWrite(conn, data[sent:], keep))
            return None
        return keep

    def thread_count(self) -> int:
        return 1 + sum(t.is_alive() for t in self._workers)
