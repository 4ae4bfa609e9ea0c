# Turns closed intervals and relay changes into signed, journaled records, one at a time.
#
# Signing is step-wise (sgcore.secp256k1.Signer): each step() does a bounded slice, so the main
# loop keeps serving the relay and the buses while a signature is computed. A record gets its
# sequence number and chain hash from the journal when its signing starts, and is appended
# (persisted) as soon as its signature is done: only then may it be published. on_close() is
# called once an interval reading is journaled (or will never be: journal or queue full), so the
# registers' checkpoint may take in that close (registers.py). When signing falls behind (a
# starved CPU) and the queue is full, a closed interval joins the newest queued interval (one
# reading over both windows, like a late close) instead of being dropped: the readings' deltas
# still add up to the totals, no energy leaves the signed record.
from journal import JournalFull

from sgcore import reading as rd
from sgcore.compat import const
from sgcore.secp256k1 import Signer

_MAX_QUEUE = const(8)
_I32 = const(0x7FFFFFFF)


def _i32(v):
    return -_I32 if v < -_I32 else (_I32 if v > _I32 else v)


class Recorder:
    def __init__(self, key, journal, on_close=None, log=print):
        self._key = key
        self._on_close = on_close
        self._journal = journal
        self._log = log
        self._queue = []  # Reading objects waiting for a signature (seq/prev_hash unset)
        self._closes = []  # per queued reading: the interval closes it holds
        self._signing = None  # (reading, body, signer)
        self._pending_closes = 0  # closes held by the reading being signed
        self.signed = 0
        self.dropped_full = 0  # intervals not journaled because the journal was full
        self.dropped_queue = 0
        self.joined = 0  # intervals folded into the one before (the queue was full)
        self.journal_full = False

    def busy(self):
        return self._signing is not None or bool(self._queue)

    def _closed(self, r):
        if r.kind == rd.KIND_READING and self._on_close is not None:
            self._on_close()

    def submit(self, reading):
        if self._journal.is_full():
            self.journal_full = True
            self.dropped_full += 1
            self._closed(reading)
            return False
        if len(self._queue) >= _MAX_QUEUE:
            if self._join(reading):
                return True
            # the newest queued is a relay event: the interval after it takes one more slot (the
            # next ones join it), up to twice the queue; dropped, its energy left every interval
            if not (reading.kind == rd.KIND_READING and len(self._queue) < 2 * _MAX_QUEUE):
                self.dropped_queue += 1
                self._closed(reading)
                return False
        self._queue.append(reading)
        self._closes.append(1 if reading.kind == rd.KIND_READING else 0)
        return True

    def _join(self, r):
        """Fold interval reading `r` into the newest queued one, if that is the interval
        before it; True when it did."""
        last = self._queue[-1]
        if r.kind != rd.KIND_READING or last.kind != rd.KIND_READING or r.start < last.end:
            return False
        last.end = r.end
        last.import_wh, last.export_wh = r.import_wh, r.export_wh
        last.interval_import_wh += r.interval_import_wh
        last.interval_export_wh += r.interval_export_wh
        net = last.interval_import_wh - last.interval_export_wh
        last.avg_power_w = _i32(net * 3600 // max(1, last.end - last.start))
        if abs(r.peak_power_w) > abs(last.peak_power_w):
            last.peak_power_w = r.peak_power_w
        last.voltage_dv, last.relay, last.credit_wh = r.voltage_dv, r.relay, r.credit_wh
        last.flags |= r.flags
        self._closes[-1] += 1
        self.joined += 1
        return True

    def step(self):
        """One slice of signing work; returns the record just journaled, or None."""
        if self._signing is None:
            if not self._queue:
                return None
            r = self._queue.pop(0)
            self._pending_closes = self._closes.pop(0)
            r.seq = self._journal.last_seq() + 1
            r.prev_hash = self._journal.last_hash()
            if self.journal_full:
                r.flags |= rd.FLAG_JOURNAL_FULL  # tell the gateway intervals were skipped
            body = rd.encode_body(r)
            self._signing = (r, body, Signer(self._key.priv, rd.digest(body)))
            return None
        r, body, signer = self._signing
        if not signer.step():
            return None
        self._signing = None
        record = body + signer.signature
        try:
            self._journal.append(record)
        except JournalFull:
            self.journal_full = True
            self.dropped_full += 1
            return None
        finally:  # journaled, or lost for good (full, a flash error): the closes may be saved
            for _ in range(self._pending_closes):
                self._closed(r)
        self.journal_full = False
        self.signed += 1
        return record


def reading_from_interval(meter_id, iv, relay, credit_wh, flags):
    return rd.Reading(
        meter_id, 0, rd.ZERO_HASH, iv.start, iv.end, iv.import_wh, iv.export_wh,
        iv.interval_import_wh, iv.interval_export_wh, _i32(iv.avg_power_w), _i32(iv.peak_power_w),
        min(iv.voltage_dv, 0xFFFF), relay, flags, _i32(credit_wh),
    )  # fmt: skip


def relay_event(meter_id, now, regs, relay, reason, credit_wh, flags):
    return rd.Reading(
        meter_id, 0, rd.ZERO_HASH, now, now, regs.import_wh, regs.export_wh,
        relay=relay, flags=flags, credit_wh=_i32(credit_wh), kind=rd.KIND_RELAY_EVENT, reason=reason,
    )  # fmt: skip
