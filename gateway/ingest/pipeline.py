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

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.crypto import MeterVerifier
from gateway.errors import EnrollmentError
from gateway.ingest.store import MeterRow, ReadingStore
from sgcore import reading as rc

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Incoming:
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
    stored: list[rc.Reading] = field(default_factory=list)
    acks: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)  # meter_id -> (upto, hash)
    resends: dict[bytes, int] = field(default_factory=dict)  # meter_id -> resend from seq
    rejections: list[Rejection] = field(default_factory=list)


@dataclass
class CheckedBatch:
    """A batch `Ingestor.check` verified: what to store, and its outcome once stored."""

    outcome: BatchOutcome
    rows: list[tuple[rc.Reading, bytes, bytes, float]]
    heads: dict[bytes, tuple[int, bytes | None]]  # meter_id -> (next_seq, head_hash) after it
    before: dict[bytes, tuple[int, bytes | None]]  # meter_id -> the same before it


class _MeterState:
    __slots__ = ("verifier", "anchor_seq", "next_seq", "head_hash", "last_resend")

    def __init__(self, row: MeterRow) -> None:
        self.verifier = MeterVerifier(row.pubkey)
        self.anchor_seq = row.anchor_seq
        self.next_seq = row.next_seq
        self.head_hash = row.head_hash
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
        """(upto, record_hash) of the last stored record of a meter, if any."""
        st = self._state(meter_id)
        if st is None or st.head_hash is None or st.next_seq <= st.anchor_seq:
            return None
        return st.next_seq - 1, st.head_hash

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

    def preverify(self, batch: list[Incoming]) -> list[bool | None]:
        """Check the signature of each record whose meter is known already: True or False per
        record, None where `check` must decide itself (unknown meter, malformed record).

        Only the meters' (immutable) public keys are read, so this may run on another thread
        while the loop receives the next messages; libsecp256k1 runs without the GIL."""
        meters = self._meters
        out: list[bool | None] = []
        for item in batch:
            payload = item.payload
            st = meters.get(payload[3:19]) if len(payload) == rc.RECORD_LEN else None
            if st is None:
                out.append(None)
                continue
            body = payload[: rc.BODY_LEN]
            out.append(st.verifier.verify_digest(payload[rc.BODY_LEN :], rc.digest(body)))
        return out

    def check(
        self, batch: list[Incoming], verified: list[bool | None] | None = None
    ) -> CheckedBatch:
        """Everything but the store: verify the batch and move the in-memory heads past what it
        accepts (`verified`: what `preverify` found for it, if it ran). Its outcome (acks included) holds only once `store_checked` has returned;
        until then a later batch may be checked on top of it (`IngestPipeline`), and if the
        store fails, `abandon` every checked batch not stored, newest first."""
        out = BatchOutcome()
        pending: dict[tuple[bytes, int], bytes] = {}
        rows: list[tuple[rc.Reading, bytes, bytes, float]] = []
        before: dict[bytes, tuple[int, bytes | None]] = {}
        touched: set[bytes] = set()
        wall = self._wall()  # once per batch: a batch is checked within milliseconds
        try:
            for i, item in enumerate(batch):
                pre = verified[i] if verified is not None else None
                accepted = self._one(item, out, pending, before, touched, wall, pre)
                if accepted is not None:
                    rows.append(accepted)
        except Exception:
            self._restore(before)
            raise
        heads = {mid: (self._meters[mid].next_seq, self._meters[mid].head_hash) for mid in before}
        out.stored = [r for r, _, _, _ in rows]
        for mid in touched:
            head = self.head(mid)
            if head is not None:
                out.acks[mid] = head
        return CheckedBatch(out, rows, heads, before)

    def store_checked(self, checked: CheckedBatch) -> None:
        """Store what `check` accepted in one transaction: `write_checked`, then its COMMIT."""
        if checked.rows:
            self.write_checked(checked)
            self.store.commit_batch()

    def write_checked(self, checked: CheckedBatch) -> bool:
        """Write the accepted rows in a transaction left open for `store.commit_batch()` (which
        may run on another thread: the fsync); False if there is nothing to write."""
        if not checked.rows:
            return False
        self.store.write_batch(checked.rows, checked.heads)  # type: ignore[arg-type]
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

    def _one(self, item, out, pending, before, touched, wall, pre):
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
            return self._below_head(item, out, st, reading, body, sig, pending, touched)
        if not (pre if pre is not None else st.verifier.verify_digest(sig, rc.digest(body))):
            self._reject(out, Reason.BAD_SIGNATURE, item, seq, "signature does not verify")
            return None
        ahead = reading.end - wall
        if ahead > self.max_future_s:
            self._reject(out, Reason.FUTURE, item, seq, f"ends {ahead:.0f} s after our clock")
            return None
        if seq > st.next_seq:
            self._reject(out, Reason.GAP, item, seq, f"expected seq {st.next_seq}")
            now = self._clock()
            if now - st.last_resend >= self.resend_cooldown_s:
                st.last_resend = now
                out.resends[mid] = st.next_seq
            return None
        if st.head_hash is not None and reading.prev_hash != st.head_hash:
            self._reject(out, Reason.CHAIN_BREAK, item, seq, "prev_hash does not match stored head")
            return None
        record = bytes(payload)
        h = rc.record_hash(record)
        if mid not in before:
            before[mid] = (st.next_seq, st.head_hash)
        st.next_seq = seq + 1
        st.head_hash = h
        pending[(mid, seq)] = record
        touched.add(mid)
        return reading, record, h, item.received_at

    def _below_head(self, item, out, st, reading, body, sig, pending, touched):
        mid, seq = reading.meter_id, reading.seq
        if seq < st.anchor_seq:
            self._reject(out, Reason.REPLAY, item, seq, "before the enrollment anchor")
            return None
        stored = pending.get((mid, seq)) or self.store.record_at(mid, seq)
        if stored is not None and stored == bytes(item.payload):
            self._reject(out, Reason.REPLAY, item, seq, "already stored")
            touched.add(mid)  # re-acknowledge: the meter may have missed our ack
            return None
        if not st.verifier.verify_digest(sig, rc.digest(body)):
            self._reject(out, Reason.BAD_SIGNATURE, item, seq, "signature does not verify")
            return None
        self._reject(out, Reason.CONFLICT, item, seq, "validly signed but differs from stored seq")
        return None
