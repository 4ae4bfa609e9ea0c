"""The gateway's MQTT connection (paho-mqtt 2.x), handed to asyncio.

paho runs its network loop in its own thread; incoming messages are queued and handed to the
asyncio loop in runs (one `call_soon_threadsafe` per run, not per message), and publishing from the
loop is thread-safe in paho. paho reads a packet's header one byte per recv() system call; the
socket it reads is wrapped in `BufferedSocket`, which reads 64 KB at a time. The session is
persistent (clean_session=False, fixed client id) so the broker queues QoS 1 readings while the
gateway restarts. The gateway's own status topic carries a retained "online" and an "offline" LWT.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from gateway.config import GatewayConfig
from gateway.framelog import FrameLog
from sgcore import topics

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes, float], None]


class BufferedSocket:
    """The broker socket as paho reads it: one recv() of up to 64 KB serves many small reads.

    `pending()` reports the buffered bytes, which paho's loop already checks (for SSL sockets)
    before it waits in select(), so no buffered packet waits for more network data.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def recv(self, size: int) -> bytes:
        if not self._buf:
            data = self._sock.recv(max(size, 65536))
            if len(data) <= size:
                return data
            self._buf += memoryview(data)[size:]
            return data[:size]
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def _no_delay(client, userdata, sock) -> None:
    """Acks are small and latency matters: no Nagle delay (40 ms stalls against delayed ACKs)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not a TCP socket (e.g. a websocket wrapper)


def _socket_open(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    _no_delay(client, userdata, sock)
    if isinstance(sock, socket.socket):  # paho keeps the socket it reads in `_sock`
        client._sock = BufferedSocket(sock)  # type: ignore[assignment]  # noqa: SLF001


class MqttBridge:
    def __init__(
        self,
        cfg: GatewayConfig,
        loop: asyncio.AbstractEventLoop,
        on_message: OnMessage,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.loop = loop
        self.frames = FrameLog("mqtt", size=64)
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._accepting = True
        self._inbox: collections.deque[tuple[str, bytes, float]] = collections.deque()
        self._inbox_scheduled = False  # a _deliver() is queued on the asyncio loop
        self._inbox_lock = threading.Lock()
        self.connected = False
        self.status_topic = topics.gateway_status_topic(cfg.site)
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cfg.mqtt_client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        c.max_queued_messages_set(0)
        c.max_inflight_messages_set(1000)
        c.reconnect_delay_set(1, 30)
        c.will_set(self.status_topic, b"offline", qos=1, retain=True)
        if cfg.mqtt.username:
            password = None
            if cfg.mqtt.password_file:
                password = Path(cfg.mqtt.password_file).read_text().strip()
            c.username_pw_set(cfg.mqtt.username, password)
        if cfg.mqtt.tls_ca_file:
            # the broker's certificate must chain to this CA and name mqtt.host
            c.tls_set(ca_certs=cfg.mqtt.tls_ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_socket_open = _socket_open
        self.client = c

    def start(self) -> None:
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, self.cfg.mqtt.keepalive_s)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))

    def stop_accepting(self) -> None:
        """Drop messages from now on: shutdown has begun (meters resend what we did not ack)."""
        self._accepting = False

    def stop(self, timeout: float = 3.0) -> None:
        """Publish "offline", wait for outgoing QoS 1 messages to be delivered, disconnect."""
        if self.connected:
            info = self.client.publish(self.status_topic, b"offline", qos=1, retain=True)
            deadline = time.monotonic() + timeout
            while not info.is_published() and time.monotonic() < deadline and self.connected:
                time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()

    # --- paho thread -----------------------------------------------------------------------------

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused connection: %s", reason_code)
            return
        scheme = "mqtts" if self.cfg.mqtt.tls_ca_file else "mqtt"
        log.info("connected to %s://%s:%d", scheme, self.cfg.mqtt.host, self.cfg.mqtt.port)
        self.connected = True
        client.subscribe(topics.subscriptions(self.cfg.site))
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        if self._on_connect is not None:
            self.loop.call_soon_threadsafe(self._on_connect)

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False
        if reason_code.is_failure:
            log.warning("disconnected from broker: %s (paho reconnects)", reason_code)
        if self._on_disconnect is not None:
            self.loop.call_soon_threadsafe(self._on_disconnect)

    def _handle_message(self, client, userdata, msg) -> None:
        if not self._accepting:
            return
        self.frames.add(True, msg.topic.encode() + b" " + msg.payload[:200])
        with self._inbox_lock:
            self._inbox.append((msg.topic, msg.payload, time.time()))
            if self._inbox_scheduled:
                return
            self._inbox_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: we are shutting down
            pass

    # --- asyncio loop ----------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Hand every queued message to `on_message`, in arrival order."""
        with self._inbox_lock:
            batch, self._inbox = self._inbox, collections.deque()
            self._inbox_scheduled = False
        for topic, payload, received_at in batch:
            self._on_message(topic, payload, received_at)
