"""Hypothesis fuzzing: the reading decoder path of the ingest and the Modbus response parsing."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from gateway.errors import ModbusReadError, RegisterMapError
from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from gateway.modbus.decode import decode_block
from gateway.modbus.poller import values_from_response
from gateway.modbus.registers import MODELS
from gateway.modbus.regmap import plan_blocks
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("gateway.test_fuzz")

METER = SoftMeter(secret=b"\x07" * 32)
GOOD = [METER.next_record() for _ in range(3)]


@pytest.fixture(scope="module")
def ingest_env(tmp_path_factory):
    store = ReadingStore(tmp_path_factory.mktemp("fuzz") / "r.sqlite3")
    store.enroll(METER.pubkey)
    ing = Ingestor(store)
    assert len(ing.ingest([Incoming(METER.hex, GOOD[0], 0.0)]).stored) == 1
    yield store, ing
    store.close()


def _mutations():
    flips = st.tuples(st.integers(0, rc.RECORD_LEN - 1), st.integers(1, 255)).map(
        lambda t: GOOD[1][: t[0]] + bytes([GOOD[1][t[0]] ^ t[1]]) + GOOD[1][t[0] + 1 :]
    )
    return st.one_of(st.binary(max_size=400), st.binary(min_size=167, max_size=167), flips)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_mutations())
def test_fuzzed_reading_payloads_never_crash_nor_change_state(ingest_env, payload):
    store, ing = ingest_env
    out = ing.ingest([Incoming(METER.hex, payload, 0.0)])
    if payload == GOOD[1]:
        return  # the one valid record (a flip that cancels out cannot happen: xor with >= 1)
    assert out.stored == [] and len(out.rejections) == 1
    assert store.count() == 1 and ing.head(METER.meter_id) == (0, rc.record_hash(GOOD[0]))


@given(data=_mutations())
def test_reading_decoder_raises_only_its_format_error(data):
    """Garbage is refused with ReadingFormatError, or it is a well-formed record: what was
    decoded re-encodes to the very bytes given (a decoder accepting everything fails here)."""
    try:
        reading, body, sig = rc.decode(data)
    except rc.ReadingFormatError:
        assert data != GOOD[1]  # the valid record itself is never refused
        return
    assert len(data) == rc.RECORD_LEN and rc.encode_body(reading) == body == data[: rc.BODY_LEN]
    assert sig == data[rc.BODY_LEN :]


def test_reading_decoder_refuses_a_truncated_or_padded_record():
    for bad in (GOOD[1][:-1], GOOD[1] + b"\x00", b"", b"\x00" * rc.RECORD_LEN):
        with pytest.raises(rc.ReadingFormatError):
            rc.decode(bad)
    assert rc.decode(GOOD[1])[1] == GOOD[1][: rc.BODY_LEN]


BLOCKS = [b for m in MODELS.values() for b in plan_blocks(m)]


@given(block=st.sampled_from(BLOCKS), words=st.lists(st.integers(-5, 70000), max_size=50))
def test_block_decoder_returns_values_or_register_map_error(block, words):
    try:
        values = decode_block(block, words)
    except RegisterMapError:
        return
    assert set(values) == {r.name for r in block.registers}


def _rtu_frame(unit: int, fc: int, payload: bytes) -> bytes:
    body = bytes([unit, fc]) + payload
    return body + struct.pack(">H", FramerRTU.compute_CRC(body))  # pymodbus returns it wire-ordered


_responses = st.one_of(
    st.binary(max_size=260),  # line noise
    st.builds(  # well-framed responses (valid CRC) with arbitrary content
        _rtu_frame,
        st.integers(0, 255),
        st.sampled_from([0x03, 0x04, 0x83, 0x84, 0x2B, 0x7F]),
        st.one_of(
            st.binary(max_size=252),
            st.integers(0, 60).flatmap(
                lambda n: st.binary(min_size=2 * n, max_size=2 * n).map(
                    lambda b: bytes([len(b)]) + b
                )
            ),
        ),
    ),
)


@settings(max_examples=400, deadline=None)
@given(block=st.sampled_from(BLOCKS), frame=_responses)
def test_modbus_response_parsing_yields_values_or_a_read_error(block, frame):
    framer = FramerRTU(DecodePDU(is_server=False))
    try:
        _used, pdu = framer.handleFrame(frame, 0, 0)
    except ModbusException:
        return  # pymodbus refused the frame: the client reports it as an I/O error (counted)
    if pdu is None:
        return
    try:
        values = values_from_response(block, pdu)
    except ModbusReadError:
        return
    assert set(values) == {r.name for r in block.registers}


def test_a_well_formed_sdm630_response_parses_to_values():
    block = plan_blocks(MODELS["sdm630"])[0]
    words = [0] * block.count
    words[0:2] = struct.unpack(">2H", struct.pack(">f", 230.5))
    frame = _rtu_frame(1, 0x04, bytes([2 * block.count]) + struct.pack(f">{block.count}H", *words))
    _used, pdu = FramerRTU(DecodePDU(is_server=False)).handleFrame(frame, 0, 0)
    assert values_from_response(block, pdu)["voltage_l1"] == 230.5
