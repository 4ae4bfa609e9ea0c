"""The bench's TCP relay: copies both ways, keeps idle links, cuts and heals."""

import socket
import time

from hil_tests.rig.tcp_proxy import Relay


def _echo_server() -> socket.socket:
    import threading

    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(1024), b"")],
                             daemon=True).start()  # fmt: skip

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_an_idle_link_outlives_the_connect_timeout_and_a_cut_drops_it():
    srv = _echo_server()
    relay = Relay(srv.getsockname()[1], connect_s=0.3)
    try:
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        c.sendall(b"hello")
        assert c.recv(16) == b"hello"
        time.sleep(1.0)  # idle for longer than the relay's connect timeout: still up
        c.sendall(b"again")
        assert c.recv(16) == b"again"
        relay.cut()
        assert c.recv(16) == b""  # dropped
        refused = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        assert refused.recv(16) == b""  # refused while cut
        relay.heal()
        c2 = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        c2.sendall(b"healed")
        assert c2.recv(16) == b"healed"
        for s in (c, refused, c2):
            s.close()
    finally:
        relay.close()
        srv.close()


def test_a_cut_while_the_relay_connects_upstream_drops_that_link_too(monkeypatch):
    """The relay checks for a cut, then connects upstream: a cut in between must not let the
    new link through the partition (it used to be added to the links after the cut)."""
    srv = _echo_server()
    target = srv.getsockname()[1]
    relay = Relay(target)
    real = socket.create_connection

    def cut_then_connect(address, *args, **kwargs):
        if address[1] == target:  # the relay's upstream connect: the partition starts now
            relay.cut()
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", cut_then_connect)
    try:
        c = real(("127.0.0.1", relay.port), timeout=30)
        c.sendall(b"through?")
        assert c.recv(16) == b""  # dropped, not echoed across the partition
        c.close()
    finally:
        relay.close()
        srv.close()


def test_a_held_direction_keeps_what_matches_and_what_follows_until_released():
    srv = _echo_server()
    relay = Relay(srv.getsockname()[1])
    try:
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        relay.hold("out", b"POST")
        c.sendall(b"GET a")
        assert c.recv(16) == b"GET a"  # not matched: passes
        c.sendall(b"POST b")
        deadline = time.monotonic() + 5
        while not relay.waiting("out"):
            assert time.monotonic() < deadline, "the POST was not held"
            time.sleep(0.01)
        c.settimeout(0.3)
        try:
            got = c.recv(16)
        except TimeoutError:
            got = b""
        assert got == b""  # held: nothing echoed
        assert relay.waiting("back") == 0
        relay.release("out")
        c.settimeout(5)
        assert c.recv(16) == b"POST b"
        assert relay.waiting("out") == 0
        c.close()
    finally:
        relay.close()
        srv.close()
