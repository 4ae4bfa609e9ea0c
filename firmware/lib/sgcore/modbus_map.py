# The meter's Modbus register map, as data (documented in docs/meter-modbus.md): the one copy,
# served by the firmware (modbus_pdu, modbus_rtu) and read by the gateway's poller
# (gateway/modbus/registers/sg_esp32_meter.py builds its table from it).
#
# Addresses are 0-based protocol addresses (the "30001"/"40001" of manuals is address 0).
# Encoding of a value spread over several registers:
#   - integers: big-endian word order (high word first) and big-endian bytes in each word;
#     negative values in two's complement of the entry's width (so a 2-register entry is an
#     int32 when signed, a uint32 otherwise); a value wider than the entry keeps its low bits
#     (the 32-bit energy totals wrap at 2**32 Wh; the 64-bit copies at 0x0010 never do);
#   - byte strings (meter id, public key): two bytes per register, first byte in the high half,
#     the last register zero-padded (33-byte key -> 17 registers).
# A value the application does not provide reads as 0. Unassigned addresses inside an area read
# as 0 (so block reads may span small gaps); a request that leaves every area gets exception 02.
#
# The values come from the application's provider (`provider.get(name)`); the names marked
# "slave" are served by modbus_rtu.ModbusSlave itself.

from sgcore.compat import const

MAP_VERSION = const(1)  # bumped on any incompatible change of the table below

# (first address, number of registers, value name)
MEASUREMENTS = (
    (0x0000, 2, "import_wh"),  # uint32 Wh, cumulative import (OBIS 1.8.0), wraps at 2**32
    (0x0002, 2, "export_wh"),  # uint32 Wh, cumulative export (OBIS 2.8.0), wraps at 2**32
    (0x0004, 2, "power_w"),  # int32 W, + import / - export
    (0x0006, 1, "voltage_dv"),  # uint16 decivolts
    (0x0007, 1, "relay"),  # uint16: 0 open, 1 closed
    (0x0008, 2, "credit_wh"),  # int32 Wh left; negative = debt of a critical load
    (0x000A, 2, "seq"),  # uint32 sequence number of the last signed record
    (0x000C, 2, "current_ma"),  # uint32 mA, RMS
    (0x000E, 1, "flags"),  # uint16, the FLAG_* bits of sgcore.reading
    (0x0010, 4, "import_wh"),  # uint64 Wh, the same total without wrap
    (0x0014, 4, "export_wh"),  # uint64 Wh
    (0x0018, 1, "frames"),  # slave: uint16 frames answered or executed (wraps)
    (0x0019, 1, "crc_errors"),  # slave: uint16 frames dropped for a bad CRC (wraps)
    (0x001A, 1, "dropped"),  # slave: uint16 oversized/garbage/short frames dropped (wraps)
    (0x001B, 1, "exceptions"),  # slave: uint16 exception responses sent (wraps)
    (0x0020, 1, "fw_major"),  # firmware version major.minor.patch (fwinfo.FIRMWARE_VERSION)
    (0x0021, 1, "fw_minor"),
    (0x0022, 1, "fw_patch"),
    (0x0023, 1, "map_version"),  # slave: MAP_VERSION
    (0x0028, 8, "meter_id"),  # 16 bytes: sha256(public key)[:16]
    (0x0030, 17, "public_key"),  # 33 bytes: compressed secp256k1 public key
)
MEASUREMENTS_END = const(0x0041)
SIGNED = ("power_w", "credit_wh")  # two's complement; every other integer is unsigned

# Holding registers that only exist for FC 03/06/16.
SETTINGS = (
    (0x0100, 1, "unit_id"),  # slave: this meter's unit id (1..247)
    (0x0101, 1, "relay"),  # reads the relay state; a write is a request to the application
)
SETTINGS_START = const(0x0100)
SETTINGS_END = const(0x0102)

# FC 04 (input registers) and FC 03 (holding registers): the entries and the legal areas
# [start, end). The measurements are readable both ways (many masters only use FC 03).
INPUT_ENTRIES = MEASUREMENTS
INPUT_AREAS = ((0x0000, MEASUREMENTS_END),)
HOLDING_ENTRIES = MEASUREMENTS + SETTINGS
HOLDING_AREAS = ((0x0000, MEASUREMENTS_END), (SETTINGS_START, SETTINGS_END))

# Writable holding registers: (address, name handed to the application's on_write, min, max).
# A value outside [min, max] gets exception 03; the application may still refuse a legal value
# (relay policy: never close without credit, never open a critical load) with its own code.
WRITABLE = (
    (0x0100, "unit_id", 1, 247),
    (0x0101, "relay", 0, 1),
)


def version_values(version):
    """{"fw_major": .., "fw_minor": .., "fw_patch": ..} from a "major.minor.patch" string, for
    the application's provider (call once at boot; it allocates)."""
    parts = version.split(".") + ["0", "0", "0"]
    keys = ("fw_major", "fw_minor", "fw_patch")
    out = {}
    for i in range(3):
        try:
            out[keys[i]] = int(parts[i])
        except ValueError:
            out[keys[i]] = 0
    return out
