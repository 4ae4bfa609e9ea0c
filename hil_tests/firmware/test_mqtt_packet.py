"""The MQTT 3.1.1 packet codec (firmware/lib/mqtt_packet.py): spec examples, property tests under
CPython, fuzzing of the decoders, and the same encodings computed inside real MicroPython.

Spec: OASIS MQTT Version 3.1.1, http://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html
"""

from __future__ import annotations

import struct

import mqtt_packet as mp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil_tests.firmware.conftest import json_lines, run_mpy

# Spec 2.2.3, table 2.4: the remaining-length encoding at the edges of 1..4 bytes.
REMAINING_LENGTH_TABLE = [
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2097151, "ffff7f"),
    (2097152, "80808001"),
    (268435455, "ffffff7f"),
]


@pytest.mark.parametrize(("value", "encoded"), REMAINING_LENGTH_TABLE)
def test_remaining_length_matches_the_spec_table(value, encoded):
    buf = bytearray(5)
    end = mp.put_remaining(buf, 0, value)
    assert buf[:end].hex() == encoded
    assert mp.parse_remaining(buf, 0, end) == (value, end)
    assert mp.parse_remaining(buf, 0, end - 1) is None  # incomplete


def test_remaining_length_of_five_bytes_is_a_protocol_error():
    with pytest.raises(mp.MqttProtocolError):
        mp.parse_remaining(b"\xff\xff\xff\xff\x7f", 0, 5)
    with pytest.raises(mp.MqttError):
        mp.put_remaining(bytearray(5), 0, mp.MAX_REMAINING + 1)


def test_connect_variable_header_matches_the_spec_example():
    # Spec 3.1.2.10, figure 3.6: protocol name MQTT, level 4, flags 0xCE (user name, password,
    # will QoS 1, will flag, clean session), keep alive 10.
    buf = bytearray(256)
    s, e = mp.connect_into(buf, b"cid", 10, True, b"u", b"p", b"w/t", b"bye", 1, False)
    pkt = bytes(buf[s:e])
    assert pkt[0] == 0x10 and pkt[1] == len(pkt) - 2
    assert pkt[2:12].hex() == "00044d5154540" + "4ce000a"
    # payload order (3.1.3): client id, will topic, will message, user name, password
    assert pkt[12:] == b"\x00\x03cid\x00\x03w/t\x00\x03bye\x00\x01u\x00\x01p"


def test_connect_of_the_meter_is_persistent_with_a_retained_will():
    buf = bytearray(128)
    s, e = mp.connect_into(buf, b"m1", 60, False, None, None, b"sg/s/m/status", b"offline")
    flags = buf[s + 9]
    assert flags == 0x04 | 0x08 | 0x20  # will, will QoS 1, will retain; clean session 0
    with pytest.raises(mp.MqttError):
        mp.connect_into(buf, b"m1", 60, False, None, b"secret")  # password without user


def _decode(pkt: bytes):
    """Header + body of one packet with the codec's own client-side decoders."""
    rl, at = mp.parse_remaining(pkt, 1, len(pkt))
    assert at + rl == len(pkt)
    mp.check_header(pkt[0], rl)
    return pkt[0], pkt[at:]


@settings(max_examples=300, deadline=None)
@given(
    topic=st.binary(min_size=1, max_size=200),
    payload=st.binary(max_size=700),
    qos=st.sampled_from([0, 1]),
    retain=st.booleans(),
    dup=st.booleans(),
    pid=st.integers(1, 65535),
)
def test_publish_round_trips(topic, payload, qos, retain, dup, pid):
    buf = bytearray(1024)
    s, e = mp.publish_into(buf, topic, payload, qos, retain, dup, pid)
    first, body = _decode(bytes(buf[s:e]))
    assert first & 0xF0 == mp.PUBLISH
    assert (first >> 1) & 3 == qos and bool(first & 1) == retain and bool(first & 8) == dup
    topic_end, got_pid, at = mp.decode_publish(first, body, len(body))
    assert body[2:topic_end] == topic and body[at:] == payload
    assert got_pid == (pid if qos else 0)


@settings(max_examples=100, deadline=None)
@given(topics=st.lists(st.tuples(st.binary(min_size=1, max_size=60), st.sampled_from([0, 1])),
                       min_size=1, max_size=5), pid=st.integers(1, 65535))  # fmt: skip
