"""HTTP/1.1 request handling for requests already framed by a selector (PooledHTTPServer).

`LeanRequestHandler` is a `BaseHTTPRequestHandler` that splits the request head itself and
writes an answer in one send; `defer()` lets it answer later from another thread.
"""

from __future__ import annotations

import email.utils
import io
import time
from http.server import BaseHTTPRequestHandler
from typing import Any


class Headers(dict[str, str]):
    """Request headers by lower-case name; `get` ignores case (as HTTPMessage.get does)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class LeanRequestHandler(BaseHTTPRequestHandler):
    """A `BaseHTTPRequestHandler` for requests the selector already framed (PooledHTTPServer).

    `parse_request` splits the head itself instead of running the e-mail parser (the largest
    share of a small request's cost); `headers` is a `Headers`. Anything unusual (not HTTP/1.x,
    a header line without a colon or folded) goes to the standard parser, which answers it."""

    raw_requestline: bytes

    def parse_request(self) -> bool:
        words = self.raw_requestline.rstrip(b"\r\n").split(b" ")
        rfile = self.rfile
        if (
            len(words) != 3
            or words[2] not in (b"HTTP/1.1", b"HTTP/1.0")
            or not isinstance(rfile, io.BytesIO)
        ):
            return super().parse_request()
        data = rfile.getvalue()
        start = rfile.tell()
        end = data.find(b"\r\n\r\n", start - 2)
        if end < 0:
            return super().parse_request()
        headers = Headers()
        if end > start:
            for line in data[start:end].split(b"\r\n"):
                name, colon, value = line.partition(b":")
                if not colon or not name or name[:1] in (b" ", b"\t"):
                    return super().parse_request()
                headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        rfile.seek(end + 4)
        self.command, self.path = words[0].decode("latin-1"), words[1].decode("latin-1")
        self.request_version = version = words[2].decode()
        self.requestline = self.raw_requestline.rstrip(b"\r\n").decode("latin-1")
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif version == "HTTP/1.1" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        else:
            self.close_connection = connection != "keep-alive"
        if (
            headers.get("expect", "").lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and version == "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def send_whole(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        """Status line, headers and body in one write (one packet for a small answer)."""
        self.log_request(status)
        self.wfile.write(whole_answer(self, status, body, content_type))

    def defer(self) -> Any:
        """Answer this request later, from any thread, with the returned object's
        `send(status, body)` (once): `PooledHTTPServer.defer_answer`.

        The worker is free at once for other requests; the connection stays busy (nothing more
        is read from it, no idle sweep closes it) until the answer is written. The handler
        writes nothing itself after deferring."""
        self.deferred = self.server.defer_answer(self)  # type: ignore[attr-defined]
        return self.deferred


_date_cache: list[Any] = [0, ""]


def whole_answer(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str
) -> bytes:
    """`handler`'s answer as one buffer: status line, headers and body."""
    reason = handler.responses[status][0] if status in handler.responses else ""
    head = (
        f"{handler.protocol_version} {status} {reason}\r\n"
        f"Server: {handler.version_string()}\r\nDate: {http_date()}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def http_date() -> str:
    """The Date header's value (as `date_time_string()`), formatted once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return str(_date_cache[1])
