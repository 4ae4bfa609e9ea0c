"""BOLT #8 over asyncio TCP: `connect()`, `serve()` and the established `Connection`.

The handshake and framing are the pure steps of `bolt8`; this module only moves their bytes.
A connection whose handshake or frame fails is closed, never half-trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.ln.codec.bolt8 import (
    ACT_ONE_LEN,
    ACT_THREE_LEN,
    ACT_TWO_LEN,
    HANDSHAKE_TIMEOUT_S,
    LENGTH_HEADER_LEN,
    MAC_LEN,
    Initiator,
    Responder,
    Session,
)
from gateway.ln.errors import HandshakeError, TransportError

log = logging.getLogger("gateway.ln.codec.bolt8")


class Connection:
    """An established BOLT #8 connection carrying raw BOLT #1 messages.

    Received bytes are kept in the connection's own buffer, so that `receive_nowait()` can hand
    out every message that has already arrived whole: the node handles a burst of them before
    it commits and answers once (one fsync for all of them)."""

    READ_SIZE = 65536

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._session = session
        # asyncio's socket transport receives up to 256 KiB at a time into a new bytes object:
        # at that size every received message cost an mmap, an mremap and a munmap
        transport: Any = getattr(writer, "transport", None)
        if hasattr(transport, "max_size"):
            transport.max_size = self.READ_SIZE
        self._recv_lock = asyncio.Lock()
        self._buffer = bytearray()
        self._length: int | None = None  # the decrypted length of the frame being received

    @property
    def remote_pub(self) -> bytes:
        """The peer's authenticated node key (33 bytes)."""
        return self._session.remote_pub

    def send(self, message: bytes) -> None:
        """Encrypt and queue one message; `await drain()` to apply back-pressure."""
        self.send_all([message])

    def send_all(self, messages: list[bytes]) -> None:
        """Encrypt `messages` and hand them to the socket in one write: they leave together
        (one segment on loopback), so the peer reads them together and answers them at once."""
        if self._writer.is_closing():
            raise TransportError("connection is closed")
        encrypt = self._session.encrypt_message
        self._writer.write(b"".join([encrypt(m) for m in messages]))

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"peer went away: {exc}") from exc

    async def receive(self) -> bytes:
        """Next decrypted message. Raises TransportError on EOF, bad MAC or I/O error."""
        async with self._recv_lock:
            while True:
                message = self.receive_nowait()
                if message is not None:
                    return message
                try:
                    data = await self._reader.read(self.READ_SIZE)
                except (ConnectionError, OSError) as exc:
                    raise TransportError(f"connection error: {exc}") from exc
                if not data:
                    raise TransportError("peer closed the connection")
                self._buffer += data

    def receive_nowait(self) -> bytes | None:
        """The next decrypted message if its whole frame has already arrived, else None
        (never waits). Raises TransportError on a bad MAC."""
        buf = self._buffer
        if self._length is None:
            if len(buf) < LENGTH_HEADER_LEN:
                return None
            self._length = self._session.decrypt_length(bytes(buf[:LENGTH_HEADER_LEN]))
            del buf[:LENGTH_HEADER_LEN]
        end = self._length + MAC_LEN
        if len(buf) < end:
            return None
        body = bytes(buf[:end])
        del buf[:end]
        self._length = None
        return self._session.decrypt_body(body)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _read(reader: asyncio.StreamReader, n: int, act: str, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.readexactly(n), timeout)
    except asyncio.IncompleteReadError as exc:
        raise HandshakeError(f"{act}_READ_FAILED", f"got {len(exc.partial)} of {n} bytes") from exc
    except TimeoutError as exc:
        raise HandshakeError(f"{act}_READ_FAILED", "timed out") from exc
    except (ConnectionError, OSError) as exc:
        raise HandshakeError(f"{act}_READ_FAILED", str(exc)) from exc


async def connect(
    host: str,
    port: int,
    local_priv: bytes,
    remote_pub: bytes,
    timeout: float = HANDSHAKE_TIMEOUT_S,
) -> Connection:
    """Open a TCP connection and run the handshake as initiator."""
    initiator = Initiator(local_priv, remote_pub)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc
    try:
        writer.write(initiator.act_one())
        act_two = await _read(reader, ACT_TWO_LEN, "ACT2", timeout)
        act_three, session = initiator.act_three(act_two)
        writer.write(act_three)
        await writer.drain()
    except BaseException:
        writer.close()
        raise
    log.info("connected to %s at %s:%d", remote_pub.hex()[:16], host, port)
    return Connection(reader, writer, session)


async def accept(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    local_priv: bytes,
    timeout: float = HANDSHAKE_TIMEOUT_S,
) -> Connection:
    """Run the handshake as responder on an accepted stream."""
    responder = Responder(local_priv)
    try:
        act_one = await _read(reader, ACT_ONE_LEN, "ACT1", timeout)
        writer.write(responder.act_two(act_one))
        act_three = await _read(reader, ACT_THREE_LEN, "ACT3", timeout)
        session = responder.finish(act_three)
    except BaseException:
        writer.close()
        raise
    return Connection(reader, writer, session)


async def serve(
    host: str,
    port: int,
    local_priv: bytes,
    on_connection: Callable[[Connection], Awaitable[None]],
    timeout: float = HANDSHAKE_TIMEOUT_S,
) -> asyncio.Server:
    """Listen; for every peer that completes the handshake, run `on_connection(conn)`.

    A failed handshake is logged and the socket closed. The connection is closed when
    `on_connection` returns or raises. Port 0 picks a free port (see `server.sockets`).
    """

    async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            conn = await accept(reader, writer, local_priv, timeout)
        except HandshakeError as exc:
            log.warning("handshake with %s failed: %s", peer, exc)
            return
        log.info("accepted %s from %s", conn.remote_pub.hex()[:16], peer)
        try:
            await on_connection(conn)
        except TransportError as exc:
            log.info("connection from %s ended: %s", peer, exc)
        except Exception:
            log.exception("connection handler for %s failed", peer)
        finally:
            await conn.close()

    return await asyncio.start_server(_handle, host, port)
