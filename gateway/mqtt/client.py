"""The gateway's MQTT 3.1.1 client, on the asyncio loop (no thread of its own).

Why not paho: a QoS 1 reading cost ~70 us of Python in paho's network thread (a recv per header
byte, a packet object, a topic matcher, a wake-up byte and a send per PUBACK), more than the
signature check of the reading itself. Here every packet completed by one read is split in one
pass (`packets.PacketReader`), each message goes straight to `on_message` on the loop, and the
PUBACKs of that read leave in one write (after `on_message` returned, as paho acks).

- connects, and reconnects after any failure with a backoff of `reconnect_min_s` doubling up to
  `reconnect_max_s`; a persistent session (clean_session False) keeps the broker queueing QoS 1
  messages while the gateway is away;
- on every (re)connection: SUBSCRIBE to `subscriptions`, then every QoS 1 publish not yet
  acknowledged by the broker is sent again with the DUP flag (spec 4.4), in order;
- QoS 1 publishes made while disconnected wait for the connection (at most MAX_UNACKED, one per
  packet identifier); QoS 0 ones are dropped;
- keep-alive: PINGREQ when nothing was sent or received for half the keep-alive; a connection
  that received nothing for 1.5 keep-alives is dropped.
`publish` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.mqtt import packets
from gateway.mqtt.packets import MqttProtocolError

log = logging.getLogger(__name__)
MAX_UNACKED = 60_000  # QoS 1 publishes awaiting the broker's PUBACK (packet ids are 16 bits)
SUBSCRIBE_PID = 0xFFFF  # never used by a publish

OnMessage = Callable[[str, bytes, float], None]


@dataclass(frozen=True)
class ClientOptions:
    host: str
    port: int
    client_id: str
    keepalive_s: int = 60
    clean_session: bool = False
    will: tuple[str, bytes, int, bool] | None = None  # topic, payload, qos, retain
    username: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None
    subscriptions: list[tuple[str, int]] = field(default_factory=list)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 10.0


class Refused(ConnectionError):
    """The broker answered CONNECT with a refusal (bad credentials, not authorised, ...)."""


class _Link(asyncio.Protocol):
    """One TCP (or TLS) connection to the broker."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.reader = packets.PacketReader()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[tuple[bool, int]] = client.loop.create_future()
        self.closed: asyncio.Future[Exception | None] = client.loop.create_future()
        self.last_received = time.monotonic()
        self.last_sent = self.last_received
        self._out: list[bytes] = []  # written, not yet handed to the transport (`flush`)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(exc or ConnectionError("closed before CONNACK"))
        if not self.closed.done():
            self.closed.set_result(exc)

    def write(self, data: bytes) -> None:
        """Queue `data` for the socket: what is written during one turn of the loop (a batch's
        acks and states, a read's PUBACKs) leaves in one send, in order."""
        if self.transport is not None and not self.transport.is_closing():
            if not self._out:
                self.client.loop.call_soon(self.flush)
            self._out.append(data)
            self.last_sent = time.monotonic()

    def flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def abort(self, why: Exception) -> None:
        if not self.closed.done():
            self.closed.set_result(why)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.last_received = time.monotonic()
        try:
            received = self.reader.feed(data)
        except MqttProtocolError as exc:
            self.abort(exc)
            return
        acks: list[bytes] = []
        puback = packets.puback
        client = self.client
        on_message = client.on_message
        for first, body in received:
            kind = first & 0xF0
            try:
                if kind == packets.PUBLISH:
                    topic, payload, qos, _, pid = packets.decode_publish(first, body)
                    try:
                        on_message(topic, payload, now)
                    except Exception:  # a bad message never takes the connection down
                        log.exception("handling a message on %s failed", topic)
                    if qos:
                        acks.append(puback(pid))
                elif kind == packets.PUBACK:
                    client.unacked.pop(packets.decode_pid(body), None)
                elif kind == packets.CONNACK:
                    if not self.connack.done():
                        self.connack.set_result(packets.decode_connack(body))
                elif kind == packets.SUBACK:
                    if 0x80 in body[2:]:
                        log.error("broker refused a subscription: SUBACK %s", body[2:].hex())
            except MqttProtocolError as exc:
                self.abort(exc)
                return
        if acks:
            self.write(b"".join(acks))


