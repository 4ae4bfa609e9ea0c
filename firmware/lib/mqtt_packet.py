# MQTT 3.1.1 packets, encoded into and decoded from caller-owned buffers.
# Spec: OASIS MQTT Version 3.1.1, http://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html
#
# Pure: no I/O, only `struct`, so the same file runs in MicroPython (the meter) and in CPython
# (hypothesis tests, fake servers). Encoders write into a preallocated buffer and return the
# length; decoders read a received packet body and raise MqttProtocolError for anything that
# breaks the spec, never another exception type. Topics and strings are bytes.

import struct

from sgcore.compat import const

CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)  # the type with its mandatory flags (0b0010)
SUBACK = const(0x90)
UNSUBSCRIBE = const(0xA2)  # with its mandatory flags (0b0010)
UNSUBACK = const(0xB0)
PINGREQ = const(0xC0)
PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)
MAX_REMAINING = const(268435455)  # four length bytes
_MAX_STR = const(65535)

# CONNACK return codes (spec 3.2.2.3)
REFUSED = (
    "",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


class MqttError(Exception):
    pass


class MqttProtocolError(MqttError):
    """The peer sent bytes that are not a valid MQTT 3.1.1 packet for a client."""


def put_remaining(buf, pos, n):
    """Write the variable-length remaining length `n` at `pos`; returns the position after it."""
    if n < 0 or n > MAX_REMAINING:
        raise MqttError(f"remaining length {n} out of range")
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[pos] = b | 0x80
            pos += 1
        else:
            buf[pos] = b
            return pos + 1


def parse_remaining(buf, start, end):
    """The remaining length whose bytes begin at buf[start]: (value, position after), or None
    while buf[start:end] does not hold all of it yet."""
    value = 0
    shift = 0
    pos = start
    while pos < end:
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise MqttProtocolError("remaining length longer than 4 bytes")
    return None


def _put_str(buf, pos, s):
    n = len(s)
    if n > _MAX_STR or pos + 2 + n > len(buf):
        raise MqttError(f"string of {n} bytes does not fit")
    struct.pack_into(">H", buf, pos, n)
    buf[pos + 2 : pos + 2 + n] = s
    return pos + 2 + n


def _finish(buf, ptype, body_len, body_at):
    # The body was written at body_at (room for a 5-byte header): put the header just before it.
    start = body_at - 2
    limit = 128
    while body_len >= limit:
        start -= 1
        limit <<= 7
    buf[start] = ptype
    put_remaining(buf, start + 1, body_len)
    return start, body_at + body_len


def connect_into(
    buf,
    client_id,
    keepalive_s,
    clean,
    user=None,
    password=None,
    will_topic=None,
    will_msg=None,
    will_qos=1,
    will_retain=True,
):
    """CONNECT; returns (start, end) of the packet inside buf."""
    if password is not None and user is None:
        raise MqttError("a password needs a user name")
    if len(buf) < 24 or not 0 <= keepalive_s <= _MAX_STR:
        raise MqttError(f"bad CONNECT (buffer {len(buf)}, keepalive {keepalive_s})")
    flags = 0x02 if clean else 0
    pos = _put_str(buf, 5, b"MQTT") + 4
    if will_topic is not None:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
    if user is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    struct.pack_into(">BBH", buf, pos - 4, 4, flags, keepalive_s)
    pos = _put_str(buf, pos, client_id)
    if will_topic is not None:
        pos = _put_str(buf, pos, will_topic)
        pos = _put_str(buf, pos, will_msg)
    if user is not None:
        pos = _put_str(buf, pos, user)
    if password is not None:
        pos = _put_str(buf, pos, password)
    return _finish(buf, CONNECT, pos - 5, 5)


def publish_into(buf, topic, payload, qos, retain, dup, pid):
    """PUBLISH; returns (start, end) inside buf. MqttError if it does not fit in buf."""
    if qos not in (0, 1) or not topic:
        raise MqttError(f"bad publish (qos {qos!r}, topic {topic!r})")
    need = 5 + 2 + len(topic) + (2 if qos else 0) + len(payload)
    if need > len(buf):
        raise MqttError(f"publish of {need} bytes exceeds the {len(buf)}-byte buffer")
    pos = _put_str(buf, 5, topic)
    if qos:
        struct.pack_into(">H", buf, pos, pid)
        pos += 2
    buf[pos : pos + len(payload)] = payload
    pos += len(payload)
    return _finish(buf, PUBLISH | (8 if dup else 0) | (qos << 1) | (1 if retain else 0), pos - 5, 5)


def subscribe_into(buf, pid, topics):
    """SUBSCRIBE to a list of (topic filter, qos); returns (start, end) inside buf."""
    if not topics:
        raise MqttError("SUBSCRIBE needs at least one topic")
    struct.pack_into(">H", buf, 5, pid)
    pos = 7
    for topic, qos in topics:
        if not topic or pos + 3 + len(topic) > len(buf):
            raise MqttError(f"bad or oversized topic filter {topic!r}")
        pos = _put_str(buf, pos, topic)
        buf[pos] = qos
        pos += 1
    return _finish(buf, SUBSCRIBE, pos - 5, 5)


def unsubscribe_into(buf, pid, topic):
    """UNSUBSCRIBE from one topic filter; returns (start, end) inside buf."""
    if not topic or 12 + len(topic) > len(buf):
        raise MqttError(f"bad or oversized topic filter {topic!r}")
    struct.pack_into(">H", buf, 5, pid)
    pos = _put_str(buf, 7, topic)
    return _finish(buf, UNSUBSCRIBE, pos - 5, 5)


def ack_into(buf, ptype, pid):
    """PUBACK (or another 2-byte-body ack) at buf[0:4]; returns 4."""
    struct.pack_into(">BBH", buf, 0, ptype, 2, pid)
    return 4


# --- what a client receives --------------------------------------------------------------------


def check_header(first, remaining):
    """The packet type of a fixed header a server may send to a client, or MqttProtocolError."""
    ptype = first & 0xF0
    if ptype == PUBLISH:
        if first & 0x06 == 0x06:
            raise MqttProtocolError("PUBLISH with QoS 3")
        if remaining < 3:
            raise MqttProtocolError("PUBLISH too short")
        return ptype
    if first in (CONNACK, PUBACK, UNSUBACK):
        if remaining != 2:
            raise MqttProtocolError(f"packet 0x{first:02x} with length {remaining}")
    elif first == SUBACK:
        if remaining < 3:
            raise MqttProtocolError("SUBACK too short")
    elif first == PINGRESP:
        if remaining != 0:
            raise MqttProtocolError("PINGRESP with a body")
    else:
        raise MqttProtocolError(f"unexpected packet 0x{first:02x} from the server")
    return ptype


def decode_connack(body, n):
    """(session_present, return_code) of a CONNACK body."""
    if n != 2 or body[0] & 0xFE:
        raise MqttProtocolError("malformed CONNACK")
    return body[0] & 1, body[1]


def decode_pid(body, n):
    """The packet identifier of a PUBACK/UNSUBACK body (or the start of a SUBACK)."""
    if n < 2:
        raise MqttProtocolError("packet identifier missing")
    pid = (body[0] << 8) | body[1]
    if pid == 0:
        raise MqttProtocolError("packet identifier 0")
    return pid


def decode_publish(first, body, n):
    """(topic_end, pid, payload_start) of a PUBLISH body: the topic is body[2:topic_end]."""
    tlen = (body[0] << 8) | body[1]
    topic_end = 2 + tlen
    qos = (first >> 1) & 3
    payload_at = topic_end + (2 if qos else 0)
    if tlen == 0 or payload_at > n:
        raise MqttProtocolError(f"malformed PUBLISH (topic length {tlen} in {n} bytes)")
    pid = 0
    if qos:
        pid = (body[topic_end] << 8) | body[topic_end + 1]
        if pid == 0:
            raise MqttProtocolError("PUBLISH with packet identifier 0")
    return topic_end, pid, payload_at
