"""The node's local control API: JSON over HTTP/1.1 on 127.0.0.1 (the sgrid CLI, and long-lived
callers through `ControlClient`, control_client.py).

Only callers holding the node's control token get in, with a JSON object body and no foreign
Origin (control_guard.py; refused requests get 4xx with the reason and change nothing). Every
request is checked so, also the later ones on a kept-alive connection.

Keep-alive: after an answer to an authenticated HTTP/1.1 request the connection stays open for
the next request (`Connection: keep-alive`, `Keep-Alive: timeout=<idle_timeout_s>`), unless the
request said `Connection: close` or was HTTP/1.0. A 401/403 (no credential), a 500 or input the
API cannot frame (a bad request line or header, a body without Content-Length framing,
`Transfer-Encoding`, a head over 64 KiB) is answered and the connection closed. A request sent
before the previous one's answer (pipelining) is not run: the one before it is answered, then the
pipelined bytes get a 400 and the connection is closed.

Bounds (the DoS protections, docs/channels.md):
* a new connection's first request must arrive whole within `request_timeout_s`; a kept-alive
  connection's next one within `idle_timeout_s` of the previous answer; else it is closed;
* an answer must be taken by the client within `request_timeout_s` (else the connection is
  closed: a client that does not read cannot hold a handler);
* at most `max_connections` are open: a new one beyond that closes the longest-waiting
  connection that has not yet shown the token, else the longest-idle kept-alive one; when all are
  running requests it is answered 503. So connections that never authenticate (a slowloris)
  cannot push out the owner's kept-alive connection, and the owner's new one pushes out theirs;
* the listen backlog is BACKLOG (not the default 100), so a burst of clients is not met by SYN
  retransmits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.ln.errors import LnError
from gateway.ln.node.control_client import MAX_ANSWER_BYTES, ControlClient, call
from gateway.ln.node.control_guard import (
    RejectionLog,
    RequestRefused,
    check_fields,
    check_request,
    check_token,
)

__all__ = ["MAX_ANSWER_BYTES", "ControlClient", "call", "serve_control"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_BODY = 1 << 22
MAX_HEAD = 1 << 16  # the StreamReader's limit: a longer head is refused (431)
BACKLOG = 512
REQUEST_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 256
LINGER_S, LINGER_BYTES = 2.0, 1 << 20  # reading what follows input refused (refuse())
_KEEP_AFTER = frozenset(range(200, 500)) - {401, 403}  # statuses after which a connection stays


class _Connections:
    """The API's open connections: `fresh` (waiting for a first request, not yet authenticated)
    and `kept` (authenticated before, waiting for the next), each oldest first, and `busy`
    ones (a request being handled or answered). Evicts beyond the cap (module doc)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.fresh: dict[asyncio.StreamWriter, None] = {}
        self.kept: dict[asyncio.StreamWriter, None] = {}
        self.busy = 0
        self.evicted = 0
        self.refused = 0  # new connections answered 503: all open ones were busy
        self.closing = False
        self.lingering = 0  # refused (503) ones reading the rest of their request

    def shut(self) -> None:
        """The server closes: waiting connections are closed, busy ones after their answer."""
        self.closing = True
        for pool in (self.fresh, self.kept):
            for writer in list(pool):
                writer.close()
            pool.clear()

    @property
    def open(self) -> int:
        return len(self.fresh) + len(self.kept) + self.busy

    def admit(self, writer: asyncio.StreamWriter) -> bool:
        while self.open >= self.cap or self.closing:
            pool = self.fresh or self.kept
            if not pool or self.closing:
                self.refused += 1
                return False
            oldest = next(iter(pool))
            del pool[oldest]
            oldest.close()  # its handler's read ends (IncompleteReadError) and it returns
            self.evicted += 1
        self.fresh[writer] = None
        return True

    def start(self, writer: asyncio.StreamWriter) -> bool:
        """A request was read; False if the connection was evicted meanwhile."""
        for pool in (self.fresh, self.kept):
            if writer in pool:
                del pool[writer]
                self.busy += 1
                return True
        return False

    def done(self, writer: asyncio.StreamWriter, keep: bool) -> None:
        self.busy -= 1
        if keep:
            self.kept[writer] = None

    def release(self, writer: asyncio.StreamWriter) -> None:
        self.fresh.pop(writer, None)
        self.kept.pop(writer, None)


