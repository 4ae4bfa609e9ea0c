"""BOLT #8 over real loopback TCP: handshake, typed messages both ways, rotation, failures."""

from __future__ import annotations

import asyncio

import pytest

from gateway.ln.codec import bolt8, bolt8_transport, wire
from gateway.ln.errors import HandshakeError, TransportError

SERVER_KEY = bytes.fromhex("21" * 32)
CLIENT_KEY = bytes.fromhex("11" * 32)
SERVER_PUB = bolt8._pub(SERVER_KEY)
CLIENT_PUB = bolt8._pub(CLIENT_KEY)


async def _echo_server(seen: list[bytes]) -> asyncio.Server:
    async def on_connection(conn: bolt8_transport.Connection) -> None:
        seen.append(conn.remote_pub)
        while True:
            raw = await conn.receive()
            msg = wire.TABLE.decode(raw)
            if msg.name == "ping":
                conn.send(wire.TABLE.encode("pong", ignored=bytes(msg["num_pong_bytes"])))
                await conn.drain()

    return await bolt8_transport.serve("127.0.0.1", 0, SERVER_KEY, on_connection)


def _port(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


def test_ping_pong_across_key_rotations() -> None:
    async def main() -> None:
        seen: list[bytes] = []
        server = await _echo_server(seen)
        async with server:
            conn = await bolt8_transport.connect("127.0.0.1", _port(server), CLIENT_KEY, SERVER_PUB)
            assert conn.remote_pub == SERVER_PUB
            for i in range(1205):  # > 1000 messages each way: two rotations per direction
                conn.send(wire.TABLE.encode("ping", num_pong_bytes=i % 300, ignored=b"x" * (i % 7)))
                reply = wire.TABLE.decode(await conn.receive())
                assert reply.name == "pong" and reply["ignored"] == bytes(i % 300)
            await conn.close()
        assert seen == [CLIENT_PUB]

    asyncio.run(main())


def test_pipelined_sends_arrive_in_order() -> None:
    async def main() -> None:
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def sink(conn: bolt8_transport.Connection) -> None:
            while True:
                await got.put(await conn.receive())

        server = await bolt8_transport.serve("127.0.0.1", 0, SERVER_KEY, sink)
        async with server:
            conn = await bolt8_transport.connect("127.0.0.1", _port(server), CLIENT_KEY, SERVER_PUB)
            payloads = [bytes([i % 256]) * (i * 37 % 65535) for i in range(60)]
            for p in payloads:
                conn.send(p)
            await conn.drain()
            for p in payloads:
                assert await asyncio.wait_for(got.get(), 10) == p
            await conn.close()

    asyncio.run(main())


def test_wrong_responder_key_fails_the_handshake() -> None:
    async def main() -> None:
        seen: list[bytes] = []
        server = await _echo_server(seen)
        async with server:
            wrong = bolt8._pub(bytes.fromhex("33" * 32))
            with pytest.raises(HandshakeError) as err:
                await bolt8_transport.connect(
                    "127.0.0.1", _port(server), CLIENT_KEY, wrong, timeout=5
                )
            assert err.value.code == "ACT2_READ_FAILED"  # the responder hung up on a bad act one
        assert seen == []

    asyncio.run(main())


def test_garbage_client_is_dropped_and_server_keeps_serving() -> None:
    async def main() -> None:
        seen: list[bytes] = []
        server = await _echo_server(seen)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
            writer.write(b"\x00" * 50)
            assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed, nothing sent
            writer.close()
            conn = await bolt8_transport.connect("127.0.0.1", _port(server), CLIENT_KEY, SERVER_PUB)
            conn.send(wire.TABLE.encode("ping", num_pong_bytes=1, ignored=b""))
            assert wire.TABLE.decode(await conn.receive()).name == "pong"
            await conn.close()
        assert seen == [CLIENT_PUB]

    asyncio.run(main())


def test_peer_closing_raises_transport_error() -> None:
    async def main() -> None:
        async def hang_up(conn: bolt8_transport.Connection) -> None:
            return None

        server = await bolt8_transport.serve("127.0.0.1", 0, SERVER_KEY, hang_up)
        async with server:
            conn = await bolt8_transport.connect("127.0.0.1", _port(server), CLIENT_KEY, SERVER_PUB)
            with pytest.raises(TransportError):
                await asyncio.wait_for(conn.receive(), 5)
            await conn.close()

    asyncio.run(main())


def test_connect_to_closed_port_raises_transport_error() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = _port(server)
        server.close()
        await server.wait_closed()
        with pytest.raises(TransportError):
            await bolt8_transport.connect("127.0.0.1", port, CLIENT_KEY, SERVER_PUB, timeout=5)

    asyncio.run(main())


def test_receive_nowait_hands_out_only_whole_frames_in_order() -> None:
    """The node handles every message that has already arrived before it commits and answers:
    `receive_nowait` gives those, never a partial frame, never waits, keeps the order."""

    async def main() -> None:
        initiator, responder = bolt8.Initiator(CLIENT_KEY, SERVER_PUB), bolt8.Responder(SERVER_KEY)
        act_three, sender = initiator.act_three(responder.act_two(initiator.act_one()))
        reader = asyncio.StreamReader()
        conn = bolt8_transport.Connection(reader, None, responder.finish(act_three))  # type: ignore[arg-type]
        msgs = [wire.TABLE.encode("ping", num_pong_bytes=i, ignored=b"") for i in range(4)]
        frames = b"".join(sender.encrypt_message(m) for m in msgs)
        assert conn.receive_nowait() is None  # nothing arrived
        first_and_a_half = len(frames) // 4 + 10  # the frames are of equal length
        reader.feed_data(frames[:first_and_a_half])
        assert await conn.receive() == msgs[0]
        assert conn.receive_nowait() is None  # the second frame is not whole yet
        reader.feed_data(frames[first_and_a_half:])
        assert await conn.receive() == msgs[1]  # reads what arrived
        assert [conn.receive_nowait(), conn.receive_nowait()] == msgs[2:]
        assert conn.receive_nowait() is None
        reader.feed_eof()
        with pytest.raises(TransportError):
            await conn.receive()

    asyncio.run(main())


def test_send_all_delivers_every_message_in_order() -> None:
    async def main() -> None:
        server = await _echo_server([])
        async with server:
            conn = await bolt8_transport.connect("127.0.0.1", _port(server), CLIENT_KEY, SERVER_PUB)
            sizes = [3, 0, 7, 1]
            conn.send_all([wire.TABLE.encode("ping", num_pong_bytes=n, ignored=b"") for n in sizes])
            await conn.drain()
            got = [wire.TABLE.decode(await asyncio.wait_for(conn.receive(), 30)) for _ in sizes]
            assert [len(m["ignored"]) for m in got] == sizes
            await conn.close()

    asyncio.run(main())
