"""The meter's Modbus RTU slave (firmware/lib/modbus_rtu.py) on an emulated board, with pymodbus
as the master over a real pty wire (RTU framer, 9600 baud), plus raw frames through pyserial."""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import serial
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest

from boards.emulated.host.board import BoardConfig, EmulatedBoard
from boards.emulated.host.wasm import RunOutcome
from hil_tests.rig.wire import PtyWire

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("firmware.test_modbus_rtu")

UNIT = 5
PUBKEY = bytes([0x03]) + bytes(range(0xA0, 0xC0))
METER_ID = bytes(range(0x10, 0x20))
VALUES: dict[str, Any] = {
    "import_wh": 5_000_000_123,  # above 2**32: the 32-bit copy wraps, the 64-bit one does not
    "export_wh": 77_001,
    "power_w": -1_234,
    "voltage_dv": 2_301,
    "relay": 1,
    "credit_wh": -20,  # a debt: the application refuses to close the relay
    "seq": 4_242,
    "current_ma": 5_350,
    "flags": 2,
    "meter_id": METER_ID.hex(),
    "public_key": PUBKEY.hex(),
}

# The board runs the slave in its main loop until the test drops a "stop" file on its flash.
# Its application side (on_write) applies the relay policy "never close without credit".
SCRIPT = """
import binascii, gc, json, os
import hal
import modbus_rtu
from sgcore.modbus_map import version_values
board = hal.Board()
values = json.loads(%r)
for key in ("meter_id", "public_key"):
    values[key] = binascii.unhexlify(values[key])
values.update(version_values("1.2.3"))
def on_write(name, value, commit=True):
    if name == "relay" and value == 1 and values["credit_wh"] <= 0:
        return 3
    if not commit:
        return 0
    values[name] = value
    print("W " + json.dumps([name, value]))
    return 0
def make_slave():
    return modbus_rtu.ModbusSlave(board.rs485_uart, board.rs485_de, board, values, unit_id=%d,
                                  baudrate=9600, on_write=on_write)
# (built in a function: a deep value stack would make this top-level frame heap-allocated,
# and the emulated board's GC cannot see such a frame: see docs/emulated-board.md)
slave = make_slave()
loops = 0
stopped = False
while not stopped:
    if not slave.poll():
        board.sleep_ms(3)
    gc.collect()
    loops += 1
    if loops %% 25 == 0:
        stopped = "stop" in os.listdir()
print("S " + json.dumps(slave.stats()))
"""


@dataclass
class Rig:
    wire: PtyWire
    board: EmulatedBoard
    flash: Path
    events: list[tuple[str, int]] = field(default_factory=list)
    outcome: list[RunOutcome] = field(default_factory=list)

    def client(self, timeout: float = 1.0) -> ModbusSerialClient:
        c = ModbusSerialClient(self.wire.b, baudrate=9600, timeout=timeout, retries=0)
        assert c.connect()
        return c

    def replies(self) -> bytes:
        return b"".join(self.wire.log["a->b"])

    def raw(self, frame: bytes, expect: int = 0, wait: float = 0.4) -> bytes:
        """Send raw bytes as the master; return the `expect`-byte reply (waiting up to 5 s), or,
        when no reply is expected, whatever came back within `wait` seconds."""
        with serial.Serial(self.wire.b, 9600, timeout=5 if expect else wait) as port:
            port.reset_input_buffer()
            port.write(frame)
            return port.read(expect or 300)


