"""MQTT 3.1.1 packets of the gateway's client (OASIS MQTT Version 3.1.1): encoders and a stream
reader. Pure: no I/O.

The gateway is a client only: it sends CONNECT, SUBSCRIBE, PUBLISH (QoS 0/1), PUBACK, PINGREQ and
DISCONNECT, and receives CONNACK, SUBACK, PUBLISH (QoS 0/1: it subscribes with QoS <= 1, so the
broker never sends QoS 2), PUBACK and PINGRESP. The meter's side of the same protocol is
firmware/lib/mqtt_packet.py (MicroPython); hil_tests/gateway/mqtt/test_packets.py checks that each
decodes what the other encodes. Anything a server may not send a client raises MqttProtocolError.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from gateway.errors import GatewayError

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82  # with its mandatory flags (0b0010)
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0
MAX_REMAINING = 268_435_455  # four length bytes
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
CONNACK_REFUSED = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
_PUBACK = struct.Struct(">BBH")


class MqttProtocolError(GatewayError):
    """The broker sent bytes that are not a valid MQTT 3.1.1 packet for a client."""


def remaining_length(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise MqttProtocolError(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(raw: bytes) -> bytes:
    if len(raw) > 0xFFFF:
        raise MqttProtocolError(f"string of {len(raw)} bytes is too long for MQTT")
    return struct.pack(">H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining_length(len(body)) + body


def connect(
    client_id: str,
    keepalive_s: int,
    clean_session: bool,
    will: tuple[str, bytes, int, bool] | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT; `will` is (topic, payload, qos, retain)."""
    if password is not None and username is None:
        raise MqttProtocolError("a password needs a user name")
    flags = 0x02 if clean_session else 0
    payload = string(client_id.encode())
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += string(topic.encode()) + string(message)
    if username is not None:
        flags |= 0x80
        payload += string(username.encode())
    if password is not None:
        flags |= 0x40
        payload += string(password.encode())
    head = string(b"MQTT") + struct.pack(">BBH", 4, flags, keepalive_s)
    return _packet(CONNECT, head + payload)


def publish(
    topic: str, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False, pid: int = 0
) -> bytes:
    if qos not in (0, 1) or not topic:
        raise MqttProtocolError(f"bad publish (qos {qos!r}, topic {topic!r})")
    body = string(topic.encode()) + (struct.pack(">H", pid) if qos else b"") + bytes(payload)
    return _packet(PUBLISH | (8 if dup else 0) | (qos << 1) | (1 if retain else 0), body)


def with_dup(packet: bytes) -> bytes:
    """The same PUBLISH marked as a redelivery (DUP flag)."""
    return bytes([packet[0] | 0x08]) + packet[1:]


def subscribe(pid: int, filters: list[tuple[str, int]]) -> bytes:
    if not filters:
        raise MqttProtocolError("SUBSCRIBE needs at least one topic filter")
    body = struct.pack(">H", pid) + b"".join(string(f.encode()) + bytes([q]) for f, q in filters)
    return _packet(SUBSCRIBE, body)


def puback(pid: int) -> bytes:
    return _PUBACK.pack(PUBACK, 2, pid)


class Publish(NamedTuple):
    """A received PUBLISH (a tuple: one is made per message on the gateway's hot path)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    pid: int  # 0 for QoS 0


def decode_publish(first: int, body: bytes) -> Publish:
    qos = (first >> 1) & 3
    if qos == 3 or qos == 2:
        raise MqttProtocolError(f"PUBLISH with QoS {qos} (subscribed with QoS <= 1)")
    if len(body) < 3:
        raise MqttProtocolError("PUBLISH too short")
    end = 2 + ((body[0] << 8) | body[1])
    at = end + (2 if qos else 0)
    if end == 2 or at > len(body):
        raise MqttProtocolError(f"malformed PUBLISH (topic length {end - 2} in {len(body)} bytes)")
    pid = 0
    if qos:
        pid = (body[end] << 8) | body[end + 1]
        if pid == 0:
            raise MqttProtocolError("PUBLISH with packet identifier 0")
    try:
        topic = body[2:end].decode()
    except UnicodeDecodeError as exc:
        raise MqttProtocolError(f"PUBLISH topic is not UTF-8: {exc}") from exc
    return Publish(topic, body[at:], qos, bool(first & 1), pid)


def decode_connack(body: bytes) -> tuple[bool, int]:
    """(session_present, return_code)."""
    if len(body) != 2 or body[0] & 0xFE:
        raise MqttProtocolError(f"malformed CONNACK {body!r}")
    return bool(body[0] & 1), body[1]


def decode_pid(body: bytes) -> int:
    if len(body) < 2:
        raise MqttProtocolError("packet identifier missing")
    pid = (body[0] << 8) | body[1]
    if pid == 0:
        raise MqttProtocolError("packet identifier 0")
    return pid


_BODY_LENGTHS = {CONNACK: 2, PUBACK: 2, PINGRESP: 0}


class PacketReader:
    """Splits the bytes received from the broker into packets: `feed(data)` returns the
    (first byte, body) of every packet completed by `data`, in order, and keeps the rest.
    A packet a server may not send, or one over `max_packet` bytes, raises MqttProtocolError."""

    def __init__(self, max_packet: int = 1 << 20) -> None:
        self.max_packet = max_packet
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else bytes(data)
        out: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while pos + 2 <= end:
            first = buf[pos]
            length = buf[pos + 1]
            at = pos + 2
            if length & 0x80:  # a longer remaining length
                length &= 0x7F
                shift = 7
                while True:
                    if at >= end:
                        self._buf = buf[pos:]
                        return out
                    byte = buf[at]
                    at += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise MqttProtocolError("remaining length longer than 4 bytes")
            kind = first & 0xF0
            if kind != PUBLISH:
                expected = _BODY_LENGTHS.get(first)
                if first == SUBACK:
                    if length < 3:
                        raise MqttProtocolError("SUBACK too short")
                elif expected is None:
                    raise MqttProtocolError(f"unexpected packet 0x{first:02x} from the broker")
                elif length != expected:
                    raise MqttProtocolError(f"packet 0x{first:02x} with length {length}")
            if length > self.max_packet:
                raise MqttProtocolError(f"packet of {length} bytes exceeds {self.max_packet}")
            if at + length > end:
                break
            out.append((first, buf[at : at + length]))
            pos = at + length
        self._buf = buf[pos:]
        return out
