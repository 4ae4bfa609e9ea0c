"""The BL0942 energy IC's UART frame and its reference calibration (docs/journal.md, "BL0942"):
the one copy, read by the firmware's driver (firmware/lib/bl0942.py) and the emulated chip
(boards/emulated/host/bl0942_chip.py).

Request 0x58|addr 0xAA; the chip answers 23 bytes, all fields little-endian u24:
  0 header 0x55 | 1 I_RMS | 4 V_RMS | 7 I_FAST_RMS | 10 WATT (s24) | 13 CF_CNT
  16 FREQ (period in us, the top byte is 0) | 19 STATUS | 22 checksum
  checksum = ~((0x58|addr) + bytes 0..21) & 0xFF   (as ESPHome's bl0942 component checks it)
CF_CNT counts |energy|: one count = 419430.4 / pref W*s, so eref counts per kWh.
"""

from sgcore.compat import const

READ = const(0x58)
FULL_PACKET = const(0xAA)
HEADER = const(0x55)
FRAME_LEN = const(23)
CF_MASK = const(0xFFFFFF)
STATUS_REVERSE = const(0x01)  # CF_REVP_F: active power flows backwards (export)
# offsets of the u24 fields
I_RMS = const(1)
V_RMS = const(4)
I_FAST_RMS = const(7)
WATT = const(10)
CF_CNT = const(13)
FREQ = const(16)
STATUS = const(19)

# ESPHome's bl0942 reference constants (shunt 1 mOhm, divider 3.9 MOhm : 1 kOhm), raw units per
# V / A / W and CF counts per kWh; a board.json "calibration" overrides them per board.
DEFAULT_CALIBRATION = {
    "bl0942_uref": 15883.34116,
    "bl0942_iref": 251065.6814,
    "bl0942_pref": 623.0270705,
    "bl0942_eref": 5347.484240,  # = pref * 3600000 / 419430.4
}


def checksum(frame, address=0):
    """The checksum byte of a frame (over its first 22 bytes; no allocation)."""
    s = READ | address
    for i in range(FRAME_LEN - 1):
        s += frame[i]
    return ~s & 0xFF


def u24(frame, at):
    return frame[at] | (frame[at + 1] << 8) | (frame[at + 2] << 16)


def encode_frame(i_rms, v_rms, i_fast_rms, watt, cf_cnt, period_us, status, address=0):
    """The chip's full-packet answer for raw register values (what an emulated chip sends)."""
    out = bytearray(FRAME_LEN)
    out[0] = HEADER
    values = (i_rms, v_rms, i_fast_rms, watt, cf_cnt, period_us, status)
    for i in range(7):
        v = values[i] & 0xFFFFFF
        at = 1 + 3 * i
        out[at] = v & 0xFF
        out[at + 1] = (v >> 8) & 0xFF
        out[at + 2] = v >> 16
    out[FRAME_LEN - 1] = checksum(out, address)
    return bytes(out)