class _DeRecorder(logging.Handler):
    def __init__(self, events: list[tuple[str, int]]) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 3 and args[0] == "rs485_de":
            self.events.append(("de", int(args[2])))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    flash = tmp_path_factory.mktemp("modbus") / "flash"
    wire = PtyWire("rs485")
    board = EmulatedBoard(BoardConfig(flash_dir=flash, uart_paths={"rs485": wire.a}))
    r = Rig(wire, board, flash)
    # Instrument the board process: DE edges from its GPIO log, and the DE level at each write.
    board_log = logging.getLogger("board")
    handler = _DeRecorder(r.events)
    board_log.addHandler(handler)
    old_level = board_log.level
    board_log.setLevel(logging.INFO)
    uart = board.uarts["rs485"]
    plain_write = uart.write

    def recording_write(data: bytes) -> int:
        r.events.append(("tx", board.gpio["rs485_de"]))
        return plain_write(data)

    uart.write = recording_write  # type: ignore[method-assign]
    script = SCRIPT % (json.dumps(VALUES), UNIT)
    thread = threading.Thread(
        target=lambda: r.outcome.append(board.run_script(script)), daemon=True
    )
    thread.start()
    try:
        _wait_until_answering(r)
        yield r
    finally:
        (flash / "stop").write_text("")
        thread.join(60)
        board.close()
        wire.close()
        board_log.removeHandler(handler)
        board_log.setLevel(old_level)
    assert r.outcome and r.outcome[0].exit_code == 0, r.outcome


def _wait_until_answering(r: Rig) -> None:
    deadline = time.monotonic() + 90
    with r.client(timeout=0.5) as c:
        while time.monotonic() < deadline:
            if r.outcome:  # the script ended early: show why
                pytest.fail(f"board script ended: {r.outcome[0]}")
            try:
                if not c.read_holding_registers(0, count=1, device_id=UNIT).isError():
                    return
            except ModbusIOException:
                pass
    pytest.fail("the emulated meter never answered")


def _words_to_int(words: list[int], signed: bool = False) -> int:
    raw = b"".join(struct.pack(">H", w) for w in words)
    return int.from_bytes(raw, "big", signed=signed)


def _counter(r: Rig, address: int) -> int:
    with r.client() as c:
        return c.read_input_registers(address, count=1, device_id=UNIT).registers[0]


CRC_ERRORS, DROPPED = 0x0019, 0x001A


def _frame(body: bytes) -> bytes:
    from pymodbus.framer.rtu import FramerRTU

    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


@pytest.mark.parametrize("function", ["input", "holding"])
def test_reads_the_whole_measurement_area(rig, function):
    with rig.client() as c:
        read = c.read_input_registers if function == "input" else c.read_holding_registers
        res = read(0, count=0x41, device_id=UNIT)
    assert not res.isError(), res
    w = res.registers
    assert _words_to_int(w[0:2]) == VALUES["import_wh"] % 2**32
    assert _words_to_int(w[0x10:0x14]) == VALUES["import_wh"]
    assert _words_to_int(w[2:4]) == _words_to_int(w[0x14:0x18]) == VALUES["export_wh"]
    assert _words_to_int(w[4:6], signed=True) == VALUES["power_w"]
    assert w[6] == VALUES["voltage_dv"]
    assert w[7] in (0, 1)
    assert _words_to_int(w[8:10], signed=True) == VALUES["credit_wh"]
    assert _words_to_int(w[0xA:0xC]) == VALUES["seq"]
    assert _words_to_int(w[0xC:0xE]) == VALUES["current_ma"]
    assert w[0xE] == VALUES["flags"] and w[0xF] == 0
    assert w[0x20:0x24] == [1, 2, 3, 1]  # firmware 1.2.3, map version 1
    assert b"".join(struct.pack(">H", x) for x in w[0x28:0x30]) == METER_ID
    assert b"".join(struct.pack(">H", x) for x in w[0x30:0x41]) == PUBKEY + b"\x00"


def test_settings_area_is_holding_only(rig):
    with rig.client() as c:
        assert c.read_holding_registers(0x100, count=2, device_id=UNIT).registers[0] == UNIT
        res = c.read_input_registers(0x100, count=1, device_id=UNIT)
    assert res.isError() and res.exception_code == 2