def test_subscribe_has_the_reserved_flags_and_all_filters(topics, pid):
    buf = bytearray(512)
    s, e = mp.subscribe_into(buf, pid, topics)
    pkt = bytes(buf[s:e])
    assert pkt[0] == 0x82  # spec 3.8.1: bits 3..0 are 0010
    rl, at = mp.parse_remaining(pkt, 1, len(pkt))
    body = pkt[at:]
    assert struct.unpack_from(">H", body)[0] == pid
    i, got = 2, []
    while i < len(body):
        n = struct.unpack_from(">H", body, i)[0]
        got.append((body[i + 2 : i + 2 + n], body[i + 2 + n]))
        i += 3 + n
    assert got == topics


def test_oversized_messages_are_refused_by_the_encoder():
    with pytest.raises(mp.MqttError):
        mp.publish_into(bytearray(64), b"t", b"x" * 100, 1, False, False, 1)
    with pytest.raises(mp.MqttError):
        mp.publish_into(bytearray(64), b"t", b"", 2, False, False, 1)  # QoS 2 is not ours


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        ("2003000000", "CONNACK with length 3"),
        ("4000", "PUBACK without identifier"),
        ("40020000", "PUBACK with identifier 0"),
        ("3601000000", "PUBLISH with QoS 3"),
        ("9002000100", "SUBACK too short"),
        ("d00100", "PINGRESP with a body"),
        ("1000", "CONNECT sent to a client"),
        ("6202000100", "PUBREL (QoS 2 is never used)"),
        ("f000", "reserved type 15"),
    ],
)
def test_invalid_headers_from_a_server_are_protocol_errors(packet, why):
    raw = bytes.fromhex(packet)
    rl, at = mp.parse_remaining(raw, 1, len(raw))
    with pytest.raises(mp.MqttProtocolError):
        mp.check_header(raw[0], rl)
        body = raw[at:]
        if raw[0] & 0xF0 == mp.PUBACK:
            mp.decode_pid(body, len(body))


@settings(max_examples=500, deadline=None)
@given(first=st.integers(0, 255), body=st.binary(max_size=64))
def test_decoders_raise_only_protocol_errors_on_random_input(first, body):
    try:
        mp.check_header(first, len(body))
        kind = first & 0xF0
        if kind == mp.PUBLISH:
            topic_end, pid, at = mp.decode_publish(first, body, len(body))
            assert 2 <= topic_end <= at <= len(body)
        elif kind == mp.CONNACK:
            mp.decode_connack(body, len(body))
        else:
            mp.decode_pid(body, len(body)) if body else None
    except mp.MqttProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=8))
def test_remaining_length_parser_never_reads_past_its_input(data):
    try:
        got = mp.parse_remaining(data, 0, len(data))
    except mp.MqttProtocolError:
        return
    if got is not None:
        assert got[1] <= len(data)


# The same encodings inside real MicroPython must give the same bytes as under CPython.
CASES = [
    ("connect", (b"meter-1", 60, False, b"user", b"pw", b"sg/s/m/status", b"offline")),
    ("publish", (b"sg/s/m/reading", bytes(range(167)), 1, False, True, 513)),
    ("publish", (b"t", b"x" * 120, 0, True, False, 0)),  # remaining length 127/128 edge
    ("publish", (b"t", b"x" * 121, 0, True, False, 0)),
    ("publish", (b"t/" * 300, b"y" * 300, 1, False, False, 65535)),  # 2-byte length
    ("subscribe", (7, [(b"sg/s/m/ack", 1), (b"sg/s/m/cmd", 1)])),
]


def _cpython(kind, args):
    buf = bytearray(1024)
    s, e = getattr(mp, f"{kind}_into")(buf, *args)
    return bytes(buf[s:e]).hex()


def test_micropython_encodes_the_same_bytes():
    code = (
        "import json, mqtt_packet as mp\n"
        "buf = bytearray(1024)\n"
        f"for kind, args in {CASES!r}:\n"
        "    s, e = getattr(mp, kind + '_into')(buf, *args)\n"
        "    print('J ' + json.dumps(bytes(buf[s:e]).hex()))\n"
        "raw = bytes(buf[s:e])\n"
        "try:\n"
        "    mp.parse_remaining(b'\\xff\\xff\\xff\\xff\\x7f', 0, 5)\n"
        "except mp.MqttProtocolError:\n"
        "    print('J \"refused\"')\n"
    )
    got = json_lines(run_mpy(code))
    assert got[:-1] == [_cpython(kind, args) for kind, args in CASES]
    assert got[-1] == "refused"