class MqttClient:
    def __init__(
        self,
        options: ClientOptions,
        loop: asyncio.AbstractEventLoop,
        on_message: OnMessage,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[Exception | None], None] | None = None,
    ) -> None:
        self.options = options
        self.loop = loop
        self.on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.unacked: dict[int, bytes] = {}  # packet id -> PUBLISH, in the order published
        self._next_pid = 0
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._loop_thread: int | None = None
        self._dropped = 0

    @property
    def connected(self) -> bool:
        return self._link is not None

    def start(self) -> None:
        """Connect in the background (call on the loop)."""
        self._loop_thread = threading.get_ident()
        self._task = self.loop.create_task(self._run(), name="mqtt")

    # -- publishing -------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if threading.get_ident() != self._loop_thread:
            self.loop.call_soon_threadsafe(self._publish, topic, payload, qos, retain)
        else:
            self._publish(topic, payload, qos, retain)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if qos == 0:
            if self._link is not None:
                self._link.write(packets.publish(topic, payload, 0, retain))
            return
        if len(self.unacked) >= MAX_UNACKED:
            self._dropped += 1
            if self._dropped in (1, 10, 100) or self._dropped % 1000 == 0:
                log.warning("%d publishes dropped: %d await the broker", self._dropped, MAX_UNACKED)
            return
        pid = self._next_pid
        while True:
            pid = pid % (SUBSCRIBE_PID - 1) + 1
            if pid not in self.unacked:
                break
        self._next_pid = pid
        packet = packets.publish(topic, payload, 1, retain, pid=pid)
        self.unacked[pid] = packet
        if self._link is not None:
            self._link.write(packet)

    async def flush(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every QoS 1 publish (or `timeout`); True if so."""
        deadline = time.monotonic() + timeout
        while self.unacked and self._link is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return not self.unacked

    async def close(self) -> None:
        """DISCONNECT (the broker then drops the will) and stop reconnecting."""
        self._closing = True
        link = self._link
        if link is not None and link.transport is not None:
            link.write(packets.DISCONNECT_PACKET)
            link.flush()
            link.transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the connection ---------------------------------------------------------------------

    async def _run(self) -> None:
        opts = self.options
        delay = opts.reconnect_min_s
        failures = 0
        while not self._closing:
            link = _Link(self)
            error: Exception | None = None
            try:
                await asyncio.wait_for(self._open(link), opts.connect_timeout_s)
                delay, failures = opts.reconnect_min_s, 0
                self._link = link
                if self._on_connect is not None:
                    self._on_connect()
                error = await self._serve(link)
            except (OSError, TimeoutError, MqttProtocolError, ConnectionError) as exc:
                error = exc
                if isinstance(exc, Refused):
                    log.error("%s", exc)
                elif failures == 0:
                    log.warning("MQTT connection to %s:%d failed: %s", opts.host, opts.port, exc)
                else:
                    log.debug("MQTT connection to %s:%d failed: %s", opts.host, opts.port, exc)
                failures += 1
            finally:
                if link.transport is not None:
                    link.transport.abort()
                if self._link is link:
                    self._link = None
                    if self._on_disconnect is not None and not self._closing:
                        self._on_disconnect(error)
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, opts.reconnect_max_s)

    async def _open(self, link: _Link) -> None:
        opts = self.options
        await self.loop.create_connection(
            lambda: link,
            opts.host,
            opts.port,
            ssl=opts.ssl_context,
            server_hostname=opts.host if opts.ssl_context is not None else None,
        )
        link.write(
            packets.connect(
                opts.client_id,
                opts.keepalive_s,
                opts.clean_session,
                opts.will,
                opts.username,
                opts.password,
            )
        )
        _, code = await link.connack
        if code:
            raise Refused(
                f"broker refused the connection: {packets.CONNACK_REFUSED.get(code, code)}"
            )
        if opts.subscriptions:
            link.write(packets.subscribe(SUBSCRIBE_PID, opts.subscriptions))
        for packet in list(self.unacked.values()):  # spec 4.4: resend what was not acknowledged
            link.write(packets.with_dup(packet))

    async def _serve(self, link: _Link) -> Exception | None:
        """Keep the connection alive until it ends; returns why it ended."""
        keepalive = self.options.keepalive_s
        while not link.closed.done():
            tick = keepalive / 4 if keepalive else 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(link.closed), tick)
            if link.closed.done() or not keepalive:
                continue
            now = time.monotonic()
            if now - link.last_received > keepalive * 1.5:
                link.abort(TimeoutError(f"nothing from the broker for {keepalive * 1.5:.0f} s"))
            elif now - link.last_sent >= keepalive / 2 or now - link.last_received >= keepalive / 2:
                link.write(packets.PINGREQ_PACKET)
        return link.closed.result()