def test_write_single_register_is_a_request_the_application_may_refuse(rig):
    with rig.client() as c:
        assert not c.write_register(0x101, 0, device_id=UNIT).isError()  # open: allowed
        assert c.read_input_registers(7, count=1, device_id=UNIT).registers == [0]
        refused = c.write_register(0x101, 1, device_id=UNIT)  # close with a debt: refused
        assert refused.isError() and refused.exception_code == 3
        assert c.read_input_registers(7, count=1, device_id=UNIT).registers == [0]
        out_of_range = c.write_register(0x101, 2, device_id=UNIT)
        assert out_of_range.isError() and out_of_range.exception_code == 3
        read_only = c.write_register(0x0007, 1, device_id=UNIT)
        assert read_only.isError() and read_only.exception_code == 2


def test_write_multiple_changes_the_unit_id_after_the_reply(rig):
    with rig.client(timeout=0.5) as c:
        res = c.write_registers(0x100, [7, 0], device_id=UNIT)
        assert not res.isError() and res.dev_id == UNIT  # answered from the old id
        assert c.read_holding_registers(0x100, count=1, device_id=7).registers == [7]
        with pytest.raises(ModbusIOException):
            c.read_holding_registers(0x100, count=1, device_id=UNIT)
        assert not c.write_register(0x100, UNIT, device_id=7).isError()
        assert c.read_holding_registers(0x100, count=1, device_id=UNIT).registers == [UNIT]


def test_write_multiple_is_checked_before_anything_is_written(rig):
    with rig.client() as c:
        bad_value = c.write_registers(0x100, [UNIT, 9], device_id=UNIT)  # relay 9: out of range
        assert bad_value.isError() and bad_value.exception_code == 3
        bad_address = c.write_registers(0x0FF, [0, UNIT, 0], device_id=UNIT)
        assert bad_address.isError() and bad_address.exception_code == 2
        assert c.read_holding_registers(0x100, count=1, device_id=UNIT).registers == [UNIT]


@pytest.mark.parametrize(("address", "count"), [(0x41, 1), (0x40, 2), (0xFF, 2), (0x102, 1)])
def test_illegal_address_gets_exception_02(rig, address, count):
    with rig.client() as c:
        res = c.read_holding_registers(address, count=count, device_id=UNIT)
    assert res.isError() and res.exception_code == 2


def test_illegal_function_gets_exception_01(rig):
    with rig.client() as c:
        res = c.read_coils(0, count=8, device_id=UNIT)
    assert res.isError() and res.exception_code == 1


def test_oversized_read_gets_exception_03(rig):
    class OversizedRead(ReadHoldingRegistersRequest):
        MAX_COUNT = 0xFFFF  # pymodbus would refuse to send it otherwise

    with rig.client() as c:
        res = c.execute(False, OversizedRead(address=0, count=126, dev_id=UNIT))
    assert res.isError() and res.exception_code == 3


def test_other_unit_ids_get_silence(rig):
    before = rig.replies()
    with rig.client(timeout=0.5) as c, pytest.raises(ModbusIOException):
        c.read_holding_registers(0, count=2, device_id=UNIT + 1)
    assert rig.replies() == before


def test_broadcast_write_is_executed_without_reply(rig):
    with rig.client() as c:
        assert not c.write_register(0x101, 0, device_id=UNIT).isError()
    rig.events.clear()
    # a broadcast reaches every meter and nobody answers; here the application refuses to close
    # the relay (debt), and a unit id is never taken from a broadcast
    assert rig.raw(_frame(bytes([0, 0x06, 0x01, 0x01, 0x00, 0x01]))) == b""
    assert rig.raw(_frame(bytes([0, 0x06, 0x01, 0x00, 0x00, 0x09]))) == b""
    assert not [e for e in rig.events if e[0] == "tx"]
    with rig.client() as c:
        assert c.read_holding_registers(0x100, count=2, device_id=UNIT).registers == [UNIT, 0]


