"""Read what a meter left on its flash directory, from the host (for tests and the bench).

Only public data: the journal's signed records. The key file is never read here; the public key
comes from the console banner, as an installer would read it for enrollment.
"""

from __future__ import annotations

import binascii
import re
import struct
from pathlib import Path

from sgcore.reading import RECORD_LEN

ENTRY_LEN = 4 + RECORD_LEN + 4


def journal_records(flash_dir: Path) -> dict[int, bytes]:
    """Every intact record in the journal's segment files, by sequence number."""
    out: dict[int, bytes] = {}
    for seg in sorted((flash_dir / "journal").glob("s*.seg")):
        try:
            data = seg.read_bytes()
        except FileNotFoundError:  # the running meter freed this segment after the listing
            continue
        for off in range(0, len(data) - ENTRY_LEN + 1, ENTRY_LEN):
            entry = data[off : off + ENTRY_LEN]
            if entry[:2] != b"SJ" or struct.unpack(">H", entry[2:4])[0] != RECORD_LEN:
                break
            crc = struct.unpack("<I", entry[-4:])[0]  # little-endian: docs/journal.md
            if binascii.crc32(entry[:-4]) != crc:
                break
            record = entry[4:-4]
            out[struct.unpack(">I", record[19:23])[0]] = record
    return out


def pubkey_from_console(lines: list[str]) -> bytes:
    for line in reversed(lines):
        m = re.search(r"public key ([0-9a-f]{66})", line)
        if m:
            return bytes.fromhex(m.group(1))
    raise LookupError("no public key in the console output")
