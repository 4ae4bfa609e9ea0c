"""The gateway's MQTT connection (gateway.mqtt.client, on the asyncio loop).

Messages are handed to `on_message` on the loop as each read from the broker completes them, and
their PUBACKs leave together; publishing is a write on the loop (thread-safe: from another thread
it is handed to the loop). The session is persistent (clean_session=False, fixed client id) so
the broker queues QoS 1 readings while the gateway restarts. The gateway's own status topic
carries a retained "online" and an "offline" LWT.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.framelog import FrameLog
from gateway.mqtt.client import ClientOptions, MqttClient
from sgcore import topics

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes, float], None]


def _no_delay(client, userdata, sock) -> None:
    """paho's on_socket_open for the rig's meters: no Nagle delay on small acks (40 ms stalls
    against delayed ACKs). asyncio sets TCP_NODELAY on the gateway's own connection."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not a TCP socket (e.g. a websocket wrapper)


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
        self.status_topic = topics.gateway_status_topic(cfg.site)
        password = None
        if cfg.mqtt.username and cfg.mqtt.password_file:
            password = Path(cfg.mqtt.password_file).read_text().strip()
        context = None
        if cfg.mqtt.tls_ca_file:
            # the broker's certificate must chain to this CA and name mqtt.host
            context = ssl.create_default_context(cafile=cfg.mqtt.tls_ca_file)
        options = ClientOptions(
            host=cfg.mqtt.host,
            port=cfg.mqtt.port,
            client_id=cfg.mqtt_client_id,
            keepalive_s=cfg.mqtt.keepalive_s,
            clean_session=False,
            will=(self.status_topic, b"offline", 1, True),
            username=cfg.mqtt.username or None,
            password=password,
            ssl_context=context,
            subscriptions=topics.subscriptions(cfg.site),
        )
        self.client = MqttClient(
            options, loop, self._handle_message, self._handle_connect, self._handle_disconnect
        )

    @property
    def connected(self) -> bool:
        return self.client.connected

    def start(self) -> None:
        """Connect in the background (call on the loop)."""
        self.client.start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos, retain)

    def stop_accepting(self) -> None:
        """Drop messages from now on: shutdown has begun (meters resend what we did not ack)."""
        self._accepting = False

    async def stop(self, timeout: float = 3.0) -> None:
        """Publish "offline", wait for outgoing QoS 1 messages to be delivered, disconnect."""
        if self.connected:
            self.client.publish(self.status_topic, b"offline", qos=1, retain=True)
            await self.client.flush(timeout)
        await self.client.close()

    # --- the client's callbacks (on the loop) ------------------------------------------------------

    def _handle_connect(self) -> None:
        scheme = "mqtts" if self.cfg.mqtt.tls_ca_file else "mqtt"
        log.info("connected to %s://%s:%d", scheme, self.cfg.mqtt.host, self.cfg.mqtt.port)
        self.client.publish(self.status_topic, b"online", qos=1, retain=True)
        if self._on_connect is not None:
            self._on_connect()

    def _handle_disconnect(self, error: Exception | None) -> None:
        log.warning("disconnected from broker: %s (reconnecting)", error or "connection closed")
        if self._on_disconnect is not None:
            self._on_disconnect()

    def _handle_message(self, topic: str, payload: bytes, received_at: float) -> None:
        if not self._accepting:
            return
        self.frames.add_message(True, topic, payload)
        self._on_message(topic, payload, received_at)
