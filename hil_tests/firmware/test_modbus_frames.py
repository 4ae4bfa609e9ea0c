"""CRC-16/MODBUS, the frame parser and request execution of the meter's Modbus slave: properties
under CPython (the firmware modules import there through their `const` shim), the same replies in
MicroPython."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from hil_tests.bench.bench_modbus import GUEST_RIG
from hil_tests.firmware.conftest import FIRMWARE_LIB, json_lines, run_mpy
from sgcore import modbus_map as mmap


def _load(name: str) -> ModuleType:
    # The firmware modules import each other by plain name, as on the device.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FIRMWARE_LIB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


crc = _load("modbus_crc")
pdu = _load("modbus_pdu")
rtu = _load("modbus_rtu")
RIG: dict[str, Any] = {}
exec(GUEST_RIG, RIG)  # the in-memory UART, pin and clock (the same source runs in MicroPython)

UNIT = 1
VALUES: dict[str, Any] = {
    "import_wh": 9_876_543_210,
    "export_wh": 12_345,
    "power_w": -2_750,
    "voltage_dv": 2_299,
    "relay": 1,
    "credit_wh": 480_000,
    "seq": 77,
    "current_ma": 11_950,
    "flags": 6,
    "fw_major": 0,
    "fw_minor": 1,
    "fw_patch": 0,
    "meter_id": bytes(range(16)),
    "public_key": b"\x02" + bytes(range(100, 132)),
}
GAP = rtu.silence_ms(9600)


def _frame(body: bytes) -> bytes:
    c = crc.crc16(body, len(body))
    return body + bytes([c & 0xFF, c >> 8])


# --- CRC -----------------------------------------------------------------------------------------


def test_crc_matches_published_check_values():
    # CRC RevEng catalogue, CRC-16/MODBUS: check = 0x4B37
    # (https://reveng.sourceforge.io/crc-catalogue/16.htm#crc.cat.crc-16-modbus)
    assert crc.crc16(b"123456789", 9) == 0x4B37
    # the frame "read 10 holding registers of unit 1 from 0" ends in C5 CD on the wire
    # (Modbus over serial line V1.02, appendix B, and every Modbus tool's first example)
    assert _frame(bytes.fromhex("01030000000A")).hex() == "01030000000ac5cd"


@given(st.binary(max_size=300))
def test_crc_table_bitwise_and_pymodbus_agree(data):
    table = crc.crc16(data, len(data))
    assert table == crc.crc16_bitwise(data, len(data))
    assert FramerRTU.compute_CRC(data) == int.from_bytes(table.to_bytes(2, "little"), "big")


@given(st.binary(min_size=2, max_size=254), st.data())
def test_a_flipped_bit_always_breaks_the_frame(body, data):
    frame = bytearray(body + b"\x00\x00")
    n = crc.append_crc(frame, len(body))
    assert n == len(frame) and crc.frame_ok(frame, n)
    bit = data.draw(st.integers(0, 8 * n - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    assert not crc.frame_ok(frame, n)


# --- a reference model of the register map (struct-encoded, independent of _encode) --------------


def _model_words(holding: bool) -> dict[int, int]:
    words: dict[int, int] = {}
    entries = mmap.HOLDING_ENTRIES if holding else mmap.INPUT_ENTRIES
    own = {"unit_id": UNIT, "map_version": mmap.MAP_VERSION}
    for first, count, name in entries:
        v = own.get(name, VALUES.get(name))
        if v is None:
            raw = bytes(2 * count)
        elif isinstance(v, int):
            raw = (v % 2 ** (16 * count)).to_bytes(2 * count, "big")
        else:
            raw = bytes(v).ljust(2 * count, b"\x00")
        for i in range(count):
            words[first + i] = struct.unpack(">H", raw[2 * i : 2 * i + 2])[0]
    return words


HOLDING, INPUT = _model_words(True), _model_words(False)
COUNTERS = range(0x18, 0x1C)  # change while the slave works: not compared


def _expected_read(fc: int, start: int, qty: int) -> bytes:
    areas = mmap.HOLDING_AREAS if fc == 3 else mmap.INPUT_AREAS
    if not 1 <= qty <= 125:
        return bytes([UNIT, fc | 0x80, 3])
    if not any(a <= start and start + qty <= b for a, b in areas):
        return bytes([UNIT, fc | 0x80, 2])
    words = HOLDING if fc == 3 else INPUT
    data = b"".join(struct.pack(">H", words.get(a, 0)) for a in range(start, start + qty))
    return bytes([UNIT, fc, 2 * qty]) + data


def _slave(data: bytes = b"", chunk: int = 8, on_write: Any = None) -> tuple[Any, Any, Any, Any]:
    uart, pin, clock = RIG["MemUart"](data, chunk), RIG["Pin"](), RIG["Clock"]()
    slave = rtu.ModbusSlave(uart, pin, clock, VALUES, unit_id=UNIT, on_write=on_write)
    return slave, uart, pin, clock


def _replies(sent: bytes) -> list[bytes]:
    # split the slave's output into frames: every reply is checked by its CRC
    out, i = [], 0
    while i < len(sent):
        if sent[i + 1] & 0x80:
            n = 5
        elif sent[i + 1] in (3, 4):
            n = 5 + sent[i + 2]
        else:
            n = 8
        frame = sent[i : i + n]
        assert crc.frame_ok(frame, n), frame.hex()
        out.append(frame[:-2])
        i += n
    return out


def _drain(slave: Any, uart: Any, clock: Any, max_polls: int = 2000) -> None:
    """Poll until the UART is empty and the frame in progress ended in a silence."""
    for _ in range(max_polls):
        if uart.pos >= len(uart.data) and slave._n == 0:
            return
        if not slave.poll():
            clock.t += 1
    raise AssertionError("the slave did not consume its input")


# --- requests, in bursts -------------------------------------------------------------------------

reads = st.tuples(
    st.sampled_from([3, 4]),
    st.one_of(st.integers(0, 0x50), st.integers(0xF0, 0x110), st.integers(0, 0xFFFF)),
    st.one_of(st.integers(1, 20), st.integers(0, 130)),
    st.sampled_from([UNIT, UNIT, UNIT, 2, 0]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(reads, min_size=1, max_size=12), st.integers(1, 64))
def test_back_to_back_requests_in_any_chunking_are_each_answered(requests, chunk):
    stream = b"".join(
        _frame(struct.pack(">BBHH", unit, fc, start, qty)) for fc, start, qty, unit in requests
    )
    slave, uart, pin, clock = _slave(stream, chunk)
    _drain(slave, uart, clock)
    ours = [(fc, a, q) for fc, a, q, unit in requests if unit == UNIT]
    got = _replies(bytes(uart.sent))
    assert len(got) == len(ours)
    for reply, (fc, start, qty) in zip(got, ours, strict=True):
        expected = _expected_read(fc, start, qty)
        assert reply[:3] == expected[:3]
        for k in range(len(expected[3:]) // 2):  # the live counters change: not compared
            if start + k not in COUNTERS:
                assert reply[3 + 2 * k : 5 + 2 * k] == expected[3 + 2 * k : 5 + 2 * k]
        assert len(reply) == len(expected)
    assert pin.v == 0 and pin.edges == 2 * len(ours)
    assert slave.crc_errors == slave.dropped == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.binary(max_size=80)), max_size=10),
    st.integers(1, 64),
)
def test_other_slaves_replies_in_the_same_burst_do_not_hide_our_requests(talk, chunk):
    # a bus seen by a slow main loop: requests to us, and other meters' requests and replies
    stream, ours = b"", 0
    for to_us, qty, data in talk:
        unit = UNIT if to_us else 7
        stream += _frame(struct.pack(">BBHH", unit, 3, 0, qty))
        if to_us:
            ours += 1
        else:
            reply = data[: 2 * qty].ljust(2 * qty, b"\x00")
            stream += _frame(bytes([unit, 3, 2 * qty]) + reply)
    slave, uart, _pin, clock = _slave(stream, chunk)
    _drain(slave, uart, clock)
    assert len(_replies(bytes(uart.sent))) == ours
    assert slave.crc_errors == slave.dropped == 0


@settings(max_examples=80, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.integers(1, 64))
def test_garbage_is_dropped_and_the_next_frame_after_a_silence_is_answered(garbage, chunk):
    slave, uart, _pin, clock = _slave(garbage, chunk)
    _drain(slave, uart, clock)
    clock.t += GAP
    slave.poll()  # the silence ends whatever was left
    before = len(uart.sent)
    uart.feed(_frame(bytes([UNIT, 4, 0, 6, 0, 1])))
    _drain(slave, uart, clock)
    assert bytes(uart.sent[before:]) == _frame(bytes([UNIT, 4, 2, 0x08, 0xFB]))  # 2299 dV


def test_a_bad_crc_is_counted_when_the_silence_ends_the_frame():
    bad = bytearray(_frame(bytes([UNIT, 3, 0, 0, 0, 2])))
    bad[-1] ^= 1
    slave, uart, _pin, clock = _slave(bytes(bad))
    slave.poll()
    assert slave.crc_errors == 0  # still waiting: the frame may be longer than its code says
    clock.t += GAP
    slave.poll()
    assert slave.crc_errors == 1 and not uart.sent and slave._n == 0


def test_a_short_frame_and_an_oversized_frame_are_dropped():
    slave, uart, _pin, clock = _slave(bytes([UNIT, 3]))
    _drain(slave, uart, clock)
    assert slave.dropped == 1
    uart.feed(bytes([UNIT, 0x10, 0, 0, 0, 0x7D, 0xFA]) + bytes(260))  # 259 > 256-byte ADU
    _drain(slave, uart, clock)
    assert slave.dropped == 2 and not uart.sent


def test_an_unknown_function_is_framed_by_the_silence_and_gets_exception_01():
    slave, uart, _pin, clock = _slave(_frame(bytes([UNIT, 0x2B, 0x0E, 0x01, 0x00])))
    _drain(slave, uart, clock)
    assert _replies(bytes(uart.sent)) == [bytes([UNIT, 0xAB, 1])]


# --- writes --------------------------------------------------------------------------------------

writes = st.tuples(
    st.integers(0xFE, 0x103),  # start
    st.lists(st.integers(0, 300), min_size=1, max_size=4),  # values
    st.sampled_from([6, 16]),
)


@settings(max_examples=100, deadline=None)
@given(writes)
def test_a_write_is_applied_entirely_or_not_at_all(write):
    start, values, fc = write
    if fc == 6:
        values = values[:1]
        body = struct.pack(">BBHH", UNIT, 6, start, values[0])
    else:
        body = struct.pack(">BBHHB", UNIT, 16, start, len(values), 2 * len(values))
        body += b"".join(struct.pack(">H", v) for v in values)
    applied: list[tuple[str, int]] = []

    def on_write(name: str, value: int, commit: bool = True) -> int:
        if name == "relay" and value == 1:
            return 3  # the policy refuses closing the relay (no credit)
        if commit:
            applied.append((name, value))
        return 0

    slave, uart, _pin, clock = _slave(_frame(body), 64, on_write)
    _drain(slave, uart, clock)
    (reply,) = _replies(bytes(uart.sent))
    addresses = range(start, start + len(values))
    legal = {0x100: (1, 247), 0x101: (0, 1)}
    if not all(a in legal for a in addresses):
        assert reply == bytes([UNIT, fc | 0x80, 2]) and not applied
    elif not all(legal[a][0] <= v <= legal[a][1] for a, v in zip(addresses, values, strict=True)):
        assert reply == bytes([UNIT, fc | 0x80, 3]) and not applied
    elif (0x101, 1) in zip(addresses, values, strict=True):  # refused by policy: nothing applied
        assert reply == bytes([UNIT, fc | 0x80, 3]) and not applied
        assert slave.unit_id == UNIT
    else:
        assert reply == body[:6]
        names = {0x100: "unit_id", 0x101: "relay"}
        assert applied == [(names[a], v) for a, v in zip(addresses, values, strict=True)]
        if 0x100 in addresses:
            assert slave.unit_id == values[addresses.index(0x100)]


def test_without_an_application_hook_every_register_is_read_only():
    slave, uart, _pin, clock = _slave(_frame(bytes([UNIT, 6, 1, 1, 0, 0])))
    _drain(slave, uart, clock)
    assert _replies(bytes(uart.sent)) == [bytes([UNIT, 0x86, 2])]


def test_version_values_parse_loosely():
    assert mmap.version_values("1.22.3") == {"fw_major": 1, "fw_minor": 22, "fw_patch": 3}
    assert mmap.version_values("2.x") == {"fw_major": 2, "fw_minor": 0, "fw_patch": 0}


# --- the same replies in MicroPython ------------------------------------------------------------

PARITY_FRAMES = [
    bytes([UNIT, 3, 0, 0, 0, 0x41]),
    bytes([UNIT, 4, 0, 0x10, 0, 8]),
    bytes([UNIT, 3, 0, 0x2F, 0, 0x12]),
    bytes([UNIT, 3, 1, 0, 0, 2]),
    bytes([UNIT, 4, 1, 0, 0, 1]),
    bytes([UNIT, 3, 0, 0, 0, 126]),
    bytes([UNIT, 6, 1, 1, 0, 0]),
    bytes([UNIT, 16, 1, 0, 0, 2, 4, 0, 9, 0, 1]),
    bytes([9, 3, 0, 0, 0, 1]),
    bytes([9, 1, 0, 0, 0, 8]),
    bytes([9, 0x2B, 0x0E]),
]


def test_micropython_gives_the_same_replies_as_cpython(tmp_path):
    stream = b"".join(_frame(f) for f in PARITY_FRAMES)
    accept = lambda name, value, commit=True: 0  # noqa: E731
    slave, uart, _pin, clock = _slave(stream, 5, accept)
    _drain(slave, uart, clock)
    values = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in VALUES.items()}
    code = (
        "import binascii, json\nimport modbus_rtu\n"
        + GUEST_RIG
        + f"values = json.loads({json.dumps(values)!r})\n"
        + "for k in ('meter_id', 'public_key'):\n    values[k] = binascii.unhexlify(values[k])\n"
        + f"uart = MemUart({stream!r}, 5)\nclock = Clock()\n"
        + "def accept(name, value, commit=True):\n    return 0\n"
        + "def make():\n"
        + f"    return modbus_rtu.ModbusSlave(uart, Pin(), clock, values, unit_id={UNIT},"
        + " on_write=accept)\n"
        + "slave = make()\n"
        + "for _ in range(500):\n    if not slave.poll():\n        clock.t += 1\n"
        + "print('J ' + json.dumps([binascii.hexlify(uart.sent).decode(), slave.stats()]))\n"
    )
    sent_hex, stats = json_lines(run_mpy(code))[0]
    assert bytes.fromhex(sent_hex) == bytes(uart.sent)
    assert stats == slave.stats()
    assert len(_replies(bytes(uart.sent))) == len(PARITY_FRAMES) and stats["unit_id"] == 9


def test_the_gateway_table_agrees_with_the_firmware_map():
    from gateway.modbus.registers import sg_esp32_meter

    # the first entry of a name (import_wh and export_wh also have a 64-bit copy further on)
    firmware = {name: (first, count) for first, count, name in reversed(mmap.MEASUREMENTS)}
    renamed = {"power": "power_w", "voltage_l1": "voltage_dv", "current_l1": "current_ma"}
    for reg in sg_esp32_meter.REGISTER_MAP.registers:
        name = renamed.get(reg.name, reg.name.removeprefix("modbus_"))
        assert firmware[name][0] == reg.address, reg.name
        assert firmware[name][1] == reg.width, reg.name
    assert sg_esp32_meter.MAP_VERSION == mmap.MAP_VERSION
    assert firmware["meter_id"] == (sg_esp32_meter.METER_ID_ADDRESS, 8)
    assert firmware["public_key"] == (sg_esp32_meter.PUBLIC_KEY_ADDRESS, 17)
    assert (sg_esp32_meter.UNIT_ID_ADDRESS, "unit_id", 1, 247) in mmap.WRITABLE
    assert (sg_esp32_meter.RELAY_COMMAND_ADDRESS, "relay", 0, 1) in mmap.WRITABLE
    # the gateway serves it under both model names
    from gateway.modbus.registers import MODELS

    assert MODELS["esp32_meter"] is MODELS["sg_esp32_meter"] is sg_esp32_meter.REGISTER_MAP


# --- transmit: DE around the reply ---------------------------------------------------------------


def _uart_with(**methods: Any) -> Any:
    return type("Uart", (RIG["MemUart"],), methods)(_frame(bytes([UNIT, 4, 0, 6, 0, 1])), 8)


def test_de_stays_high_until_flush_returns():
    seen: list[int] = []
    uart = _uart_with(flush=lambda self: seen.append(pin.v))
    pin, clock = RIG["Pin"](), RIG["Clock"]()
    slave = rtu.ModbusSlave(uart, pin, clock, VALUES, unit_id=UNIT)
    assert slave.poll() and seen == [1] and pin.v == 0 and pin.edges == 2


def test_de_stays_high_until_txdone_then_drops():
    polls: list[int] = []

    def txdone(self: Any) -> bool:
        polls.append(pin.v)
        clock.t += 1
        return len(polls) >= 3

    uart = _uart_with(txdone=txdone)
    pin, clock = RIG["Pin"](), RIG["Clock"]()
    slave = rtu.ModbusSlave(uart, pin, clock, VALUES, unit_id=UNIT)
    assert slave.poll() and polls == [1, 1, 1] and pin.v == 0


def test_txdone_wait_is_bounded():
    def txdone(self: Any) -> bool:
        clock.t += 1
        return False  # a UART that never reports done

    uart = _uart_with(txdone=txdone)
    pin, clock = RIG["Pin"](), RIG["Clock"]()
    slave = rtu.ModbusSlave(uart, pin, clock, VALUES, unit_id=UNIT)
    assert slave.poll() and pin.v == 0
    assert clock.t <= 7 * slave._char_ms + 5 + 2  # 7-byte reply + margin


def test_a_failing_uart_write_never_leaves_the_transmitter_on():
    def write(self: Any, buf: Any) -> int:
        raise OSError(5, "EIO")

    uart = _uart_with(write=write)
    pin, clock = RIG["Pin"](), RIG["Clock"]()
    slave = rtu.ModbusSlave(uart, pin, clock, VALUES, unit_id=UNIT)
    assert slave.poll() and pin.v == 0 and slave.tx_errors == 1
    uart.write = lambda buf: len(buf)  # the UART recovers: the next request is answered
    uart.feed(_frame(bytes([UNIT, 4, 0, 6, 0, 1])))
    assert slave.poll() and slave.frames == 2 and slave.tx_errors == 1


def test_any_other_error_in_a_write_drops_de_and_propagates():
    def write(self: Any, buf: Any) -> int:
        raise MemoryError

    uart = _uart_with(write=write)
    pin, clock = RIG["Pin"](), RIG["Clock"]()
    slave = rtu.ModbusSlave(uart, pin, clock, VALUES, unit_id=UNIT)
    with pytest.raises(MemoryError):
        slave.poll()
    assert pin.v == 0 and pin.edges == 2
