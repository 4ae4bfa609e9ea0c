"""The gateway's MQTT 3.1.1 codec (gateway/mqtt/packets.py) against the meter's
(firmware/lib/mqtt_packet.py): each decodes what the other encodes, byte for byte, and the
stream reader gives the same packets however the bytes are split into reads."""

from __future__ import annotations

import mqtt_packet as mp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt import packets
from gateway.mqtt.packets import MqttProtocolError, PacketReader

topics_ = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=40
)
payloads = st.binary(max_size=300)


def _fw(encode, *args, size=2048):
    buf = bytearray(size)
    start, end = encode(buf, *args)
    return bytes(buf[start:end])


def _fw_decode(packet: bytes):
    """The meter's decoding of one whole packet: (first, topic, pid, payload) for a PUBLISH."""
    first = packet[0]
    remaining, at = mp.parse_remaining(packet, 1, len(packet))
    mp.check_header(first, remaining)
    body = packet[at:]
    assert len(body) == remaining
    topic_end, pid, payload_at = mp.decode_publish(first, body, remaining)
    return first, body[2:topic_end].decode(), pid, body[payload_at:]


@settings(max_examples=100, deadline=None)
@given(topics_, payloads, st.sampled_from([0, 1]), st.booleans(), st.integers(1, 0xFFFF))
def test_a_publish_is_the_same_bytes_as_the_meters_and_decodes_alike(
    topic, payload, qos, retain, pid
):
    ours = packets.publish(topic, payload, qos, retain, pid=pid)
    theirs = _fw(mp.publish_into, topic.encode(), payload, qos, retain, False, pid)
    assert ours == theirs
    first, fw_topic, fw_pid, fw_payload = _fw_decode(ours)
    assert (fw_topic, fw_payload, fw_pid) == (topic, payload, pid if qos else 0)
    [(got_first, body)] = PacketReader().feed(ours)
    message = packets.decode_publish(got_first, body)
    assert message == packets.Publish(topic, payload, qos, retain, pid if qos else 0)
    dup = packets.with_dup(ours)
    assert dup[0] == first | 0x08 and dup[1:] == ours[1:]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(topics_, payloads, st.sampled_from([0, 1])), min_size=1, max_size=20),
    st.lists(st.integers(1, 50), max_size=30),
)
def test_the_reader_yields_the_same_packets_however_the_stream_is_cut(messages, cuts):
    stream = b"".join(
        _fw(mp.publish_into, t.encode(), p, q, False, False, i + 1)
        for i, (t, p, q) in enumerate(messages)
    ) + bytes([packets.PUBACK, 2, 0, 7, packets.PINGRESP, 0])
    reader = PacketReader()
    got = []
    pos = 0
    for cut in cuts:
        got += reader.feed(stream[pos : pos + cut])
        pos += cut
    got += reader.feed(stream[pos:])
    decoded = [packets.decode_publish(f, b) for f, b in got[: len(messages)]]
    assert [(m.topic, m.payload, m.qos) for m in decoded] == messages
    assert got[len(messages) :] == [(packets.PUBACK, b"\x00\x07"), (packets.PINGRESP, b"")]
    assert packets.decode_pid(got[len(messages)][1]) == 7


@given(st.text(min_size=1, max_size=30), st.integers(0, 0xFFFF), st.booleans())
def test_connect_is_the_same_bytes_as_the_meters(client_id, keepalive, clean):
    ours = packets.connect(
        client_id, keepalive, clean, ("s/gw/status", b"offline", 1, True), "gw", "secret"
    )
    theirs = _fw(
        mp.connect_into,
        client_id.encode(),
        keepalive,
        clean,
        b"gw",
        b"secret",
        b"s/gw/status",
        b"offline",
        1,
        True,
    )
    assert ours == theirs
    assert packets.connect(client_id, keepalive, clean) == _fw(
        mp.connect_into, client_id.encode(), keepalive, clean
    )


def test_subscribe_puback_and_the_fixed_packets_match_the_meters():
    filters = [("sgrid/s/+/reading", 1), ("sgrid/s/+/event", 0)]
    ours = packets.subscribe(0xFFFF, filters)
    assert ours == _fw(mp.subscribe_into, 0xFFFF, [(f.encode(), q) for f, q in filters])
    buf = bytearray(4)
    mp.ack_into(buf, mp.PUBACK, 513)
    assert packets.puback(513) == bytes(buf)
    assert packets.PINGREQ_PACKET == bytes([mp.PINGREQ, 0])
    assert packets.DISCONNECT_PACKET == bytes([mp.DISCONNECT, 0])


def test_connack_is_decoded():
    [(first, body)] = PacketReader().feed(b"\x20\x02\x01\x00")
    assert first == packets.CONNACK
    assert packets.decode_connack(body) == (True, 0)
    with pytest.raises(MqttProtocolError):
        packets.decode_connack(b"\x02\x00")


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (b"\x10\x00", "unexpected packet"),  # a CONNECT: only a server receives it
        (b"\xa2\x03\x00\x01\x00", "unexpected packet"),  # UNSUBSCRIBE
        (b"\x40\x03\x00\x01\x00", "length"),  # PUBACK of three bytes
        (b"\xd0\x01\x00", "length"),  # PINGRESP with a body
        (b"\x90\x02\x00\x01", "SUBACK too short"),
        (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
    ],
)
def test_what_a_server_may_not_send_is_a_protocol_error(stream, why):
    with pytest.raises(MqttProtocolError, match=why):
        PacketReader().feed(stream)


@pytest.mark.parametrize(
    ("first", "body", "why"),
    [
        (0x34, b"\x00\x01t\x00\x01", "QoS 2"),
        (0x36, b"\x00\x01t\x00\x01", "QoS 3"),
        (0x32, b"\x00\x01t\x00\x00", "identifier 0"),
        (0x30, b"\x00\x00x", "topic length 0"),
        (0x32, b"\x00\x05t\x00", "topic length 5"),
        (0x30, b"\x00\x01\xff", "not UTF-8"),
    ],
)
def test_a_malformed_publish_is_a_protocol_error(first, body, why):
    with pytest.raises(MqttProtocolError, match=why):
        packets.decode_publish(first, body)


def test_an_oversized_packet_is_refused_before_it_is_buffered():
    reader = PacketReader(max_packet=100)
    with pytest.raises(MqttProtocolError, match="exceeds"):
        reader.feed(b"\x30\x80\x08")  # remaining length 1024


@given(st.binary(max_size=200))
def test_any_bytes_give_packets_or_a_protocol_error_never_another_exception(data):
    reader = PacketReader()
    try:
        for first, body in reader.feed(data):
            if first & 0xF0 == packets.PUBLISH:
                packets.decode_publish(first, body)
    except MqttProtocolError:
        pass
