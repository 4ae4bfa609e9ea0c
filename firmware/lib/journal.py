# Store-and-forward journal of signed 167-byte records on flash (format: docs/journal.md).
#
# A record is appended (and flushed) before it is published; it is removed only after the
# gateway acknowledged it. Files under `path`:
#   s<first_seq>.seg  segments of fixed-size entries: b"SJ" | u16 len | record | crc32 (LE)
#   head, head.tmp    the ack state (journal_head.py)
# Boot recovery checks every entry (magic, length, CRC, expected seq), rewrites a damaged
# segment up to its last good entry, drops everything after it and logs what it cut.

import binascii
import hashlib
import os
import struct

from journal_head import load_head, write_head
from journal_recovery import ENTRY_LEN, entry_ok, recover

from sgcore.compat import const
from sgcore.reading import RECORD_LEN, ZERO_HASH

DEFAULT_CAPACITY = const(672)  # 7 days of 15-minute readings
DEFAULT_SEG_RECORDS = const(32)  # 32 x 175 B = 5.6 KB per segment file
_ENTRY = ENTRY_LEN
_CRC_AT = const(171)
_SEQ_AT = const(23)  # seq (u32) inside the entry: 4 header bytes + offset 19 of the record
_PREV_AT = const(27)  # prev_hash inside the entry: 4 + 23
_MAGIC = b"SJ"  # as in journal_recovery


class JournalError(Exception):
    pass


class JournalFull(JournalError):
    pass


