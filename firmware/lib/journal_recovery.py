# Boot-time recovery of the journal's segment files (format: docs/journal.md).
#
# Every entry is checked in order: magic, length, CRC32 (little-endian) and the seq it must carry (segments
# are contiguous: s<first>.seg holds first, first+1, ...). At the first bad entry (bit flip,
# truncated tail, torn last record, garbage) the segment is rewritten up to its last good
# entry through a temp file and an atomic rename, every later segment is removed, and one
# log line says what was cut. Removing damaged data never touches an entry before it.

import binascii
import os

from sgcore.compat import const

ENTRY_LEN = const(175)  # 2 magic + 2 length + 167 record + 4 crc32
_RECORD_LEN = const(167)
_CRC_AT = const(171)
_RESIDUE = const(0x2144DF1C)  # CRC-32 of any message followed by its own CRC (little-endian)
_MAGIC = b"SJ"


def entry_ok(buf, mv, seq):
    """True when the entry in buf (mv: a memoryview of all of it) is intact and is record seq.

    The CRC is stored little-endian, so the CRC-32 of a whole intact entry is the constant
    residue 0x2144DF1C, a small int: checking an entry allocates nothing (boot scans every
    entry, and automatic GC may be off, as on the emulated board).
    """
    if buf[0] != 0x53 or buf[1] != 0x4A or buf[2] != 0 or buf[3] != _RECORD_LEN:  # b"SJ", 167
        return False
    if (buf[23] << 24) | (buf[24] << 16) | (buf[25] << 8) | buf[26] != seq:
        return False
    return binascii.crc32(mv) == _RESIDUE


def _segments(path):
    firsts = []
    for name in os.listdir(path):
        if name.endswith(".tmp") and name != "head.tmp":
            os.remove(path + "/" + name)  # an interrupted rewrite: the .seg is still intact
        elif name[0] == "s" and name.endswith(".seg"):
            try:
                firsts.append(int(name[1:-4]))
            except ValueError:
                pass
    firsts.sort()
    return firsts


def _count_good(name, first, buf, mv):
    """(good entries, file size) of one segment."""
    good = 0
    size = 0
    with open(name, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            size += n
            if (
                n == ENTRY_LEN
                and size == (good + 1) * ENTRY_LEN
                and entry_ok(buf, mv, first + good)
            ):
                good += 1
        return good, size


def _rewrite(name, good, buf):
    """Keep the first `good` entries of a segment (MicroPython has no truncate())."""
    with open(name, "rb") as src, open(name[:-4] + ".tmp", "wb") as dst:
        for _ in range(good):
            src.readinto(buf)
            dst.write(buf)
        dst.flush()
    os.rename(name[:-4] + ".tmp", name)


def recover(path, buf, mv, log):
    """Check and repair the segments under path.

    Returns (firsts of the kept segments, last good record or None, bytes cut, files written).
    """
    kept = []
    cut = 0
    writes = 0
    last = None
    expected = None
    damaged = False
    for first in _segments(path):
        name = f"{path}/s{first}.seg"
        if damaged or (expected is not None and first != expected):
            size = os.stat(name)[6]
            log(f"journal: removed s{first}.seg ({size} bytes) after damage or a gap")
            os.remove(name)
            cut += size
            writes += 1
            damaged = True
            continue
        good, size = _count_good(name, first, buf, mv)
        if size == 0:  # power cut right after the segment was created
            os.remove(name)
            writes += 1
            continue
        if good * ENTRY_LEN != size:
            damaged = True
            cut += size - good * ENTRY_LEN
            log(
                f"journal: s{first}.seg damaged after seq {first + good - 1}: "
                f"cut {size - good * ENTRY_LEN} bytes"
            )
            writes += 1
            if good == 0:
                os.remove(name)
                continue
            _rewrite(name, good, buf)
        if good:
            kept.append(first)
            expected = first + good
            with open(name, "rb") as f:
                f.seek((good - 1) * ENTRY_LEN)
                f.readinto(buf)
            last = bytes(mv[4:_CRC_AT])
    return kept, last, cut, writes
