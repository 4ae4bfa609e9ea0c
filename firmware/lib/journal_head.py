# The journal's ack state on flash (format: docs/journal.md): which records the gateway has
# acknowledged, so boot knows where the unacknowledged ones start.
#   head      magic b"SJH1" | i32 acked seq | sha256 of that record | u32 crc32 (big-endian)
#   head.tmp  the next ack state while it is written (renamed over head)
# A cut while head.tmp is written leaves head intact; a cut after head.tmp is complete but
# before the rename is finished at the next boot (the newer intact one wins).
import binascii
import os
import struct

from sgcore.compat import const

_STATE_LEN = const(44)
_STATE_MAGIC = b"SJH1"


def write_head(path, acked, digest):
    data = bytearray(_STATE_LEN)
    data[0:4] = _STATE_MAGIC
    struct.pack_into(">i", data, 4, acked)
    data[8:40] = digest
    struct.pack_into(">I", data, 40, binascii.crc32(memoryview(data)[0:40]))
    head = path + "/head"
    with open(head + ".tmp", "wb") as f:
        f.write(data)
        f.flush()
    try:
        os.rename(head + ".tmp", head)
    except OSError:  # a filesystem that will not rename over a file: head.tmp wins at boot
        os.remove(head)
        os.rename(head + ".tmp", head)


def _read(name, log):
    try:
        with open(name, "rb") as f:
            data = f.read(_STATE_LEN + 1)
    except OSError:
        return None
    if (
        len(data) != _STATE_LEN
        or data[0:4] != _STATE_MAGIC
        or struct.unpack_from(">I", data, 40)[0] != binascii.crc32(data[0:40])
    ):
        log(f"journal: ignoring damaged ack state {name}")
        return None
    return struct.unpack_from(">i", data, 4)[0], bytes(data[8:40])


def load_head(path, log):
    """(acked seq, hash of that record) from flash, or None for a journal never acked."""
    head = path + "/head"
    cur = _read(head, log)
    new = _read(head + ".tmp", log)
    if new is not None and (cur is None or new[0] > cur[0]):
        os.rename(head + ".tmp", head)  # the interrupted ack had finished writing
        cur = new
    elif _exists(head + ".tmp"):
        os.remove(head + ".tmp")
    return cur


def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False
