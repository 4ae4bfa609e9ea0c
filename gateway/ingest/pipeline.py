"""Reading ingest: decode, check enrollment, signature, sequence and chain, store a batch, then ack.

No I/O besides the store: the MQTT side hands in payloads and sends out what the outcome says.
Order of checks for one record (each failure is a Rejection with a reason, never an exception):

    oversized / malformed  -> the bytes are not a record
    unknown_meter          -> no enrolled key for the record's meter id
    topic_mismatch         -> published on another meter's topic
    seq below the head:    replay (identical to what is stored: dropped, re-acknowledged)
                           conflict (a different record, validly signed, for a stored seq)
    bad_signature          -> forged or corrupted
    future                 -> ends more than max_future_s after the gateway's clock (a meter
                              clock set wrongly ahead): not stored, not acked
    gap                    -> seq ahead of the head: dropped, resend requested from the head
    chain_break            -> right seq, prev_hash is not the stored head's hash

Accepted records go into one SQLite transaction; acks are computed only after its COMMIT.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from gateway.crypto import MeterVerifier
from gateway.errors import EnrollmentError
from gateway.ingest.fields import CHECKED, SEQ, unpack, unpack_checked
from gateway.ingest.runs import Run
from gateway.ingest.store import MeterRow, ReadingStore, row_id
from sgcore import reading as rc

log = logging.getLogger(__name__)
_CHAIN_BREAK = "prev_hash does not match stored head"


class Reason(StrEnum):
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    UNKNOWN_METER = "unknown_meter"
    TOPIC_MISMATCH = "topic_mismatch"
    REPLAY = "replay"
    CONFLICT = "conflict"
    BAD_SIGNATURE = "bad_signature"
    GAP = "gap"
    CHAIN_BREAK = "chain_break"
    FUTURE = "future"


class Incoming(NamedTuple):
    """One reading message as received (a tuple: one is made per reading on the broker path)."""

    meter_hex: str  # from the topic
    payload: bytes
    received_at: float


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    meter_hex: str
    seq: int | None
    detail: str


@dataclass
class BatchOutcome:
    records: list[bytes] = field(default_factory=list)  # the stored records, in order
    acks: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)  # meter_id -> (upto, hash)
    resends: dict[bytes, int] = field(default_factory=dict)  # meter_id -> resend from seq
    rejections: list[Rejection] = field(default_factory=list)
    counts: dict[bytes, int] = field(default_factory=dict)  # meter_id -> records stored
    last: dict[bytes, bytes] = field(default_factory=dict)  # meter_id -> its newest stored record

    @property
    def stored(self) -> list[rc.Reading]:
        """The stored readings, decoded (made on demand: ingest itself keeps the raw records)."""
        return [rc.decode(record)[0] for record in self.records]


@dataclass
class CheckedBatch:
    """A batch `Ingestor.check` verified: what to store, and its outcome once stored."""

    outcome: BatchOutcome
    size: int  # readings in the batch
    runs: list[tuple]  # one per meter with records accepted: `ReadingStore.write_runs`
    heads: dict[bytes, tuple[int, bytes | None]]  # meter_id -> (next_seq, head_hash) after it
    before: dict[bytes, tuple[int, bytes | None]]  # meter_id -> the same before it


class _MeterState:
    __slots__ = (
        "verifier", "hex", "ids", "anchor_seq", "next_seq", "head_hash", "stored", "last_resend"
    )  # fmt: skip

    def __init__(self, row: MeterRow) -> None:
        self.verifier = MeterVerifier(row.pubkey)
        self.hex = row.meter_id.hex()  # what its topics carry
        self.ids = row_id(row.num, 0)  # its readings' row ids: ids | seq
        self.anchor_seq = row.anchor_seq
        self.next_seq = row.next_seq
        self.head_hash = row.head_hash
        # (next_seq, head_hash) as committed: next_seq/head_hash run ahead of it by the batches
        # checked but not yet stored
        self.stored: tuple[int, bytes | None] = (row.next_seq, row.head_hash)
        self.last_resend = float("-inf")


class Ingestor:
    def __init__(
        self,
        store: ReadingStore,
        resend_cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        max_future_s: int = 300,
    ) -> None:
        self.store = store
        self.resend_cooldown_s = resend_cooldown_s
        self._clock = clock
        self._wall = wall
        self.max_future_s = max_future_s
        self._meters: dict[bytes, _MeterState] = {}
        for row in store.meters():
            self._meters[row.meter_id] = _MeterState(row)

    def known_meters(self) -> list[bytes]:
        return list(self._meters)

    def head(self, meter_id: bytes) -> tuple[int, bytes] | None:
        """(upto, record_hash) of the last stored record of a meter, if any: committed, never
        one of a batch still being stored (what may be acknowledged at any moment)."""
        st = self._state(meter_id)
        if st is None:
            return None
        return _ack(st, *st.stored)

    def _state(self, meter_id: bytes) -> _MeterState | None:
        st = self._meters.get(meter_id)
        if (
            st is None
        ):  # enrolled since we started? (`sgrid gateway enroll-meter` on a live gateway)
            row = self.store.meter(meter_id)
            if row is not None:
                try:
                    st = self._meters[meter_id] = _MeterState(row)
                except EnrollmentError:
                    log.error("meter %s has an invalid stored key", meter_id.hex())
                    return None
        return st

    def ingest(self, batch: list[Incoming]) -> BatchOutcome:
        """Check, store (one transaction, one fsync) and acknowledge one batch."""
        checked = self.check(batch)
        try:
            self.store_checked(checked)
        except Exception:
            self.abandon(checked)
            raise
        return checked.outcome

    def check(self, batch: list[Incoming]) -> CheckedBatch:
        """Everything but the store: verify the batch and move the in-memory heads past what it
        accepts. Its outcome (acks included) holds only once `store_checked` has returned;
        until then a later batch may be checked on top of it (`IngestPipeline`), and if the
        store fails, `abandon` every checked batch not stored, newest first.

        The next record of a known meter, well formed and on its own topic, is checked here
        inline (one unpack, two hashes, one verify: the ingest's hot path); anything else goes
        record by record through `_one`, which gives every other outcome."""
        out = BatchOutcome()
        runs: dict[bytes, Run] = {}
        before: dict[bytes, tuple[int, bytes | None]] = {}
        touched: set[bytes] = set()
        records, last, meters = out.records, out.last, self._meters
        wall = self._wall()  # once per batch: a batch is checked within milliseconds
        max_future = self.max_future_s
        sha256 = hashlib.sha256
        record_len, body_len, version = rc.RECORD_LEN, rc.BODY_LEN, rc.VERSION
        v_, kind_, meter_, seq_, prev_, start_, end_, relay_ = range(len(CHECKED))
        # 1. the records that look like the next of their meter (a known meter's, on its own
        # topic, well formed, each following the one before it in the batch): the hot path
        hot: list[tuple | None] = []  # per item: (fields, meter state, hash, signature, record)
        work = []  # their (verifier, signature, signed digest)
        expect: dict[bytes, int] = {}  # meter_id -> seq of its next hot record in this batch
        for item in batch:
            payload = item.payload
            if len(payload) == record_len:
                f = unpack_checked(payload)
                mid = f[meter_]
                st = meters.get(mid)
                if (
                    st is not None
                    and f[seq_] == expect.get(mid, st.next_seq)
                    and st.hex == item.meter_hex
                    and f[v_] == version
                    and 0 < f[kind_] < 3  # kind: reading or relay event
                    and f[end_] >= f[start_]  # does not end before it starts
                    and 0 <= f[relay_] <= 1  # relay state
                ):
                    expect[mid] = f[seq_] + 1
                    chain = sha256(payload[:body_len])  # the signed digest, then sha256(record)
                    sig = payload[body_len:]
                    work.append((st.verifier, sig, chain.digest()))
                    hot.append((f, st, chain, sig, payload))
                    continue
            hot.append(None)
        # 2. their signatures, in one tight loop (libsecp256k1 runs ~5 % slower interleaved
        # with the interpreter's work on each record)
        verdicts = iter([v.verify_digest(sig, digest) for v, sig, digest in work])
        # 3. every record in order: the hot ones with their verdict, the others through `_one`
        try:
            for item, h in zip(batch, hot, strict=True):
                if h is None:
                    self._one(item, out, runs, before, touched, wall)
                    continue
                f, st, chain, sig, record = h
                ok = next(verdicts)
                seq = f[seq_]
                if seq != st.next_seq:  # a record before it was refused: not the next any more
                    self._one(item, out, runs, before, touched, wall)
                    continue
                if not ok:
                    self._reject(out, Reason.BAD_SIGNATURE, item, seq, "signature does not verify")
                    continue
                end = f[end_]
                if end - wall > max_future:
                    self._future(out, item, seq, end - wall)
                    continue
                head = st.head_hash
                if head is not None and f[prev_] != head:
                    self._reject(out, Reason.CHAIN_BREAK, item, seq, _CHAIN_BREAK)
                    continue
                mid = f[meter_]
                run = runs.get(mid)
                if run is None:
                    run = runs[mid] = Run(st.ids | seq, item.received_at)
                    before[mid] = (seq, head)
                    touched.add(mid)
                if type(record) is not bytes:
                    record = bytes(record)
                chain.update(sig)
                st.head_hash = chain.digest()  # sha256(record)
                st.next_seq = seq + 1
                records.append(record)
                run.records.append(record)
                run.ends.append(end)
        except Exception:
            self._restore(before)
            raise
        heads = {}
        counts = out.counts
        for mid, (n, _) in before.items():
            st = meters[mid]
            heads[mid] = (st.next_seq, st.head_hash)
            counts[mid] = st.next_seq - n
        for mid in touched:  # once this batch is stored, everything checked so far is
            st = meters[mid]
            ack = _ack(st, st.next_seq, st.head_hash)
            if ack is not None:
                out.acks[mid] = ack
        rows = []
        for mid, run in runs.items():
            rows.append(run.row())
            last[mid] = run.records[-1]
        return CheckedBatch(out, len(batch), rows, heads, before)

    def store_checked(self, checked: CheckedBatch) -> None:
        """Store what `check` accepted in one transaction: `write_checked`, then its COMMIT."""
        if checked.runs:
            self.write_checked(checked)
            self.store.commit_batch()
        self.stored(checked)

    def stored(self, checked: CheckedBatch) -> None:
        """The batch's COMMIT returned: its heads may be acknowledged from now on (`head`)."""
        for mid, head in checked.heads.items():
            self._meters[mid].stored = head

    def write_checked(self, checked: CheckedBatch) -> bool:
        """Write the accepted runs in a transaction left open for `store.commit_batch()` (which
        may run on another thread: the fsync); False if there is nothing to write."""
        if not checked.runs:
            return False
        before = {mid: n for mid, (n, _) in checked.before.items()}
        self.store.write_runs(checked.runs, checked.heads, before)  # type: ignore[arg-type]
        return True

    def abandon(self, checked: CheckedBatch) -> None:
        """The batch was not stored: roll every head it advanced back, so that no later ack can
        cover a reading that is not in the store."""
        self._restore(checked.before)

    def _restore(self, before: dict[bytes, tuple[int, bytes | None]]) -> None:
        for mid, (n, h) in before.items():
            self._meters[mid].next_seq, self._meters[mid].head_hash = n, h

    def _reject(self, out: BatchOutcome, reason: Reason, item: Incoming, seq, detail: str) -> None:
        out.rejections.append(Rejection(reason, item.meter_hex, seq, detail))

    def _future(self, out: BatchOutcome, item: Incoming, seq: int, ahead: float) -> None:
        self._reject(out, Reason.FUTURE, item, seq, f"ends {ahead:.0f} s after our clock")

    def _one(self, item, out, runs, before, touched, wall) -> None:
        """One record that is not simply the next of a known meter: every outcome, in the
        order of the module's docstring (an accepted one goes into its meter's run)."""
        payload = item.payload
        if len(payload) > rc.RECORD_LEN:
            self._reject(out, Reason.OVERSIZED, item, None, f"{len(payload)} bytes")
            return None
        try:
            reading, body, sig = rc.decode(payload)
        except rc.ReadingFormatError as exc:
            self._reject(out, Reason.MALFORMED, item, None, str(exc))
            return None
        mid = reading.meter_id
        seq = reading.seq
        st = self._state(mid)
        if st is None:
            self._reject(out, Reason.UNKNOWN_METER, item, seq, f"meter id {mid.hex()}")
            return None
        if mid.hex() != item.meter_hex:
            self._reject(out, Reason.TOPIC_MISMATCH, item, seq, f"record of {mid.hex()}")
            return None
        if seq < st.next_seq:
            return self._below_head(item, out, st, reading, body, sig, before, touched)
        if not st.verifier.verify_digest(sig, rc.digest(body)):
            self._reject(out, Reason.BAD_SIGNATURE, item, seq, "signature does not verify")
            return None
        ahead = reading.end - wall
        if ahead > self.max_future_s:
            self._future(out, item, seq, ahead)
            return None
        if seq > st.next_seq:
            self._reject(out, Reason.GAP, item, seq, f"expected seq {st.next_seq}")
            now = self._clock()
            if now - st.last_resend >= self.resend_cooldown_s:
                st.last_resend = now
                out.resends[mid] = st.next_seq
            return None
        if st.head_hash is not None and reading.prev_hash != st.head_hash:
            self._reject(out, Reason.CHAIN_BREAK, item, seq, _CHAIN_BREAK)
            return None
        record = bytes(payload)
        run = runs.get(mid)
        if run is None:
            run = runs[mid] = Run(st.ids | seq, item.received_at)
            before[mid] = (seq, st.head_hash)
        st.next_seq = seq + 1
        st.head_hash = rc.record_hash(record)
        touched.add(mid)
        out.records.append(record)
        run.records.append(record)
        run.ends.append(reading.end)
        return None

    def _below_head(self, item, out, st, reading, body, sig, before, touched):
        mid, seq = reading.meter_id, reading.seq
        if seq < st.anchor_seq:
            self._reject(out, Reason.REPLAY, item, seq, "before the enrollment anchor")
            return None
        if mid in before and seq >= before[mid][0]:  # accepted earlier in this batch
            stored = self._in_batch(out, mid, seq)
        else:
            stored = self.store.record_at(mid, seq)
        if stored is not None and stored == bytes(item.payload):
            self._reject(out, Reason.REPLAY, item, seq, "already stored")
            touched.add(mid)  # re-acknowledge: the meter may have missed our ack
            return None
        if not st.verifier.verify_digest(sig, rc.digest(body)):
            self._reject(out, Reason.BAD_SIGNATURE, item, seq, "signature does not verify")
            return None
        self._reject(out, Reason.CONFLICT, item, seq, "validly signed but differs from stored seq")
        return None

    @staticmethod
    def _in_batch(out: BatchOutcome, mid: bytes, seq: int) -> bytes | None:
        """The record of (meter, seq) accepted earlier in this batch (not in the store yet: a
        batch is stored as a whole once checked). A scan: a record sent twice within one batch
        (a redelivery) is rare, and a batch is bounded."""
        for record in out.records:
            if record[3:19] == mid and unpack(record)[SEQ] == seq:
                return record
        return None


def _ack(st: _MeterState, next_seq: int, head_hash: bytes | None) -> tuple[int, bytes] | None:
    """(upto, record_hash) to acknowledge for a meter at that head (None: nothing stored since
    its enrollment anchor)."""
    if head_hash is None or next_seq <= st.anchor_seq:
        return None
    return next_seq - 1, head_hash
