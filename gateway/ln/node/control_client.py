"""Clients of the node's control API (control.py): `call`, one request on its own connection
(the sgrid CLI), and `ControlClient`, which keeps its connections open for the next request
(long-lived callers: a connection costs ~0.4 ms of a payment's few ms).

Both write the request and read the answer to its Content-Length on the socket itself (no
http.client header parser, no urllib opener chain). The control token is the one given, else
read from ``token_file``, else from the file named by the environment variable
SGRID_NODE_TOKEN_FILE (docs/channels.md).

Resending: a kept connection the node has closed (its idle timeout, or pushed out by others) is
found before the request is written (readable at EOF, or older than the node's `Keep-Alive`
timeout) and a new one opened: nothing was sent. If the node closes it while the request is on
its way (the node's idle timeout at that very moment), with no byte of an answer, the request is
resent once on a new connection only if running it twice is harmless (SAFE_TO_RESEND). A
payment is not resent: the node refuses a second payment of a payment hash in flight or paid,
so the second answer would be that refusal, not the payment's outcome; the caller gets an
LnError and asks `POST /payment` for the outcome.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from gateway.ln.errors import LnError
from gateway.ln.node.control_guard import read_token

MAX_ANSWER_BYTES = 1 << 26  # the client's limit: a batch's answer is a few MB at most
# what running twice changes nothing of: reads, and the watch's tick (idempotent by design)
SAFE_TO_RESEND = frozenset({"GET /info", "GET /channels", "POST /payment", "POST /tick"})
KEEP_MARGIN_S = 1.0  # a kept connection is not reused this close to the node's idle timeout
MAX_IDLE = 4  # kept connections per ControlClient (one per thread calling at once)


class _NoAnswer(ConnectionError):
    """The connection ended (EOF or reset) before any byte of an answer."""


def _token(token: str | None, token_file: str | None) -> str:
    if token is not None:
        return token
    source = token_file or os.environ.get("SGRID_NODE_TOKEN_FILE")
    if not source:
        raise LnError("no control token: give --token-file or set SGRID_NODE_TOKEN_FILE")
    return read_token(Path(source))


def _endpoint(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LnError(f"node URL must be http://host:port, not {url!r}")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


def _request(
    host: str, port: int, prefix: str, path: str, body: Any, token: str, keep: bool
) -> tuple[str, bytes]:
    """The route ("METHOD /path") and the request's bytes: POST when a body is given."""
    data = b"" if body is None else json.dumps(body).encode()
    method = "POST" if body is not None else "GET"
    head = (
        f"{method} {prefix}{path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n"
        f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
    )
    return f"{method} {path}", head.encode() + data


def _read_answer(sock: socket.socket) -> tuple[bytes, bytes, bool]:
    """The head and body of the answer, and whether the connection can take another request:
    the body ends at its Content-Length (the API always sends one), else where the node closes
    the connection. Not waiting for the close saves the node's next loop turn. _NoAnswer if it
    ended before any byte; ConnectionError for an answer cut short or over MAX_ANSWER_BYTES."""
    buf = bytearray()
    start = length = -1  # the body's offset once the head is complete; -1: no Content-Length
    reusable = False
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            if not buf:
                raise _NoAnswer("connection reset before an answer") from None
            raise
        buf += chunk
        if start < 0:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                start = end + 4
                lines = bytes(buf[:end]).split(b"\r\n")
                reusable = lines[0].startswith(b"HTTP/1.1 ")
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name, value = name.strip().lower(), value.strip()
                    if name == b"content-length" and value.isdigit():
                        length = int(value)
                    elif name == b"connection" and b"close" in value.lower():
                        reusable = False
        if start >= 0 and 0 <= length <= len(buf) - start:
            # bytes beyond the answer were not asked for: that connection is not reused
            reusable = reusable and len(buf) - start == length
            return bytes(buf[: start - 4]), bytes(buf[start : start + length]), reusable
        if len(buf) > MAX_ANSWER_BYTES or length > MAX_ANSWER_BYTES:
            raise ConnectionError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        if not chunk:
            if start < 0:
                if buf:
                    raise ConnectionError("answer ended inside its head")
                raise _NoAnswer("connection closed before an answer")
            if length >= 0:
                raise ConnectionError(f"answer cut short: {len(buf) - start} of {length} bytes")
            return bytes(buf[: start - 4]), bytes(buf[start:]), False


def _status(url: str, head: bytes) -> int:
    status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith(b"HTTP/")
        or not status_line[1].isdigit()
    ):
        raise LnError(f"cannot reach the node at {url}: not an HTTP answer: {head[:80]!r}")
    return int(status_line[1])


