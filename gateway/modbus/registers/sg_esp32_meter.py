"""The Seamless Grid ESP32 meter's Modbus map as the gateway polls it, built from the firmware's
own table `sgcore.modbus_map` (documented in docs/meter-modbus.md): addresses, widths and
signedness come from there; this module only names and scales the values for the gateway.

Input registers (FC 0x04); the firmware serves the same measurement area over FC 0x03 too, so the
provisional `esp32_meter` table (holding registers 0x0000-0x000B) is a compatible subset of this
one. Integers only: big-endian words, high word first. Not in this table because RegisterMap has
no such types: the uint64 energy totals at 0x0010/0x0014 (the uint32 ones here wrap at 2**32 Wh)
and the identity byte strings, read with `identity_block()` and `words_to_bytes()`.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.modbus.regmap import Register, RegisterMap
from sgcore import modbus_map as fw

# firmware value name -> (gateway name, unit, scale); the firmware's other values are not polled
_VIEW = {
    "import_wh": ("import_wh", "Wh", 1.0),
    "export_wh": ("export_wh", "Wh", 1.0),
    "power_w": ("power", "W", 1.0),  # + import / - export
    "voltage_dv": ("voltage_l1", "V", 0.1),
    "relay": ("relay", "", 1.0),  # 0 open, 1 closed
    "credit_wh": ("credit_wh", "Wh", 1.0),  # negative: debt of a critical load
    "seq": ("seq", "", 1.0),  # last signed record
    "current_ma": ("current_l1", "A", 0.001),
    "flags": ("flags", "", 1.0),  # sgcore.reading FLAG_* bits
    "frames": ("modbus_frames", "", 1.0),  # counters wrap at 2**16
    "crc_errors": ("modbus_crc_errors", "", 1.0),
    "dropped": ("modbus_dropped", "", 1.0),
    "exceptions": ("modbus_exceptions", "", 1.0),
    "fw_major": ("fw_major", "", 1.0),
    "fw_minor": ("fw_minor", "", 1.0),
    "fw_patch": ("fw_patch", "", 1.0),
    "map_version": ("map_version", "", 1.0),
}
_DTYPE = {(1, False): "uint16", (1, True): "int16", (2, False): "uint32", (2, True): "int32"}


def _entry(name: str) -> tuple[int, int]:
    """(address, registers) of the first entry named `name` (the 64-bit copies come later)."""
    for first, count, entry in fw.HOLDING_ENTRIES:
        if entry == name:
            return first, count
    raise KeyError(name)


def _registers() -> tuple[Register, ...]:
    out = []
    for name, (gw_name, unit, scale) in _VIEW.items():
        first, count = _entry(name)
        dtype = _DTYPE[(count, name in fw.SIGNED)]
        out.append(Register(gw_name, first, dtype, unit, scale=scale))
    return tuple(sorted(out, key=lambda r: r.address))


MAP_VERSION = fw.MAP_VERSION  # the firmware serves its own at MAP_VERSION_ADDRESS: compare first
MAP_VERSION_ADDRESS = _entry("map_version")[0]
METER_ID_ADDRESS, METER_ID_BYTES = _entry("meter_id")[0], 16  # sha256(public key)[:16]
PUBLIC_KEY_ADDRESS, PUBLIC_KEY_BYTES = _entry("public_key")[0], 33  # compressed secp256k1
UNIT_ID_ADDRESS = _entry("unit_id")[0]  # holding, writable 1..247 (reply comes from the old id)
RELAY_COMMAND_ADDRESS = fw.SETTINGS[1][0]  # holding, write 0/1: the relay policy may refuse it

REGISTER_MAP = RegisterMap(
    model="sg_esp32_meter",
    max_block=64,  # the meter answers up to 125; 64 covers 0x0000-0x003F in one read
    registers=_registers(),
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
