"""The pooled HTTP server's own head parsing (LeanRequestHandler) against raw sockets."""

import contextlib
import json
import queue
import socket
import threading
import time

import pytest

from gateway import pooled_http


class Echo(pooled_http.LeanRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        data = json.dumps(
            {
                "path": self.path,
                "type": self.headers.get("Content-Type"),
                "has_x": "X-Thing" in self.headers,
                "body": body.decode(),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


@pytest.fixture
def server():
    srv = pooled_http.PooledHTTPServer(("127.0.0.1", 0), Echo, pooled_http.Limits(workers=2))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address
    srv.shutdown()
    srv.server_close()


def _exchange(address, raw, reads=1):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(raw)
        out = b""
        while out.count(b"HTTP/1.") < reads or not out.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_headers_are_read_whatever_their_case_and_keep_alive_carries_two_requests(server):
    one = b"POST /a HTTP/1.1\r\ncontent-TYPE: application/json\r\nX-THING: 1\r\nContent-Length: 2\r\n\r\n{}"
    two = b"GET /b HTTP/1.1\r\n\r\n"
    out = _exchange(server, one + two, reads=2)
    first, second = out.split(b"HTTP/1.1 200")[1:]
    assert json.loads(first.split(b"\r\n\r\n", 1)[1]) == {
        "path": "/a",
        "type": "application/json",
        "has_x": True,
        "body": "{}",
    }
    assert json.loads(second.split(b"\r\n\r\n", 1)[1])["path"] == "/b"


def test_an_unusual_head_gets_the_standard_parsers_answer(server):
    folded = b"GET /c HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n"  # obsolete line folding
    assert _exchange(server, folded).startswith(b"HTTP/1.1 200")
    assert b"505" in _exchange(server, b"GET /d HTTP/2.0\r\n\r\n")
    assert b"400" in _exchange(server, b"GET /e HTTP/1.1 extra\r\n\r\n")


def test_http_1_0_closes_unless_kept_alive(server):
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"GET /f HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200")


class Later(pooled_http.LeanRequestHandler):
    """Defers every request; a thread of the test answers it (as the ledger's producer does)."""

    protocol_version = "HTTP/1.1"
    pending: "queue.SimpleQueue[tuple[str, object]]"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.pending.put((self.path, self.defer()))


def test_a_deferred_answer_comes_from_another_thread_and_frees_the_worker_at_once():
    Later.pending = queue.SimpleQueue()
    srv = pooled_http.PooledHTTPServer(("127.0.0.1", 0), Later, pooled_http.Limits(workers=1))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with (
            socket.create_connection(srv.server_address, timeout=10) as a,
            socket.create_connection(srv.server_address, timeout=10) as b,
        ):
            a.sendall(b"GET /a1 HTTP/1.1\r\n\r\nGET /a2 HTTP/1.1\r\n\r\n")  # pipelined
            first = Later.pending.get(timeout=10)
            b.sendall(b"GET /b HTTP/1.1\r\n\r\n")  # the one worker is free for it
            second = Later.pending.get(timeout=10)
            assert [first[0], second[0]] == ["/a1", "/b"]
            second[1].send(200, b"B")
            assert _read_answer(b) == b"B"
            assert Later.pending.empty()  # /a2 waits: /a1 is not answered yet
            first[1].send(200, b"A1")
            first[1].send(200, b"again")  # a second send is ignored
            assert _read_answer(a) == b"A1"
            path, answer = Later.pending.get(timeout=10)  # then the pipelined request
            assert path == "/a2"
            answer.send(404, b"A2")
            assert _read_answer(a, status=b"404") == b"A2"
    finally:
        srv.shutdown()
        srv.server_close()


def _read_answer(sock, status=b"200"):
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 " + status), head
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    assert len(body) == length  # nothing more was sent (a second send is ignored)
    return body


class Soon(pooled_http.LeanRequestHandler):
    """Defers every request and answers it from a thread of its own at once."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        answer = self.defer()
        threading.Thread(target=answer.send, args=(200, b"ok")).start()


def test_no_wake_up_of_the_selector_is_lost_when_answers_return_connections_at_once():
    """A returned connection is read again at once: the selector is woken for it (it once
    missed a wake-up when a connection came back between its read of the wake-up bytes and
    its clearing of the "wake-up pending" flag; it then slept its full timeout)."""
    srv = pooled_http.PooledHTTPServer(("127.0.0.1", 0), Soon, pooled_http.Limits(workers=4))
    srv.select_timeout_s = 120  # a lost wake-up stalls a request past the clients' timeout
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    failures = []

    def client():
        try:
            with socket.create_connection(srv.server_address, timeout=20) as sock:
                for _ in range(150):
                    sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
                    assert _read_answer(sock) == b"ok"
        except Exception as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not failures and not any(t.is_alive() for t in threads)
    finally:
        srv.select_timeout_s = 0.01  # lets the selector see the stop
        srv.shutdown()
        srv.server_close()


def test_a_deferred_answer_larger_than_the_socket_takes_is_finished_later():
    Later.pending = queue.SimpleQueue()
    srv = pooled_http.PooledHTTPServer(("127.0.0.1", 0), Later, pooled_http.Limits(workers=1))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than a loopback send buffer holds
    try:
        with socket.create_connection(srv.server_address, timeout=30) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\n\r\n")
            _, answer = Later.pending.get(timeout=10)
            answer.send(200, big)  # returns at once: the client is not reading yet
            assert _read_answer(sock) == big
            sock.sendall(b"GET /next HTTP/1.1\r\n\r\n")  # the connection is kept
            path, answer = Later.pending.get(timeout=10)
            assert path == "/next"
            answer.send(200, b"n")
            assert _read_answer(sock) == b"n"
    finally:
        srv.shutdown()
        srv.server_close()


def test_writing_an_answer_never_waits_for_a_client_that_does_not_read():
    # sock.send(..., MSG_DONTWAIT) on a socket with a timeout waited for the whole timeout first:
    # the ledger's block producer stalled behind one client whose receive buffer was full
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                ours.send(b"x" * 65536)
        ours.settimeout(600)  # as the server's connections: a write timeout
        wrote: list[int] = []
        writer = threading.Thread(target=lambda: wrote.append(pooled_http.write_now(ours, b"y")))
        writer.start()
        writer.join(timeout=60)
        assert not writer.is_alive(), "write_now waited for the client"
        assert wrote == [0]
    finally:
        ours.close()
        theirs.close()


class Big(pooled_http.LeanRequestHandler):
    protocol_version = "HTTP/1.1"
    body = bytes(range(256)) * (128 * 1024)  # 32 MiB: more than loopback's buffers hold

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        data = self.body if self.path == "/big" else b"small"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_clients_that_never_read_their_big_answers_hold_no_worker():
    # Each worker blocked writing to a client that did not read, for the whole write timeout:
    # as many such clients as workers froze the server (the ledger's pool is 4 by default).
    workers = 2
    limits = pooled_http.Limits(workers=workers, write_timeout_s=600)
    srv = pooled_http.PooledHTTPServer(("127.0.0.1", 0), Big, limits)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stuck = [socket.create_connection(srv.server_address, timeout=30) for _ in range(workers + 1)]
    try:
        for sock in stuck:
            sock.sendall(b"GET /big HTTP/1.1\r\n\r\n")  # and never read the answer
        with socket.create_connection(srv.server_address, timeout=60) as sock:
            sock.sendall(b"GET /small HTTP/1.1\r\n\r\n")
            assert _read_answer(sock) == b"small"  # answered while the others stay stuck
        # a stuck client that reads at last gets its whole answer, and its connection is kept
        assert _read_answer(stuck[0]) == Big.body
        stuck[0].sendall(b"GET /small HTTP/1.1\r\n\r\n")
        assert _read_answer(stuck[0]) == b"small"
    finally:
        for sock in stuck:
            sock.close()
        srv.shutdown()
        srv.server_close()


def test_an_answer_not_read_within_the_write_timeout_closes_its_connection():
    limits = pooled_http.Limits(workers=1, write_timeout_s=0.5)
    srv = pooled_http.PooledHTTPServer(("127.0.0.1", 0), Big, limits)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(srv.server_address, timeout=60) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\n\r\n")
            deadline = time.monotonic() + 60
            while srv.evicted == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # waits for the condition; the timeout itself is 0.5 s
            assert srv.evicted == 1
            got = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(1 << 20):
                    got += chunk
            assert 0 < len(got) < len(Big.body)  # cut: the rest was never written
    finally:
        srv.shutdown()
        srv.server_close()