def _result(url: str, status: int, raw: bytes) -> Any:
    """The answer's JSON; LnError naming an error answer's reason."""
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


def _idle_s(head: bytes) -> float | None:
    """The node's `Keep-Alive: timeout=N`, if it sent one."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"keep-alive":
            for item in value.split(b","):
                key, _, n = item.strip().partition(b"=")
                if key.strip().lower() == b"timeout" and n.strip().isdigit():
                    return float(n.strip())
    return None


def _quiet(sock: socket.socket) -> bool:
    """Nothing waits to be read on a kept connection: not closed by the node (EOF waiting),
    nothing sent unasked."""
    sock.settimeout(0)  # with a timeout, recv would wait for data that long
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def call(
    url: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 60,
    token: str | None = None,
    token_file: str | None = None,
) -> Any:
    """Blocking one-shot client: POST when a body is given, else GET, on a connection of its
    own (`Connection: close`). Raises LnError on error answers."""
    token = _token(token, token_file)
    host, port, prefix = _endpoint(url)
    _, request = _request(host, port, prefix, path, body, token, keep=False)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            head, raw, _ = _read_answer(sock)
    except _NoAnswer:
        head, raw = b"", b""  # named below: not an HTTP answer
    except OSError as exc:
        raise LnError(f"cannot reach the node at {url}: {exc}") from exc
    return _result(url, _status(url, head), raw)


class ControlClient:
    """A control API client keeping its connections open (module doc). Thread-safe: a thread
    takes a kept connection or opens one, and gives it back after the answer (at most MAX_IDLE
    are kept). `close()` closes the kept ones.

        client = ControlClient("http://127.0.0.1:9736", token_file=".../control_token")
        client.call("/pay", {"invoice": text})
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        token_file: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.host, self.port, self.prefix = _endpoint(url)
        self.token_file = token_file
        self.token = _token(token, token_file)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[tuple[socket.socket, float]] = []  # (socket, reuse until), LIFO
        self.opened = 0  # connections opened (for tests)
        self.resent = 0  # requests resent on a new connection

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock, _ in idle:
            sock.close()

    def __del__(self) -> None:  # a client dropped without close(): its sockets close quietly
        for sock, _ in getattr(self, "_idle", ()):
            sock.close()

    def _take(self, timeout: float) -> tuple[socket.socket, bool]:
        """A kept connection still open (and its being one), else a new one."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    break
                sock, until = self._idle.pop()
            if until > now and _quiet(sock):
                sock.settimeout(timeout)
                return sock, True
            sock.close()
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the next request at once
        self.opened += 1
        return sock, False

    def _give(self, sock: socket.socket, head: bytes) -> None:
        idle = _idle_s(head)
        until = time.monotonic() + (idle - KEEP_MARGIN_S if idle is not None else 3600.0)
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((sock, until))
                return
        sock.close()

    def call(
        self, path: str, body: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """As `call()`: POST when a body is given, else GET; LnError on error answers."""
        wait = self.timeout if timeout is None else timeout
        status, raw = self._exchange(path, body, wait)
        if status == 401 and self.token_file:
            # refused before anything ran: the token may have been rotated (a new file)
            token = read_token(Path(self.token_file))
            if token != self.token:
                self.token = token
                status, raw = self._exchange(path, body, wait)
        return _result(self.url, status, raw)

    def _exchange(self, path: str, body: Any, timeout: float) -> tuple[int, bytes]:
        route, request = _request(
            self.host, self.port, self.prefix, path, body, self.token, keep=True
        )
        for attempt in (0, 1):
            try:
                sock, reused = self._take(timeout)
            except OSError as exc:
                raise LnError(f"cannot reach the node at {self.url}: {exc}") from exc
            try:
                try:
                    sock.sendall(request)
                except OSError:
                    if reused and attempt == 0:  # closed before it could read our request
                        sock.close()
                        self.resent += 1
                        continue
                    raise
                head, raw, reusable = _read_answer(sock)
            except _NoAnswer as exc:
                sock.close()
                if reused and attempt == 0 and route in SAFE_TO_RESEND:
                    self.resent += 1
                    continue
                why = "" if route in SAFE_TO_RESEND else f"; not resent: {route} may have run"
                raise LnError(f"cannot reach the node at {self.url}: {exc}{why}") from exc
            except OSError as exc:
                sock.close()
                raise LnError(f"cannot reach the node at {self.url}: {exc}") from exc
            except BaseException:
                sock.close()
                raise
            try:
                status = _status(self.url, head)
            except LnError:
                sock.close()
                raise
            if reusable:
                self._give(sock, head)
            else:
                sock.close()
            return status, raw
        raise AssertionError("unreachable")  # pragma: no cover