def test_broadcast_write_that_the_policy_allows_is_applied(rig):
    with rig.client() as c:
        assert not c.write_register(0x101, 0, device_id=UNIT).isError()
        rig.board.gpio  # noqa: B018
        before = c.read_input_registers(0x18, count=1, device_id=UNIT).registers[0]
        # FC 16 broadcast of relay = 0 (opening is allowed): executed, not answered
        assert rig.raw(_frame(bytes([0, 0x10, 0x01, 0x01, 0x00, 0x01, 0x02, 0x00, 0x00]))) == b""
        after = c.read_input_registers(0x18, count=1, device_id=UNIT).registers[0]
        assert after == before + 2  # the broadcast and the previous read were executed
        assert c.read_holding_registers(0x101, count=1, device_id=UNIT).registers == [0]


def test_bad_crc_is_dropped_silently_and_counted(rig):
    errors = _counter(rig, CRC_ERRORS)
    good = _frame(bytes([UNIT, 0x03, 0x00, 0x00, 0x00, 0x02]))
    bad = good[:-1] + bytes([good[-1] ^ 0x55])
    assert rig.raw(bad) == b""
    assert _counter(rig, CRC_ERRORS) == errors + 1
    reply = rig.raw(good, expect=9)
    assert reply[:3] == bytes([UNIT, 0x03, 4]) and len(reply) == 9


def test_oversized_garbage_is_dropped_and_counted(rig):
    dropped = _counter(rig, DROPPED)
    garbage = bytes([UNIT, 0x10, 0x00, 0x00, 0x00, 0x7D, 0xFA]) + bytes(300)
    assert rig.raw(garbage) == b""
    assert _counter(rig, DROPPED) == dropped + 1
    assert _counter(rig, DROPPED) == dropped + 1  # and the slave answers again


def test_de_is_high_exactly_while_a_reply_is_written(rig):
    rig.events.clear()
    with rig.client() as c:
        for _ in range(3):
            assert not c.read_input_registers(0, count=10, device_id=UNIT).isError()
    deadline = time.monotonic() + 5
    while rig.events[-1:] != [("de", 0)] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rig.events == [("de", 1), ("tx", 1), ("de", 0)] * 3
    assert rig.board.gpio["rs485_de"] == 0


def test_the_gateway_table_decodes_what_the_meter_serves(rig):
    from gateway.modbus.decode import decode_block
    from gateway.modbus.registers import sg_esp32_meter as table
    from gateway.modbus.regmap import plan_blocks

    values: dict[str, float] = {}
    with rig.client() as c:
        for block in plan_blocks(table.REGISTER_MAP):
            res = c.read_input_registers(block.address, count=block.count, device_id=UNIT)
            assert not res.isError(), block
            values.update(decode_block(block, res.registers))
        address, count = table.identity_block()
        ident = c.read_input_registers(address, count=count, device_id=UNIT).registers
    assert values["import_wh"] == VALUES["import_wh"] % 2**32
    assert values["export_wh"] == VALUES["export_wh"]
    assert values["power"] == VALUES["power_w"]
    assert values["voltage_l1"] == pytest.approx(VALUES["voltage_dv"] / 10)
    assert values["current_l1"] == pytest.approx(VALUES["current_ma"] / 1000)
    assert values["credit_wh"] == VALUES["credit_wh"]
    assert values["seq"] == VALUES["seq"] and values["flags"] == VALUES["flags"]
    assert (values["fw_major"], values["fw_minor"], values["fw_patch"]) == (1, 2, 3)
    assert values["map_version"] == table.MAP_VERSION
    assert values["modbus_frames"] > 0
    meter_id_at = table.METER_ID_ADDRESS - address
    assert table.words_to_bytes(ident[meter_id_at:], table.METER_ID_BYTES) == METER_ID
    key_at = table.PUBLIC_KEY_ADDRESS - address
    assert table.words_to_bytes(ident[key_at:], table.PUBLIC_KEY_BYTES) == PUBKEY
