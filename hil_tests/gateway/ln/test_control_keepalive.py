"""The control API keeps a connection open for the next request (HTTP/1.1 keep-alive), checks
every request on it as it checks a new connection's, closes idle ones, bounds the open ones
(so connections that never show the token cannot push out the owner's), and answers pipelined
or garbage input with an error and a close; `ControlClient` keeps one connection and opens a
new one when the node closed it (docs/channels.md "Who may use the control API")."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import pytest

from gateway.ln.errors import LnError
from gateway.ln.node import control, control_client
from gateway.ln.node.control import ControlClient, call
from hil_tests.gateway.ln.node_procs import Grid, NodeProc, wait_until

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("gateway.ln.test_control_keepalive")

TOKEN = "ab" * 32


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    g = Grid(tmp_path_factory.mktemp("keepalive"))
    try:
        g.add("capped", "--control-max-connections", "8")  # idle timeout: the default 30 s
        g.add("quick", "--control-idle-timeout", "0.5")
        yield g
    finally:
        g.close()


@pytest.fixture
def node(grid) -> NodeProc:
    return grid.nodes["capped"]


@pytest.fixture
def quick(grid) -> NodeProc:
    """A node closing connections idle for 0.5 s."""
    return grid.nodes["quick"]


class Raw:
    """One raw connection to the API: requests written as given, answers read one by one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")

    def request(self, path: str, token: str, body: Any = None, extra: str = "") -> bytes:
        data = b"" if body is None else json.dumps(body).encode()
        return (
            f"{'POST' if body is not None else 'GET'} {path} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
        ).encode() + data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, dict[str, str], Any]:
        status = int(self.file.readline().split()[1])
        headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers["content-length"]))
        return status, headers, json.loads(body)

    def closed_by_node(self) -> bool:
        """The node closed it (EOF or reset); waits at most 30 s (headroom, not a figure)."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _port(node: NodeProc) -> int:
    return int(node.url.rsplit(":", 1)[1])


def _token(node: NodeProc) -> str:
    return open(node.token_file).read().strip()


def test_many_requests_on_one_connection_each_checked_for_the_token(node):
    raw = Raw(_port(node))
    try:
        for _ in range(20):
            raw.send(raw.request("/info", _token(node)))
            status, headers, out = raw.answer()
            assert status == 200 and out["node_id"] == node.node_id
            assert headers["connection"] == "keep-alive" and "timeout=" in headers["keep-alive"]
        raw.send(raw.request("/channels", "0" * 64))  # a wrong token on the same connection
        status, headers, out = raw.answer()
        assert status == 401 and "token" in out["error"] and headers["connection"] == "close"
        assert raw.closed_by_node()
    finally:
        raw.close()
    raw = Raw(_port(node))
    try:
        raw.send(raw.request("/info", _token(node)))
        assert raw.answer()[0] == 200
        raw.send(f"GET /info HTTP/1.1\r\nHost: 127.0.0.1:{raw.port}\r\n\r\n".encode())
        assert raw.answer()[0] == 401  # no token at all, after a good request
    finally:
        raw.close()


def test_the_client_keeps_one_connection(node):
    with ControlClient(node.url, token_file=node.token_file) as client:
        for _ in range(30):
            assert client.call("/info")["node_id"] == node.node_id
        assert client.call("/payment", {"payment_hash": "00" * 32}) == {"status": "unknown"}
        assert client.opened == 1 and client.resent == 0


def test_connection_close_is_honoured_and_an_idle_connection_is_closed(node, quick):
    raw = Raw(_port(node))
    try:
        raw.send(raw.request("/info", _token(node), extra="Connection: close\r\n"))
        status, headers, _ = raw.answer()
        assert status == 200 and headers["connection"] == "close"
        assert raw.closed_by_node()
    finally:
        raw.close()
    raw = Raw(_port(quick))
    try:
        raw.send(raw.request("/info", _token(quick)))
        assert raw.answer()[0] == 200
        assert raw.closed_by_node()  # the node's idle timeout (0.5 s here)
    finally:
        raw.close()


def test_a_connection_the_node_closed_is_replaced_before_the_next_request(quick):
    with ControlClient(quick.url, token_file=quick.token_file) as client:
        assert client.call("/info")["node_id"] == quick.node_id
        kept = client._idle[0][0]
        wait_until(lambda: not control_client._quiet(kept), what="the idle close")
        assert client.call("/channels") == []
        # found closed before the request was written: a new connection, nothing resent
        assert client.opened == 2 and client.resent == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /info HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST /pay HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /pay HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"POST /pay HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET /info HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /info SPDY/3\r\n\r\n",
    ],
)
def test_a_malformed_second_request_gets_an_error_and_the_next_client_is_served(node, garbage):
    raw = Raw(_port(node))
    try:
        raw.send(raw.request("/info", _token(node)))
        assert raw.answer()[0] == 200
        raw.send(garbage)
        status, headers, out = raw.answer()
        assert 400 <= status < 500 and out["error"] and headers["connection"] == "close"
        assert raw.closed_by_node()
    finally:
        raw.close()
    assert call(node.url, "/info", token_file=node.token_file)["node_id"] == node.node_id
    assert node.proc is not None and node.proc.poll() is None


def test_a_pipelined_request_is_not_run(node):
    raw = Raw(_port(node))
    try:
        tok = _token(node)
        # the second request is sent before the first's answer: refused, not run
        ask = raw.request("/invoice", tok, {"amount_msat": 1000, "start": 2**31, "end": 2**31 + 1})
        raw.send(raw.request("/info", tok) + ask)
        first, second = raw.answer(), raw.answer()
        assert first[0] == 200 and first[1]["connection"] == "close"
        assert second[0] == 400 and "pipelined" in second[2]["error"]
        assert raw.closed_by_node()
    finally:
        raw.close()


def test_connections_that_never_show_the_token_cannot_push_out_the_owner(node):
    """The node allows 8 connections here: 40 strangers holding theirs half-sent (a slowloris)
    push out each other, never the owner's kept-alive connection, and a new owner connection
    pushes out one of theirs."""
    with ControlClient(node.url, token_file=node.token_file) as client:
        assert client.call("/info")["node_id"] == node.node_id
        strangers = []
        try:
            for _ in range(40):
                s = socket.create_connection(("127.0.0.1", _port(node)), timeout=30)
                s.sendall(b"POST /pay HTTP/1.1\r\nContent-Length: 100\r\n")  # head half-sent
                strangers.append(s)
            assert client.call("/info")["node_id"] == node.node_id
            assert client.opened == 1  # the same connection: not pushed out
            assert call(node.url, "/info", token_file=node.token_file)["node_id"] == node.node_id
            pushed_out = sum(_closed(s) for s in strangers[:32])
            assert pushed_out == 32
        finally:
            for s in strangers:
                s.close()


def _closed(s: socket.socket) -> bool:
    s.settimeout(30)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_all_connections_busy_a_new_one_is_answered_503_and_the_server_keeps_going():
    """In-process server: a cap of 2 connections, both running a request that waits."""

    async def scenario() -> tuple[int, int, int]:
        release = asyncio.Event()

        async def slow(_: dict) -> dict:
            await release.wait()
            return {"ok": True}

        server = await control.serve_control(
            "127.0.0.1", 0, {"POST /slow": slow}, TOKEN, max_connections=2
        )
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        busy = [asyncio.to_thread(call, url, "/slow", {}, 30, TOKEN) for _ in range(2)]
        tasks = [asyncio.ensure_future(b) for b in busy]
        while server.waiting.busy < 2:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        try:
            await asyncio.to_thread(call, url, "/slow", {}, 30, TOKEN)
            refused = 200
        except LnError as exc:
            refused = 503 if "node answered 503" in str(exc) else 0
        release.set()
        done = await asyncio.gather(*tasks)
        after = await asyncio.to_thread(call, url, "/slow", {}, 30, TOKEN)
        server.close()
        return refused, sum(d == {"ok": True} for d in done), int(after == {"ok": True})

    assert asyncio.run(scenario()) == (503, 2, 1)


def test_closing_the_server_closes_kept_connections():
    async def scenario() -> bytes:
        async def info(_: dict) -> dict:
            return {"ok": True}

        server = await control.serve_control("127.0.0.1", 0, {"GET /info": info}, TOKEN)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        assert b"keep-alive" in head
        await reader.readexactly(12)  # {"ok": true}
        server.close()
        rest = await asyncio.wait_for(reader.read(), 20)  # EOF: closed by the server
        writer.close()
        return rest

    assert asyncio.run(scenario()) == b""


# the client against a server that closes a kept connection as the request arrives (the node's
# idle timeout at that very moment): a safe request is resent, a payment is not


def _closing_server(answers: int) -> tuple[int, list[bytes], threading.Thread]:
    """Answers the first request of its first connection, keeps it open, reads the second and
    closes without an answer; on later connections answers every request."""
    srv = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []
    body = b'{"ok": 1}'
    ok = b"HTTP/1.1 200 X\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (
        len(body),
        body,
    )

    def read_one(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return b""
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += conn.recv(4096)
        return head

    def run() -> None:
        with srv:
            conn, _ = srv.accept()
            with conn:
                got.append(read_one(conn))
                conn.sendall(ok)
                got.append(read_one(conn))  # then closed without an answer
            srv.settimeout(5)
            for _ in range(answers):
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    return
                with conn:
                    got.append(read_one(conn))
                    conn.sendall(ok)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv.getsockname()[1], got, t


def test_a_safe_request_is_resent_once_when_the_kept_connection_closes_under_it():
    port, got, t = _closing_server(answers=1)
    client = ControlClient(f"http://127.0.0.1:{port}", token=TOKEN, timeout=30)
    assert client.call("/info") == {"ok": 1}
    assert client.call("/info") == {"ok": 1}  # closed under it, resent on a new connection
    assert client.resent == 1 and client.opened == 2
    t.join()
    assert [g.split(b" ", 2)[:2] for g in got] == [[b"GET", b"/info"]] * 3
    client.close()


def test_a_payment_is_not_resent_when_the_kept_connection_closes_under_it():
    port, got, t = _closing_server(answers=1)
    client = ControlClient(f"http://127.0.0.1:{port}", token=TOKEN, timeout=30)
    assert client.call("/info") == {"ok": 1}
    with pytest.raises(LnError, match="not resent: POST /pay may have run"):
        client.call("/pay", {"invoice": "lnsg1..."})
    t.join()  # no second connection came (the server waits 5 s for one)
    assert [g.split(b" ", 2)[:2] for g in got] == [[b"GET", b"/info"], [b"POST", b"/pay"]]
    assert client.resent == 0 and client.opened == 1
    client.close()
