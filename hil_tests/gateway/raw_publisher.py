"""Many meters' readings into a real broker at once, as cheaply as the bench can send them.

The meters of a site are separate devices; in a benchmark they are one process, where paho's
per-message cost (~100 us a publish) would be the bottleneck rather than the gateway. This writes
pre-encoded MQTT 3.1.1 QoS 1 PUBLISH packets in bulk over a plain socket and counts the broker's
PUBACKs (the only packets the broker sends on this connection: it subscribes to nothing).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

from gateway.mqtt.packets import remaining_length as _length
from gateway.mqtt.packets import string


def _string(text: str) -> bytes:
    return string(text.encode())


def connect_packet(client_id: str) -> bytes:
    body = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + _string(client_id)
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    body = _string(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _length(len(body)) + body


class RawPublisher:
    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        connack = self._read(4)
        if connack[:2] != b"\x20\x02" or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")
        self.unacked = 0
        self._next_id = 0

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def send(self, topic: str, payloads: Sequence[bytes]) -> None:
        """Write the PUBLISH packets in one go (QoS 1, packet ids 1..65535 cycling)."""
        out = []
        for payload in payloads:
            self._next_id = self._next_id % 65535 + 1
            out.append(publish_packet(topic, payload, self._next_id))
        self.sock.sendall(b"".join(out))
        self.unacked += len(payloads)

    def drain(self, down_to: int = 0) -> None:
        """Read PUBACKs (4 bytes each) until at most `down_to` publishes are unacknowledged."""
        while self.unacked > down_to:
            self.unacked -= len(self._read(4 * (self.unacked - down_to))) // 4

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()
