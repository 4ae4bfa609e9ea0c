"""The Seamless Grid ESP32 meter's Modbus map, version 1: the gateway's copy of the firmware's
table (`firmware/lib/modbus_map.py`, documented in docs/meter-modbus.md).

Input registers (FC 0x04); the firmware serves the same measurement area over FC 0x03 too, so the
provisional `esp32_meter` table (holding registers 0x0000-0x000B) is a compatible subset of this
one. Integers only: big-endian words, high word first. Not in this table because RegisterMap has
no such types: the uint64 energy totals at 0x0010/0x0014 (the uint32 ones here wrap at 2**32 Wh)
and the identity byte strings, read with `identity_block()` and `words_to_bytes()`.
`hil_tests/firmware/test_modbus_rtu.py` checks this table against the running firmware.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.modbus.regmap import Register, RegisterMap

MAP_VERSION = 1  # the firmware serves its own at MAP_VERSION_ADDRESS: compare before trusting
MAP_VERSION_ADDRESS = 0x0023
METER_ID_ADDRESS, METER_ID_BYTES = 0x0028, 16  # sha256(public key)[:16]
PUBLIC_KEY_ADDRESS, PUBLIC_KEY_BYTES = 0x0030, 33  # compressed secp256k1, 17 registers
UNIT_ID_ADDRESS = 0x0100  # holding, writable 1..247 (reply comes from the old id)
RELAY_COMMAND_ADDRESS = 0x0101  # holding, write 0/1: a request the meter's relay policy may refuse

REGISTER_MAP = RegisterMap(
    model="sg_esp32_meter",
    max_block=64,  # the meter answers up to 125; 64 covers 0x0000-0x003F in one read
    registers=(
        Register("import_wh", 0x0000, "uint32", "Wh"),
        Register("export_wh", 0x0002, "uint32", "Wh"),
        Register("power", 0x0004, "int32", "W"),  # + import / - export
        Register("voltage_l1", 0x0006, "uint16", "V", scale=0.1),
        Register("relay", 0x0007, "uint16", ""),  # 0 open, 1 closed
        Register("credit_wh", 0x0008, "int32", "Wh"),  # negative: debt of a critical load
        Register("seq", 0x000A, "uint32", ""),  # last signed record
        Register("current_l1", 0x000C, "uint32", "A", scale=0.001),
        Register("flags", 0x000E, "uint16", ""),  # sgcore.reading FLAG_* bits
        Register("modbus_frames", 0x0018, "uint16", ""),  # counters wrap at 2**16
        Register("modbus_crc_errors", 0x0019, "uint16", ""),
        Register("modbus_dropped", 0x001A, "uint16", ""),
        Register("modbus_exceptions", 0x001B, "uint16", ""),
        Register("fw_major", 0x0020, "uint16", ""),
        Register("fw_minor", 0x0021, "uint16", ""),
        Register("fw_patch", 0x0022, "uint16", ""),
        Register("map_version", MAP_VERSION_ADDRESS, "uint16", ""),
    ),
)


def identity_block() -> tuple[int, int]:
    """(address, count) of one input-register read covering the meter id and the public key."""
    end = PUBLIC_KEY_ADDRESS + (PUBLIC_KEY_BYTES + 1) // 2
    return METER_ID_ADDRESS, end - METER_ID_ADDRESS


def words_to_bytes(words: Sequence[int], size: int) -> bytes:
    """A byte string the meter serves two bytes per register, high byte first, zero-padded."""
    raw = b"".join(int(w).to_bytes(2, "big") for w in words)
    if len(raw) < size:
        raise ValueError(f"{len(words)} registers hold {len(raw)} bytes, need {size}")
    return raw[:size]
