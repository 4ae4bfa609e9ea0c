"""HIL: the complete meter firmware answers a pymodbus master on its RS-485 UART (a real pty)."""

from __future__ import annotations

import time

import pytest
from pymodbus.client import ModbusSerialClient

from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.flash_reader import pubkey_from_console
from hil_tests.rig.wire import PtyWire


@pytest.fixture
def meter_on_bus(tmp_path):
    with PtyWire("rs485") as wire:
        board = BoardProcess(
            flash_dir=tmp_path / "flash", board_id="mb-meter", uarts={"rs485": wire.a}
        )
        board.start()
        board.expect("meter ready")
        # a loaded host may keep the meter from answering for seconds (a late answer to a timed-out
        # request would be taken for the retry's)
        client = ModbusSerialClient(wire.b, baudrate=9600, timeout=5.0, retries=2)
        assert client.connect()
        try:
            yield board, client
        finally:
            client.close()
            board.stop()


def _u32(regs: list[int]) -> int:
    return regs[0] << 16 | regs[1]


def test_master_reads_energy_identity_and_firmware_version(meter_on_bus):
    board, client = meter_on_bus
    board.pulses(1234)  # 1000 imp/kWh: 1234 Wh
    deadline = time.monotonic() + 60
    while True:
        regs = client.read_input_registers(0, count=0x10, device_id=1).registers
        if _u32(regs[0:2]) == 1234 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert _u32(regs[0:2]) == 1234  # 1.8.0 import, Wh
    assert regs[7] == 0  # relay open: no credit
    key_regs = client.read_holding_registers(0x30, count=17, device_id=1).registers
    key = b"".join(r.to_bytes(2, "big") for r in key_regs)[:33]
    assert key == pubkey_from_console(board.console)
    assert client.read_input_registers(0x20, count=3, device_id=1).registers == [0, 1, 0]


def test_relay_cannot_be_closed_over_modbus_without_credit(meter_on_bus):
    board, client = meter_on_bus
    refused = client.write_register(0x101, 1, device_id=1)
    assert refused.isError() and refused.exception_code == 3
    time.sleep(0.3)
    assert board.state()["gpio"]["relay"] == 0


def test_a_new_unit_id_survives_a_power_cut(meter_on_bus):
    board, client = meter_on_bus
    assert not client.write_register(0x100, 7, device_id=1).isError()
    assert client.read_input_registers(0x20, count=1, device_id=7).registers == [0]
    board.power_cut()
    board.start()
    board.expect("meter ready")
    assert client.read_input_registers(0x20, count=1, device_id=7).registers == [0]


def test_a_refused_fc16_write_changes_nothing(meter_on_bus):
    # unit_id (0x100) and relay (0x101) in one FC16 write; closing the relay without credit is
    # refused by policy, so the unit id must not change either (docs/meter-modbus.md)
    board, client = meter_on_bus
    refused = client.write_registers(0x100, [5, 1], device_id=1)
    assert refused.isError() and refused.exception_code == 3
    assert client.read_input_registers(0x20, count=1, device_id=1).registers == [0]
    board.power_cut()
    board.start()
    board.expect("meter ready")
    assert client.read_input_registers(0x20, count=1, device_id=1).registers == [0]
    cfg = board.flash_dir / "config.json"
    assert not cfg.exists() or '"modbus_unit"' not in cfg.read_text()