class _Request:
    __slots__ = ("method", "path", "version", "headers", "raw")

    def __init__(
        self, method: str, path: str, version: str, headers: dict[str, str], raw: bytes
    ) -> None:
        self.method, self.path, self.version, self.headers, self.raw = (
            method, path, version, headers, raw,
        )  # fmt: skip

    @property
    def keep_alive(self) -> bool:
        """The client lets the connection stay open (HTTP/1.1 without `Connection: close`)."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return self.version == "HTTP/1.1" and "close" not in tokens


async def _read_request(reader: asyncio.StreamReader, token: str) -> _Request:
    """One request, framed by its Content-Length; RequestRefused for input that cannot be
    framed (the connection is closed after the answer)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise RequestRefused(400, "malformed request line")
    method, path, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        key = name.strip().lower()
        if not sep or not key or name != name.rstrip() or line[:1] in (" ", "\t"):
            raise RequestRefused(400, "malformed header line")
        if key in headers and key in ("content-length", "host", "authorization"):
            raise RequestRefused(400, f"{key} given twice")
        headers[key] = value.strip()
    if "transfer-encoding" in headers:
        raise RequestRefused(400, "Transfer-Encoding is not taken: send a Content-Length")
    text = headers.get("content-length", "0")
    if not (text.isascii() and text.isdigit()) or len(text) > 12:  # '²'.isdigit() is True
        raise RequestRefused(400, "bad Content-Length")
    length = int(text)
    if length > MAX_BODY:
        raise RequestRefused(413, f"body must be 0..{MAX_BODY} bytes")
    if length:
        check_token(headers, token)  # before the node buffers a body for a stranger
    raw = await reader.readexactly(length) if length else b""
    return _Request(method, path, version, headers, raw)


def _pending(reader: asyncio.StreamReader) -> bool:
    """Bytes already received after the request just read (a pipelined request)."""
    return bool(getattr(reader, "_buffer", b""))  # StreamReader has no public peek


def _answer_bytes(status: int, out: Any, keep: bool, idle_s: float) -> bytes:
    data = json.dumps(out).encode()
    conn = f"keep-alive\r\nKeep-Alive: timeout={int(idle_s)}" if keep else "close"
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: {conn}\r\n\r\n"
    ).encode() + data