class Journal:
    def __init__(
        self, path, capacity_records=DEFAULT_CAPACITY, seg_records=DEFAULT_SEG_RECORDS, log=print
    ):
        self.path = path
        self.capacity = capacity_records
        self.seg_records = seg_records
        self._log = log
        self.flash_writes = 0  # files written or removed since boot
        self.truncated_bytes = 0  # damaged bytes cut at boot
        self._buf = bytearray(_ENTRY)
        self._mv = memoryview(self._buf)
        self._crc_mv = self._mv[0:_CRC_AT]
        self._segs = []  # first seq of each segment file, ascending
        self._acked = -1
        self._acked_hash = ZERO_HASH
        self._last = -1
        self._last_hash = ZERO_HASH
        try:
            os.mkdir(path)
        except OSError:
            pass  # exists
        self._load_state()
        self._recover()

    # --- queries -----------------------------------------------------------------------------

    def last_seq(self):
        return self._last  # -1 for a journal that never held a record

    def last_hash(self):
        return self._last_hash  # ZERO_HASH before the first record

    def acked_seq(self):
        return self._acked

    def pending_count(self):
        return self._last - self._acked

    def is_full(self):
        return self._last - self._acked >= self.capacity

    def status(self):
        return {
            "pending": self._last - self._acked,
            "capacity": self.capacity,
            "full": self.is_full(),
            "last_seq": self._last,
            "flash_writes": self.flash_writes,
            "truncated_bytes": self.truncated_bytes,
        }

    def record(self, seq):
        """One unacknowledged record by its seq (a single 167-byte read), None if not held."""
        if seq <= self._acked or seq > self._last or not self._segs:
            return None
        return self._read(seq)

    def last_record(self):
        """The newest record still on flash (None when every record was acked and dropped)."""
        if self._last < 0 or self._last <= self._acked or not self._segs:
            return None
        return self._read(self._last)

    def pending(self):
        """Yield the unacknowledged records in order, one 167-byte copy at a time."""
        buf = self._buf
        segs = list(self._segs)
        for i in range(len(segs)):
            first = segs[i]
            end = segs[i + 1] if i + 1 < len(segs) else self._last + 1
            seq = self._acked + 1 if self._acked + 1 > first else first
            if seq >= end:
                continue
            with open(self._seg_name(first), "rb") as f:
                f.seek((seq - first) * _ENTRY)
                while seq < end and seq <= self._last:
                    if f.readinto(buf) != _ENTRY or not self._entry_ok(seq):
                        raise JournalError(f"segment s{first} damaged at seq {seq}")
                    yield bytes(self._mv[4:_CRC_AT])
                    seq += 1

    # --- changes -----------------------------------------------------------------------------

    def append(self, record):
        """Persist one record (seq must follow last_seq(), prev_hash must be last_hash())."""
        if len(record) != RECORD_LEN:
            raise JournalError(f"record is {len(record)} bytes, expected {RECORD_LEN}")
        buf = self._buf
        buf[0:2] = _MAGIC
        struct.pack_into(">H", buf, 2, RECORD_LEN)
        buf[4:_CRC_AT] = record
        seq = struct.unpack_from(">I", buf, _SEQ_AT)[0]
        if seq != self._last + 1:
            raise JournalError(f"seq {seq} does not follow {self._last}")
        if self._mv[_PREV_AT : _PREV_AT + 32] != self._last_hash:
            raise JournalError(f"prev_hash of seq {seq} is not the hash of seq {self._last}")
        if self.is_full():
            raise JournalFull(f"journal full: {self.capacity} unacknowledged records")
        struct.pack_into("<I", buf, _CRC_AT, binascii.crc32(self._crc_mv))
        if not self._segs or seq - self._segs[-1] >= self.seg_records:
            self._segs.append(seq)
        try:
            with open(self._seg_name(self._segs[-1]), "ab") as f:
                f.write(buf)
                f.flush()
        except OSError as exc:  # e.g. flash full: cut any partial entry before going on
            self._recover()
            raise JournalError(f"append of seq {seq} failed: {exc}") from exc
        self.flash_writes += 1
        self._last = seq
        self._last_hash = hashlib.sha256(record).digest()

    def ack(self, upto_seq):
        """Drop the records up to upto_seq (acknowledged by the gateway); returns how many."""
        upto = upto_seq if upto_seq < self._last else self._last
        if upto <= self._acked:
            return 0
        if upto == self._last:
            digest = self._last_hash
        else:
            digest = hashlib.sha256(self._read(upto)).digest()
        self._write_state(upto, digest)
        count = upto - self._acked
        self._acked = upto
        self._acked_hash = digest
        self._drop_acked_segments()
        return count

    # --- internals ---------------------------------------------------------------------------

    def _seg_name(self, first):
        return f"{self.path}/s{first}.seg"

    def _entry_ok(self, seq):
        return entry_ok(self._buf, self._mv, seq)

    def _read(self, seq):
        first = self._segs[0]
        for s in self._segs:
            if s <= seq:
                first = s
        with open(self._seg_name(first), "rb") as f:
            f.seek((seq - first) * _ENTRY)
            if f.readinto(self._buf) != _ENTRY or not self._entry_ok(seq):
                raise JournalError(f"segment s{first} damaged at seq {seq}")
        return bytes(self._mv[4:_CRC_AT])

    def _drop_acked_segments(self):
        segs = self._segs
        while segs:
            end = segs[1] if len(segs) > 1 else self._last + 1
            if end - 1 > self._acked:
                break
            os.remove(self._seg_name(segs.pop(0)))
            self.flash_writes += 1

    def _write_state(self, acked, digest):
        write_head(self.path, acked, digest)
        self.flash_writes += 1

    def _load_state(self):
        cur = load_head(self.path, self._log)
        if cur is not None:
            self._acked, self._acked_hash = cur

    def _recover(self):
        segs, last_record, self.truncated_bytes, writes = recover(
            self.path, self._buf, self._mv, self._log
        )
        self._segs = segs
        self.flash_writes += writes
        self._last = -1
        if last_record is not None:
            self._last = struct.unpack_from(">I", last_record, 19)[0]
            self._last_hash = hashlib.sha256(last_record).digest()
        if self._last <= self._acked:  # everything on flash is acknowledged
            self._last = self._acked
            self._last_hash = self._acked_hash
        elif self._segs and self._segs[0] > self._acked + 1:
            self._log(f"journal: seqs {self._acked + 1}..{self._segs[0] - 1} missing")
        self._drop_acked_segments()
