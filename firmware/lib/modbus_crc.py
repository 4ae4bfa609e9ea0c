# CRC-16/MODBUS, the check of every Modbus RTU frame (Modbus over serial line V1.02, 6.2.2).
#
# Parameters (CRC RevEng catalogue "CRC-16/MODBUS"): width 16, poly 0x8005 (0xA001 reflected),
# init 0xFFFF, input and output reflected, no final xor; check("123456789") = 0x4B37.
# On the wire the CRC follows the frame low byte first. Because there is no final xor, the CRC
# of a whole frame *including* its two CRC bytes is 0 exactly when the frame is intact: the
# receiver checks a frame with one pass and no comparison.
#
# Table-driven: one table lookup per byte instead of eight shift/xor steps. The bench
# (hil_tests/bench/bench_modbus.py) measures both; the table costs 512 bytes of RAM, built once
# at import.

from array import array

from sgcore.compat import const

_POLY = const(0xA001)  # 0x8005 bit-reversed
_INIT = const(0xFFFF)


def _entry(i):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ _POLY if c & 1 else c >> 1
    return c


_TABLE = array("H", [_entry(i) for i in range(256)])


def crc16(buf, n):
    """CRC-16/MODBUS of buf[0:n] (bytes, bytearray or memoryview)."""
    crc = _INIT
    table = _TABLE
    for i in range(n):
        crc = (crc >> 8) ^ table[(crc ^ buf[i]) & 0xFF]
    return crc


def crc16_bitwise(buf, n):
    """The same CRC computed bit by bit (no table): the reference for tests and the bench."""
    crc = _INIT
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
    return crc


def frame_ok(buf, n):
    """True when buf[0:n] is a frame that ends with its correct CRC (n >= 4)."""
    return n >= 4 and crc16(buf, n) == 0


def append_crc(buf, n):
    """Write the CRC of buf[0:n] after it (low byte first); return the new length."""
    crc = crc16(buf, n)
    buf[n] = crc & 0xFF
    buf[n + 1] = crc >> 8
    return n + 2
