# Modbus request execution, pure (no I/O): a checked request frame in, the reply frame out.
#
# Function codes 03 (read holding registers), 04 (read input registers), 06 (write single
# register), 16 (write multiple registers); every other function gets exception 01. Checks in
# the order of the Modbus application protocol V1.1b3 (section 6): function (01), quantity and
# frame shape (03), address (02), then execution (03, or the application's own code).
#
# `bank` supplies the values: bank.get(name) -> int | bytes | None, and
# bank.write(name, value) -> 0 when applied, else the exception code to answer.
# Frames are ADUs: unit id, function code, data, CRC (the CRC is checked by the caller and is
# included in n; the reply is written without its CRC).

from struct import pack_into

from sgcore.compat import const
from sgcore.modbus_map import HOLDING_AREAS, HOLDING_ENTRIES, INPUT_AREAS, INPUT_ENTRIES, WRITABLE

EX_ILLEGAL_FUNCTION = const(1)
EX_ILLEGAL_ADDRESS = const(2)
EX_ILLEGAL_VALUE = const(3)
_MAX_READ = const(125)  # registers per read (a 256-byte ADU)
_MAX_WRITE = const(123)  # registers per FC 16 write
_SMALL_MAX = const(0x3FFFFFFF)  # MicroPython's small ints (31 bits on an ESP32): no allocation
_SMALL_MIN = const(-0x40000000)


def request_length(buf, n):
    """Length of the request frame that starts at buf[0], as far as buf[0:n] tells:
    > 0 the whole frame's length, 0 not known yet, -1 unknown function (ends at the silence)."""
    if n < 2:
        return 0
    fc = buf[1]
    if 1 <= fc <= 6:  # reads of bits/registers and single writes: 8 bytes
        return 8
    if fc == 15 or fc == 16:
        return 9 + buf[6] if n >= 7 else 0
    return -1


def response_length(buf, n):
    """Length of a *reply* frame (another slave talking on the bus) that starts at buf[0]:
    > 0 the whole frame's length, 0 not known yet, -1 not a standard reply."""
    if n < 3:
        return 0
    fc = buf[1]
    if fc & 0x80:
        return 5
    if 1 <= fc <= 4:
        return 5 + buf[2]
    if fc == 5 or fc == 6 or fc == 15 or fc == 16:
        return 8
    return -1


def is_write(fc):
    return fc == 6 or fc == 16


def _exception(tx, code):
    tx[1] |= 0x80
    tx[2] = code
    return 3


def _inside(areas, start, qty):
    end = start + qty
    for first, last in areas:
        if start >= first and end <= last:
            return True
    return False


def _writable(address):
    for i in range(len(WRITABLE)):
        if WRITABLE[i][0] == address:
            return i
    return -1


def _zero(tx, a, b):
    for i in range(a, b):
        tx[i] = 0


def _encode(bank, entries, start, qty, tx, off):
    # Every register of [start, start + qty) into tx[off:], 2 bytes each, 0 where unassigned.
    end = start + qty
    done = start  # registers before this one are written
    for first, count, name in entries:  # sorted by address
        if first >= end:
            break
        last = first + count
        if last <= start:
            continue
        lo = first if first > start else start
        hi = last if last < end else end
        p = off + 2 * (lo - start)
        if lo > done:
            _zero(tx, off + 2 * (done - start), p)
        done = hi
        v = bank.get(name)
        if v is None:
            _zero(tx, p, off + 2 * (hi - start))
        elif isinstance(v, int):
            if count == 1:
                tx[p] = (v >> 8) & 0xFF
                tx[p + 1] = v & 0xFF
            elif lo == first and hi == last and _SMALL_MIN <= v <= _SMALL_MAX and count != 3:
                pack_into(">i" if count == 2 else ">q", tx, p, v)  # one C call, no allocation
            else:  # part of the entry, or a value beyond a small int (allocates)
                for r in range(lo, hi):
                    w = (v >> (16 * (last - 1 - r))) & 0xFFFF
                    tx[p] = w >> 8
                    tx[p + 1] = w & 0xFF
                    p += 2
        else:
            size = len(v)
            for r in range(lo, hi):
                k = 2 * (r - first)
                tx[p] = v[k] if k < size else 0
                tx[p + 1] = v[k + 1] if k + 1 < size else 0
                p += 2
    if done < end:
        _zero(tx, off + 2 * (done - start), off + 2 * qty)


def _read(bank, req, n, tx, entries, areas):
    if n != 8:
        return _exception(tx, EX_ILLEGAL_VALUE)
    start = req[2] << 8 | req[3]
    qty = req[4] << 8 | req[5]
    if qty < 1 or qty > _MAX_READ:
        return _exception(tx, EX_ILLEGAL_VALUE)
    if not _inside(areas, start, qty):
        return _exception(tx, EX_ILLEGAL_ADDRESS)
    tx[2] = 2 * qty
    _encode(bank, entries, start, qty, tx, 3)
    return 3 + 2 * qty


def _write_one(bank, address, value, commit=True):
    # 0 when written (commit) or writable (not commit), else an exception code
    i = _writable(address)
    if i < 0:
        return EX_ILLEGAL_ADDRESS
    entry = WRITABLE[i]
    if value < entry[2] or value > entry[3]:
        return EX_ILLEGAL_VALUE
    return bank.write(entry[1], value, commit)


def _write_multiple(bank, req, n, tx):
    if n < 9:
        return _exception(tx, EX_ILLEGAL_VALUE)
    start = req[2] << 8 | req[3]
    qty = req[4] << 8 | req[5]
    count = req[6]
    if qty < 1 or qty > _MAX_WRITE or count != 2 * qty or n != 9 + count:
        return _exception(tx, EX_ILLEGAL_VALUE)
    # Check every register before writing any: a rejected request changes nothing.
    for r in range(qty):
        if _writable(start + r) < 0:
            return _exception(tx, EX_ILLEGAL_ADDRESS)
    for r in range(qty):
        i = _writable(start + r)
        value = req[7 + 2 * r] << 8 | req[8 + 2 * r]
        if value < WRITABLE[i][2] or value > WRITABLE[i][3]:
            return _exception(tx, EX_ILLEGAL_VALUE)
    # All or nothing: the application's policy sees every value before any is applied.
    for commit in (False, True):
        for r in range(qty):
            code = _write_one(bank, start + r, req[7 + 2 * r] << 8 | req[8 + 2 * r], commit)
            if code:
                return _exception(tx, code)
    for i in range(2, 6):
        tx[i] = req[i]
    return 6


def execute(bank, req, n, tx):
    """Execute the request frame req[0:n]; write the reply (without CRC) into tx; return its
    length. An exception reply has the function code's high bit set."""
    fc = req[1]
    tx[0] = req[0]
    tx[1] = fc
    if fc == 3:
        return _read(bank, req, n, tx, HOLDING_ENTRIES, HOLDING_AREAS)
    if fc == 4:
        return _read(bank, req, n, tx, INPUT_ENTRIES, INPUT_AREAS)
    if fc == 6:
        if n != 8:
            return _exception(tx, EX_ILLEGAL_VALUE)
        code = _write_one(bank, req[2] << 8 | req[3], req[4] << 8 | req[5])
        if code:
            return _exception(tx, code)
        for i in range(2, 6):
            tx[i] = req[i]
        return 6
    if fc == 16:
        return _write_multiple(bank, req, n, tx)
    return _exception(tx, EX_ILLEGAL_FUNCTION)
