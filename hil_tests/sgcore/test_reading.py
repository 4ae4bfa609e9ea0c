"""The signed reading record (firmware/lib/sgcore/reading.py), shared by the meter and the
gateway's ingest: round trips, every format rule, and garbage that is refused or decodes to
exactly itself."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgcore import reading as rc

METER = bytes(range(16))
PREV = b"\x01" * 32


def _reading(**kw) -> rc.Reading:
    base = dict(meter_id=METER, seq=5, prev_hash=PREV, start=100, end=160, import_wh=12,
                export_wh=3)  # fmt: skip
    base.update(kw)
    return rc.Reading(**base)


def _full(r: rc.Reading) -> bytes:
    return rc.encode_body(r) + b"\x33" * rc.SIG_LEN


GOOD = _full(_reading())

u32, u64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)


@given(
    seq=u32,
    start=u32,
    length=st.integers(0, 3600),
    totals=st.tuples(u64, u64),
    interval=st.tuples(u32, u32),
    power=st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1)),
    relay=st.integers(0, 1),
    flags=st.integers(0, 255),
    credit=st.integers(-(2**31), 2**31 - 1),
    kind=st.sampled_from([rc.KIND_READING, rc.KIND_RELAY_EVENT]),
)
def test_readings_round_trip(
    seq, start, length, totals, interval, power, relay, flags, credit, kind
):
    end = min(start + length, 2**32 - 1)
    r = _reading(seq=seq, start=start, end=end, import_wh=totals[0], export_wh=totals[1],
                 interval_import_wh=interval[0], interval_export_wh=interval[1],
                 avg_power_w=power[0], peak_power_w=power[1], relay=relay, flags=flags,
                 credit_wh=credit, kind=kind)  # fmt: skip
    record = _full(r)
    back, body, sig = rc.decode(record)
    assert back == r and body == record[: rc.BODY_LEN] and sig == record[rc.BODY_LEN :]
    assert (back.seq, back.import_wh, back.credit_wh, back.kind) == (seq, totals[0], credit, kind)
    # FIELDS names what struct.unpack_from(FORMAT, record) gives (the gateway ingest's hot path)
    named = dict(zip(rc.FIELDS, struct.unpack_from(rc.FORMAT, record), strict=True))
    assert named.pop("version") == rc.VERSION
    assert named == {name: getattr(r, name) for name in rc.FIELDS[1:]}


def _with(offset: int, value: bytes) -> bytes:
    return GOOD[:offset] + value + GOOD[offset + len(value) :]


@pytest.mark.parametrize(
    "data, why",
    [
        (GOOD[:-1], "one byte short"),
        (GOOD + b"\x00", "one byte long"),
        (b"", "empty"),
        (_with(0, b"\x02"), "unknown version"),
        (_with(1, b"\x00"), "kind 0"),
        (_with(1, b"\x03"), "kind 3"),
        (_with(59, struct.pack(">I", 99)), "interval ends before it starts"),
        (_with(97, b"\x02"), "relay state 2"),
    ],
)
def test_malformed_records_are_refused(data, why):
    with pytest.raises(rc.ReadingFormatError):
        rc.decode(data)


def test_non_bytes_and_out_of_range_fields_are_refused():
    with pytest.raises(rc.ReadingFormatError):
        rc.decode("x" * rc.RECORD_LEN)
    with pytest.raises(rc.ReadingFormatError):
        rc.encode_body(_reading(seq=2**32))
    with pytest.raises(rc.ReadingFormatError):
        rc.encode_body(_reading(prev_hash=b"\x00" * 31))
    with pytest.raises(rc.ReadingFormatError):
        rc.encode_body(_reading(start=10, end=9))


def _flips():
    return st.tuples(st.integers(0, rc.RECORD_LEN - 1), st.integers(1, 255)).map(
        lambda t: GOOD[: t[0]] + bytes([GOOD[t[0]] ^ t[1]]) + GOOD[t[0] + 1 :]
    )


@given(st.one_of(st.binary(max_size=400), st.binary(min_size=167, max_size=167), _flips()))
def test_garbage_is_refused_or_decodes_to_exactly_itself(data):
    try:
        r, body, sig = rc.decode(data)
    except rc.ReadingFormatError:
        return
    assert len(data) == rc.RECORD_LEN and data[0] == rc.VERSION
    assert rc.encode_body(r) == body == data[: rc.BODY_LEN] and sig == data[rc.BODY_LEN :]


def test_hashes_and_meter_id():
    body = rc.encode_body(_reading())
    assert rc.digest(body) == hashlib.sha256(body).digest()
    assert rc.record_hash(GOOD) == hashlib.sha256(GOOD).digest()
    pub = b"\x03" + b"\x44" * 32
    assert rc.meter_id_from_pubkey(pub) == hashlib.sha256(pub).digest()[:16]
    assert struct.calcsize(rc.FORMAT) == rc.BODY_LEN and rc.RECORD_LEN == rc.BODY_LEN + rc.SIG_LEN
