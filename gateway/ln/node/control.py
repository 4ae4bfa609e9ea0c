"""The node's local control API: JSON over HTTP/1.1 on 127.0.0.1 (used by the sgrid CLI).

Only callers holding the node's control token get in, with a JSON object body and no foreign
Origin (control_guard.py; refused requests get 4xx with the reason and change nothing).
One request per connection. Connections are bounded: a request must arrive whole within
`request_timeout_s` (an idle or stalled connection is closed then), at most `max_connections`
may be waiting for their request (a new one closes the longest-waiting one), and the listen
backlog is BACKLOG (not the default 100), so a burst of clients is not met by SYN retransmits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.ln.errors import LnError
from gateway.ln.node.control_guard import (
    RejectionLog,
    RequestRefused,
    check_fields,
    check_request,
    read_token,
)

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_BODY = 1 << 22
MAX_ANSWER_BYTES = 1 << 26  # the client's limit: a batch's answer is a few MB at most
BACKLOG = 512
REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256


class _Waiting:
    """Connections still waiting for their request, oldest first; evicts beyond the cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.writers: dict[asyncio.StreamWriter, None] = {}
        self.evicted = 0

    def admit(self, writer: asyncio.StreamWriter) -> None:
        while len(self.writers) >= self.cap:
            oldest = next(iter(self.writers))
            del self.writers[oldest]
            oldest.close()
            self.evicted += 1
        self.writers[writer] = None

    def release(self, writer: asyncio.StreamWriter) -> None:
        self.writers.pop(writer, None)


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise RequestRefused(400, "malformed request line")
    method, path, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise RequestRefused(400, "bad Content-Length") from None
    if not 0 <= length <= MAX_BODY:
        raise RequestRefused(413 if length > 0 else 400, f"body must be 0..{MAX_BODY} bytes")
    return method, path, headers, await reader.readexactly(length) if length else b""


async def serve_control(
    host: str,
    port: int,
    routes: dict[str, Handler],
    token: str,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
    mark: Callable[[str, str], None] | None = None,
) -> asyncio.Server:
    """``routes`` maps "METHOD /path" to an async handler taking the JSON body; ``token`` is
    the credential every request must carry (control_guard.load_or_create_token). ``mark``
    (the node's `Timeline.mark`) is told when a connection's handler starts and when its
    request has been read."""
    waiting = _Waiting(max_connections)
    refused = RejectionLog()
    own_hosts: tuple[str, ...] = ()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, out, read = 200, {}, False
        if mark is not None:
            mark("http", "accepted")
        waiting.admit(writer)
        try:
            try:
                async with asyncio.timeout(request_timeout_s):  # no task of its own
                    method, path, headers, raw = await _read_request(reader)
                read = True
                if mark is not None:
                    mark("http", "read")
            finally:
                waiting.release(writer)
            body = check_request(headers, raw, token, own_hosts)
            route = f"{method} {path}"
            handler = routes.get(route)
            if handler is None:
                status, out = 404, {"error": f"no route {route[:80]}"}
            else:
                check_fields(route, body)
                out = await handler(body)
        except RequestRefused as exc:
            status, out = exc.status, {"error": exc.reason}
            refused.log(exc.status, exc.reason, str(writer.get_extra_info("peername")))
        except (LnError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            status, out = 400, {"error": f"{type(exc).__name__}: {exc}"}
        except TimeoutError:
            if not read:
                writer.close()  # stalled past the timeout: nothing to answer
                return
            status, out = 504, {"error": "timed out"}  # the handler's own wait (a payment's)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()  # gone or evicted: nothing to answer
            return
        except Exception as exc:  # a bug: answer 500 rather than kill the node
            log.exception("control API handler failed")
            status, out = 500, {"error": repr(exc)}
        data = json.dumps(out).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        try:
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, backlog=BACKLOG)
    bound = server.sockets[0].getsockname()[1]
    names = ("127.0.0.1", "localhost", "[::1]", host)
    own_hosts = tuple(sorted({f"{n}:{bound}" for n in names}))
    server.waiting = waiting  # type: ignore[attr-defined]  # for tests and metrics
    server.refused = refused  # type: ignore[attr-defined]
    return server


def call(
    url: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 60,
    token: str | None = None,
    token_file: str | None = None,
) -> Any:
    """Blocking client: POST when a body is given, else GET. Raises LnError on error answers.

    The control token is ``token``, else read from ``token_file``, else from the file named by
    the environment variable SGRID_NODE_TOKEN_FILE (docs/channels.md)."""
    if token is None:
        source = token_file or os.environ.get("SGRID_NODE_TOKEN_FILE")
        if not source:
            raise LnError("no control token: give --token-file or set SGRID_NODE_TOKEN_FILE")
        token = read_token(Path(source))
    data = None if body is None else json.dumps(body).encode()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LnError(f"node URL must be http://host:port, not {url!r}")
    host, port = parts.hostname, parts.port or 80
    # one request on its own connection, as the API answers (Content-Length, then it closes):
    # written and read on the socket itself, without http.client's header parser (email
    # package) or urllib's opener chain; a payment's answer reaches the CLI ~0.5 ms sooner
    request = (
        f"{'POST' if data else 'GET'} {parts.path.rstrip('/')}{path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(data or b'')}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode() + (data or b"")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            head, raw = _read_answer(sock)
    except OSError as exc:
        raise LnError(f"cannot reach the node at {url}: {exc}") from exc
    status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith(b"HTTP/")
        or not status_line[1].isdigit()
    ):
        raise LnError(f"cannot reach the node at {url}: not an HTTP answer: {head[:80]!r}")
    status = int(status_line[1])
    if status >= 400:
        try:
            detail = json.loads(raw).get("error", "")
        except (ValueError, AttributeError):
            detail = raw[:200].decode(errors="replace")
        raise LnError(f"node answered {status}: {detail}")
    try:
        return json.loads(raw)
    except ValueError as exc:  # a 200 whose body is not JSON: not the node's API
        raise LnError(f"node at {url} answered {status} with no JSON: {raw[:80]!r}") from exc


def _read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """The head and body of the answer: the body ends at its Content-Length (the API always
    sends one), else where the API closes the connection. Not waiting for the close saves the
    node's next loop turn: it closes only after what it does next (e.g. write to its peers).
    An answer over MAX_ANSWER_BYTES is refused (ConnectionError)."""
    buf = bytearray()
    start = length = -1  # the body's offset once the head is complete; -1: no Content-Length
    while True:
        chunk = sock.recv(65536)
        buf += chunk
        if start < 0:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                start = end + 4
                for line in bytes(buf[:end]).split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and value.strip().isdigit():
                        length = int(value.strip())
        if start >= 0 and 0 <= length <= len(buf) - start:
            return bytes(buf[: start - 4]), bytes(buf[start : start + length])
        if len(buf) > MAX_ANSWER_BYTES or length > MAX_ANSWER_BYTES:
            raise ConnectionError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        if not chunk:
            if start < 0:
                if buf:
                    raise ConnectionError("answer ended inside its head")
                return b"", b""  # nothing at all: the caller names it not an HTTP answer
            if length >= 0:
                raise ConnectionError(f"answer cut short: {len(buf) - start} of {length} bytes")
            return bytes(buf[: start - 4]), bytes(buf[start:])