async def serve_control(
    host: str,
    port: int,
    routes: dict[str, Handler],
    token: str,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
    mark: Callable[[str, str], None] | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> asyncio.Server:
    """``routes`` maps "METHOD /path" to an async handler taking the JSON body; ``token`` is
    the credential every request must carry (control_guard.load_or_create_token). ``mark``
    (the node's `Timeline.mark`) is told when a connection's handler starts ("accepted") and
    when each of its requests has been read ("read")."""
    conns = _Connections(max_connections)
    refused = RejectionLog()
    own_hosts: tuple[str, ...] = ()

    async def run(req: _Request) -> tuple[int, Any]:
        """The request's status and answer body (a refusal or an error named, never raised)."""
        try:
            body = check_request(req.headers, req.raw, token, own_hosts)
            route = f"{req.method} {req.path}"
            handler = routes.get(route)
            if handler is None:
                return 404, {"error": f"no route {route[:80]}"}
            check_fields(route, body)
            return 200, await handler(body)
        except RequestRefused:
            raise
        except (LnError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            return 400, {"error": f"{type(exc).__name__}: {exc}"}
        except TimeoutError:
            return 504, {"error": "timed out"}  # the handler's own wait (a payment's)
        except Exception as exc:  # a bug: answer 500 rather than kill the node
            log.exception("control API handler failed")
            return 500, {"error": repr(exc)}

    async def send(writer: asyncio.StreamWriter, data: bytes) -> bool:
        """Write an answer; False if the client did not take it within the timeout."""
        writer.write(data)
        try:
            async with asyncio.timeout(request_timeout_s):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            return False
        return True

    async def refuse(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, reason: str
    ) -> None:
        """Answer an error and end the connection: after the answer the node reads (and drops)
        what the client still sends, for at most LINGER_S and LINGER_BYTES, so that closing
        with unread input (a TCP reset) does not destroy the answer before the client reads
        it."""
        refused.log(status, reason, str(writer.get_extra_info("peername")))
        writer.write(_answer_bytes(status, {"error": reason}, False, 0))
        try:
            async with asyncio.timeout(LINGER_S):
                await writer.drain()
                writer.write_eof()
                dropped = 0
                while dropped < LINGER_BYTES and (chunk := await reader.read(65536)):
                    dropped += len(chunk)
        except (TimeoutError, ConnectionError, OSError):
            pass

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if mark is not None:
            mark("http", "accepted")
        if not conns.admit(writer):
            reason = f"all {conns.cap} control connections are busy"
            if conns.lingering < conns.cap:  # these are bounded too (one more cap's worth)
                conns.lingering += 1
                try:
                    await refuse(reader, writer, 503, reason)
                finally:
                    conns.lingering -= 1
            else:
                writer.write(_answer_bytes(503, {"error": reason}, False, 0))
            writer.close()
            return
        timeout = request_timeout_s  # the first request; then idle_timeout_s for each next
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout):  # no task of its own
                        req = await _read_request(reader, token)
                except RequestRefused as exc:  # cannot be framed: answered, then closed
                    await refuse(reader, writer, exc.status, exc.reason)
                    return
                except asyncio.LimitOverrunError:
                    await refuse(reader, writer, 431, f"request head over {MAX_HEAD} bytes")
                    return
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return  # idle, stalled, gone or evicted: nothing to answer
                if not conns.start(writer):
                    return  # evicted between its last byte and now
                if mark is not None:
                    mark("http", "read")
                pipelined = _pending(reader)
                try:
                    status, out = await run(req)
                except RequestRefused as exc:
                    status, out = exc.status, {"error": exc.reason}
                    refused.log(exc.status, exc.reason, str(writer.get_extra_info("peername")))
                keep = status in _KEEP_AFTER and req.keep_alive and not pipelined
                keep = keep and not conns.closing
                sent = await send(writer, _answer_bytes(status, out, keep, idle_timeout_s))
                if sent and pipelined:  # still counted busy while it lingers: within the cap
                    reason = "pipelined request not run: send a request after the last answer"
                    await refuse(reader, writer, 400, reason)
                conns.done(writer, keep and sent)  # kept: may be pushed out again
                if not sent:
                    writer.transport.abort()  # what it did not take is dropped, not kept
                    return
                if not keep:
                    return
                timeout = idle_timeout_s
        finally:
            conns.release(writer)
            writer.close()

    server = await asyncio.start_server(handle, host, port, backlog=BACKLOG, limit=MAX_HEAD)
    bound = server.sockets[0].getsockname()[1]
    names = ("127.0.0.1", "localhost", "[::1]", host)
    own_hosts = tuple(sorted({f"{n}:{bound}" for n in names}))
    server.waiting = conns  # type: ignore[attr-defined]  # for tests and metrics
    server.refused = refused  # type: ignore[attr-defined]
    stop_listening = server.close

    def close() -> None:  # also the kept-alive connections: no request after the close
        stop_listening()
        conns.shut()

    server.close = close  # type: ignore[method-assign]
    return server
