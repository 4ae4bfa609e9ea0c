"""The node's local control API: JSON over HTTP/1.1 on 127.0.0.1 (used by the sgrid CLI).

One request per connection. Connections are bounded: a request must arrive whole within
`request_timeout_s` (an idle or stalled connection is closed then), at most `max_connections`
may be waiting for their request (a new one closes the longest-waiting one), and the listen
backlog is BACKLOG (not the default 100), so a burst of clients is not met by SYN retransmits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.ln.errors import LnError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_BODY = 1 << 22
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


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    if length > MAX_BODY:
        raise ValueError("body too large")
    return method, path, await reader.readexactly(length) if length else b""


async def serve_control(
    host: str,
    port: int,
    routes: dict[str, Handler],
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> asyncio.Server:
    """``routes`` maps "METHOD /path" to an async handler taking the JSON body."""
    waiting = _Waiting(max_connections)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, out = 200, {}
        waiting.admit(writer)
        try:
            try:
                method, path, raw = await asyncio.wait_for(_read_request(reader), request_timeout_s)
            finally:
                waiting.release(writer)
            body = json.loads(raw) if raw else {}
            handler = routes.get(f"{method} {path}")
            if handler is None:
                status, out = 404, {"error": f"no route {method} {path}"}
            else:
                out = await handler(body)
        except (LnError, ValueError, KeyError, TypeError) as exc:
            status, out = 400, {"error": f"{type(exc).__name__}: {exc}"}
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            TimeoutError,
        ):
            writer.close()  # gone, stalled past the timeout, or evicted: nothing to answer
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
    server.waiting = waiting  # type: ignore[attr-defined]  # for tests and metrics
    return server


def call(url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
    """Blocking client: POST when a body is given, else GET. Raises LnError on error answers."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url.rstrip("/") + path, data=data, method="POST" if data else "GET"
    )
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", "")
        except ValueError:
            detail = str(exc)
        raise LnError(f"node answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LnError(f"cannot reach the node at {url}: {exc}") from exc
