"""BOLT #1 message table: encode/decode round-trips, data-entry extension, typed errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ln.codec import wire
from gateway.ln.errors import UnknownMessageError, WireError


def test_bolt1_ping_matches_spec_layout() -> None:
    raw = wire.TABLE.encode("ping", num_pong_bytes=4, ignored=b"\x00\x00")
    assert raw == bytes.fromhex("0012000400020000")
    msg = wire.TABLE.decode(raw)
    assert (msg.name, msg["num_pong_bytes"], msg["ignored"]) == ("ping", 4, b"\x00\x00")


def test_adding_a_message_is_a_data_entry() -> None:
    table = wire.TABLE.copy()
    table.register(
        "sg_update",
        32801,
        [
            ("channel_id", "bytes32"),
            ("number", "u64"),
            ("flags", "u8"),
            ("cltv", "u32"),
            ("amount", "u16"),
            ("point", "bytes33"),
            ("sig", "bytes64"),
            ("blob", "varbytes"),
        ],
    )
    values = dict(
        channel_id=b"\x01" * 32,
        number=2**64 - 1,
        flags=7,
        cltv=500,
        amount=65535,
        point=b"\x02" * 33,
        sig=b"\x03" * 64,
        blob=b"hello",
    )
    msg = table.decode(table.encode("sg_update", **values))
    assert dict(msg.fields) == values and msg.tail == b""
    assert "sg_update" not in wire.TABLE.by_name  # the copy did not touch the shared table


def test_trailing_extension_bytes_are_kept_aside() -> None:
    raw = wire.TABLE.encode("pong", ignored=b"") + b"\xfe\x01"
    msg = wire.TABLE.decode(raw)
    assert msg.tail == b"\xfe\x01" and msg["ignored"] == b""


@pytest.mark.parametrize("type_num, close", [(32769, False), (32768, True)])
def test_unknown_type_reports_whether_to_close(type_num: int, close: bool) -> None:
    with pytest.raises(UnknownMessageError) as err:
        wire.TABLE.decode(type_num.to_bytes(2, "big") + b"xyz")
    assert err.value.type_num == type_num
    assert wire.must_close(err.value.type_num) is close


@pytest.mark.parametrize(
    "name, values",
    [
        ("nope", {}),
        ("ping", {"num_pong_bytes": 1}),
        ("ping", {"num_pong_bytes": 65536, "ignored": b""}),
        ("ping", {"num_pong_bytes": -1, "ignored": b""}),
        ("ping", {"num_pong_bytes": True, "ignored": b""}),
        ("ping", {"num_pong_bytes": 1, "ignored": "text"}),
        ("ping", {"num_pong_bytes": 1, "ignored": b"", "extra": 1}),
        ("error", {"channel_id": b"short", "data": b""}),
        ("pong", {"ignored": bytes(65534)}),
    ],
)
def test_bad_values_raise_wire_error(name: str, values: dict) -> None:
    with pytest.raises(WireError):
        wire.TABLE.encode(name, **values)


@pytest.mark.parametrize(
    "entry",
    [
        ("ping", 99, []),
        ("x", 18, []),
        ("x", 70000, []),
        ("x", 40001, [("a", "u128")]),
        ("x", 40001, [("a", "u8"), ("a", "u8")]),
    ],
)
def test_bad_registrations_are_refused(entry: tuple) -> None:
    with pytest.raises(WireError):
        wire.TABLE.copy().register(*entry)


@settings(max_examples=150)
@given(
    channel_id=st.binary(min_size=32, max_size=32),
    data=st.binary(max_size=2000),
    num=st.integers(0, 65535),
)
def test_round_trip(channel_id: bytes, data: bytes, num: int) -> None:
    for name, values in (
        ("error", {"channel_id": channel_id, "data": data}),
        ("warning", {"channel_id": channel_id, "data": data}),
        ("init", {"globalfeatures": data[:10], "features": data}),
        ("ping", {"num_pong_bytes": num, "ignored": data}),
    ):
        msg = wire.TABLE.decode(wire.TABLE.encode(name, **values))
        assert msg.name == name and dict(msg.fields) == values


@settings(max_examples=300)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_wire_error(raw: bytes) -> None:
    try:
        msg = wire.TABLE.decode(raw)
    except WireError:
        return
    assert wire.TABLE.encode(msg.name, **msg.fields) + msg.tail == raw
