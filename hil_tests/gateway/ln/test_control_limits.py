"""Issue 16 item 11: the channel node's control API bounds its connections.

Before: 800 idle connections to the control API stayed open for ever (a request never arriving
was awaited without a timeout), and the listen backlog was asyncio's default.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess

from gateway.ln.node import control
from hil_tests.gateway.ln.node_procs import Grid

TOKEN = "ab" * 32


def _closed_by_peer(sock: socket.socket, timeout: float = 20) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_800_idle_connections_are_evicted_and_a_real_request_still_succeeds(tmp_path):
    g = Grid(tmp_path)
    try:
        node = g.add("solo")
        port = int(node.url.rsplit(":", 1)[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(800)]
        try:
            assert node.api("/info", timeout=20)["node_id"] == node.node_id
            # at most MAX_CONNECTIONS wait for a request: the oldest were closed by the node
            assert all(_closed_by_peer(s) for s in socks[:500])
        finally:
            for s in socks:
                s.close()
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert int(out[2]) >= 256  # the listen backlog (ss: Send-Q of a listening socket)
    finally:
        g.close()


def test_a_connection_that_never_completes_its_request_is_closed_after_the_timeout():
    async def scenario() -> tuple[bool, bool, int]:
        async def info(_: dict) -> dict:
            return {"ok": True}

        server = await control.serve_control(
            "127.0.0.1", 0, {"GET /info": info}, TOKEN, request_timeout_s=0.3, max_connections=4
        )
        port = server.sockets[0].getsockname()[1]
        idle = await asyncio.open_connection("127.0.0.1", port)
        stalled = await asyncio.open_connection("127.0.0.1", port)
        # with the token (a stranger announcing a body is refused 401 at once): the body stalls
        stalled[1].write(
            f"POST /pay HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 50\r\n\r\n{{".encode()
        )
        # generous functional timeout: only that the node closes them at all
        idle_closed = await asyncio.wait_for(idle[0].read(), 20) == b""
        stalled_closed = await asyncio.wait_for(stalled[0].read(), 20) == b""
        crowd = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(), 20)
        evicted = server.waiting.evicted  # type: ignore[attr-defined]
        for _, w in crowd:
            w.close()
        server.close()
        return idle_closed and stalled_closed, answer.startswith(b"HTTP/1.1 200"), evicted

    closed, answered, evicted = asyncio.run(scenario())
    assert closed and answered
    assert evicted >= 7  # 10 idle + 1 real against a cap of 4


def test_a_handler_that_times_out_is_answered_504_not_closed_without_an_answer():
    async def scenario() -> int:
        async def pay(_: dict) -> dict:
            raise TimeoutError  # e.g. a payment's own wait ran out

        server = await control.serve_control("127.0.0.1", 0, {"POST /pay": pay}, TOKEN)
        port = server.sockets[0].getsockname()[1]
        try:
            url = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(control.call, url, "/pay", {"invoice": "x"}, 20, TOKEN)
        except Exception as exc:  # noqa: BLE001 - the error names the status
            assert "node answered 504: timed out" in str(exc), exc
            return 504
        finally:
            server.close()
            await server.wait_closed()
        return 200

    assert asyncio.run(scenario()) == 504
