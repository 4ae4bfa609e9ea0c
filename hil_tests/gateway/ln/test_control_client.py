"""The control API's client (`gateway.ln.node.control.call`) against real sockets: it returns
once the answer's Content-Length is read (a server that keeps the connection open does not make
it wait), and an answer cut short or not HTTP is a clean LnError."""

from __future__ import annotations

import socket
import threading

import pytest

from gateway.ln.errors import LnError
from gateway.ln.node.control import call


def _server(answer: bytes, release: threading.Event) -> tuple[int, threading.Thread, list[bytes]]:
    """A one-connection server answering `answer`, then keeping the connection open until
    `release` is set (at most 30 s)."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    got: list[bytes] = []

    def run() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            got.append(data)
            conn.sendall(answer)
            release.wait(30)  # the connection stays open after the answer

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t, got


def test_call_returns_at_the_content_length_without_waiting_for_the_close():
    body = b'{"ok": 1}'
    answer = b"HTTP/1.1 200 X\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    release = threading.Event()
    port, t, got = _server(answer, release)
    try:
        # returns while the server still holds the connection open (it waits up to 30 s)
        assert call(f"http://127.0.0.1:{port}", "/info", token="t" * 64, timeout=20) == {"ok": 1}
        assert t.is_alive()
    finally:
        release.set()
    head = got[0].decode()
    assert head.startswith("GET /info HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n" in head and "Authorization: Bearer " + "t" * 64 in head
    t.join()


@pytest.mark.parametrize(
    "answer, reason",
    [
        (b"HTTP/1.1 200 X\r\nContent-Length: 50\r\n\r\n{}", "cut short"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
        (
            b'HTTP/1.1 401 X\r\nContent-Length: 17\r\n\r\n{"error": "nope"}',
            "node answered 401: nope",
        ),
        # a 200 that is not the API's (no JSON, a chunked body): LnError, not JSONDecodeError
        (b"HTTP/1.1 200 X\r\nContent-Length: 5\r\n\r\nhello", "answered 200 with no JSON"),
        (
            b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            "answered 200 with no JSON",
        ),
        (b"HTTP/1.1 200 X\r\nContent-Length: 2\r\n", "ended inside its head"),
        (b"HTTP/1.1 200 X\r\nContent-Length: %d\r\n\r\n" % (1 << 27), "larger than"),
    ],
)
def test_a_short_foreign_or_refused_answer_is_a_clean_error(answer, reason):
    release = threading.Event()
    release.set()
    port, t, _ = _server(answer, release)
    with pytest.raises(LnError, match=reason):
        call(f"http://127.0.0.1:{port}", "/pay", {"x": 1}, token="t" * 64, timeout=30)
    t.join()
