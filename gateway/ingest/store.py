"""The durable reading store: one SQLite file in WAL mode with synchronous=FULL.

Durability choice (docs/gateway.md): WAL + synchronous=FULL fsyncs the WAL on every COMMIT, so a
committed batch survives power loss, not just a process crash. The gateway acknowledges a reading
only after the COMMIT of the batch that holds it returned. Batching amortises the fsync.

Per meter the store keeps a contiguous chain: `meters.next_seq` / `meters.head_hash` describe the
last stored record, and a batch inserts readings and moves the head in one transaction. A reading
is stored once, as the signed record it arrived as (the tables: `store_migration.SCHEMA`).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from gateway.durable_db import open_durable
from gateway.errors import EnrollmentError, StoreError
from gateway.ingest import store_migration
from gateway.wal_checkpointer import WalCheckpointer, defer_autocheckpoint
from sgcore import reading as rc

SCHEMA_VERSION = store_migration.VERSION  # the layout: store_migration.SCHEMA
SEQ_BITS = 32  # a seq is a u32 (sgcore.reading): the low bits of a reading's id
_LAST_SEQ = (1 << SEQ_BITS) - 1


def row_id(num: int, seq: int) -> int:
    """The id of a meter's reading: its number (`MeterRow.num`) << 32 | the reading's seq."""
    return num << SEQ_BITS | seq


P = ParamSpec("P")
R = TypeVar("R")


def _locked(
    method: Callable[Concatenate[ReadingStore, P], R],
) -> Callable[Concatenate[ReadingStore, P], R]:
    """Run the method holding the store's lock: the ingest pipeline stores a batch from its
    commit thread while the asyncio loop may read (one SQLite connection, used by one at a time)."""

    @functools.wraps(method)
    def run(self: ReadingStore, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return run


# A run: (row_id(num, seq of its first record), n, the n records joined, min end, max end,
# received_at of its first record)
_INSERT = "INSERT INTO reading_runs VALUES (?,?,?,?,?,?)"
_METER_COLUMNS = "meter_id, pubkey, label, anchor_seq, next_seq, head_hash, num"


@dataclass(frozen=True)
class MeterRow:
    meter_id: bytes
    pubkey: bytes
    label: str
    anchor_seq: int
    next_seq: int
    head_hash: bytes | None
    num: int  # its readings' ids: row_id(num, seq)


@dataclass(frozen=True)
class StoredRecord:
    reading: rc.Reading
    record: bytes
    received_at: float


class ReadingStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = open_durable(path, "")
        self._nums: dict[bytes, int] = {}  # meter_id -> num (never changes once enrolled)
        try:
            store_migration.create_or_migrate(self._db)
            defer_autocheckpoint(self._db)  # checkpoints off the commit path (own thread)
        except (sqlite3.Error, StoreError) as exc:
            self._db.close()
            raise StoreError(f"{path}: cannot open store: {exc}") from exc
        self._checkpointer = WalCheckpointer(path)

    @_locked
    def close(self) -> None:
        self._checkpointer.close()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # another process holds a read transaction: the WAL stays, nothing is lost
        self._db.close()

    # --- meters --------------------------------------------------------------------------------

    @_locked
    def enroll(self, pubkey: bytes, label: str = "", anchor_seq: int = 0) -> MeterRow:
        """Register a meter key; anchor_seq 0 pins the chain start. Idempotent for the same key,
        also between processes enrolling it at once: one row (the first one's label and anchor),
        every caller gets it. Another key under the same meter id is an EnrollmentError."""
        meter_id = rc.meter_id_from_pubkey(pubkey)
        row = self.meter(meter_id)  # enrolled already: no write lock taken
        if row is None:
            head = rc.ZERO_HASH if anchor_seq == 0 else None
            try:  # the number in the same statement: two processes enrolling at once get two
                self._db.execute(
                    f"INSERT INTO meters ({_METER_COLUMNS}, enrolled_at) VALUES (?,?,?,?,?,?,"
                    " (SELECT COALESCE(MAX(num) + 1, 0) FROM meters), ?)"
                    " ON CONFLICT (meter_id) DO NOTHING",  # another process was first: its row
                    (meter_id, pubkey, label, anchor_seq, anchor_seq, head, int(time.time())),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot enroll meter: {exc}") from exc
            row = self.meter(meter_id)
            if row is None:
                raise StoreError(f"cannot enroll meter {meter_id.hex()}: not stored")
        if row.pubkey != pubkey:
            raise EnrollmentError(f"meter id {meter_id.hex()} already enrolled with another key")
        return row

    @_locked
    def meter(self, meter_id: bytes) -> MeterRow | None:
        row = self._db.execute(
            f"SELECT {_METER_COLUMNS} FROM meters WHERE meter_id=?", (meter_id,)
        ).fetchone()
        return MeterRow(*row) if row else None

    @_locked
    def meters(self) -> list[MeterRow]:
        rows = self._db.execute(f"SELECT {_METER_COLUMNS} FROM meters ORDER BY label").fetchall()
        return [MeterRow(*r) for r in rows]

    def _ids(self, meter_id: bytes, first: int = 0, last: int = _LAST_SEQ) -> tuple[int, int]:
        """The row ids of a meter's seqs first..last (an empty range for a meter not enrolled)."""
        num = self._nums.get(meter_id)
        if num is None:
            row = self._db.execute("SELECT num FROM meters WHERE meter_id=?", (meter_id,))
            found = row.fetchone()
            if found is None:
                return 0, -1
            num = self._nums[meter_id] = found[0]
        return row_id(num, max(0, first)), row_id(num, min(last, _LAST_SEQ))

    # --- readings ------------------------------------------------------------------------------

    def append_batch(
        self, records: Iterable[tuple[bytes, float]], heads: dict[bytes, tuple[int, bytes]]
    ) -> None:
        """Store (record, received_at) pairs of enrolled meters, each meter's in seq order and
        following its stored head, and move the heads to `heads[meter_id] = (next_seq,
        head_hash)`, all in one transaction. Raises StoreError (and rolls back) on any failure."""
        runs: dict[bytes, list[tuple[rc.Reading, bytes, float]]] = {}
        for record, at in records:
            r = rc.decode(record)[0]
            runs.setdefault(r.meter_id, []).append((r, record, at))
        rows = []
        before = {}
        for mid, run in runs.items():
            first = run[0][0].seq
            ends = [r.end for r, _, _ in run]
            recs = b"".join(rec for _, rec, _ in run)
            rows.append((self._ids(mid, first)[0], len(run), recs, min(ends), max(ends), run[0][2]))
            before[mid] = first
        self.write_runs(rows, heads, before)
        self.commit_batch()

    @_locked
    def write_runs(
        self, runs: list[tuple], heads: dict[bytes, tuple[int, bytes]], before: dict[bytes, int]
    ) -> None:
        """Insert runs (rows of `_INSERT`: consecutive records of one meter) and move each meter's
        head from `before[meter_id]` (its next_seq as stored) to `heads[meter_id]`, in a
        transaction left open for `commit_batch` (the CPU part, done by the ingest loop; the
        COMMIT is the fsync, done by the commit thread). Raises StoreError (and rolls back) on
        any failure, including a head that is not where `before` says (another writer stored
        those seqs: the chain stays contiguous and nothing is stored twice)."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_INSERT, runs)
            moved = db.executemany(
                "UPDATE meters SET next_seq=?, head_hash=? WHERE meter_id=? AND next_seq=?",
                [(n, h, m, before[m]) for m, (n, h) in heads.items()],
            ).rowcount
            if moved != len(heads):
                raise sqlite3.IntegrityError("a meter's head is not where this batch follows it")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"batch not stored: {exc}") from exc

    @_locked
    def commit_batch(self) -> None:
        """COMMIT what `write_runs` wrote (one fsync); rolls back and raises StoreError on failure."""
        db = self._db
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"batch not stored: {exc}") from exc
        self._checkpointer.committed()

    def _stored(
        self, meter_id: bytes, first: int, last: int, desc: bool = False,
        ends: tuple[int, int] | None = None,
    ) -> Iterator[tuple[int, bytes, float]]:  # fmt: skip
        """(seq, record, received_at) of a meter's stored records first <= seq <= last, in seq
        order (`desc`: newest first), from the runs that hold them (with `ends`: only the runs
        holding a record that ends within [ends[0], ends[1]])."""
        lo, hi = self._ids(meter_id, first, last)
        if lo > hi:
            return
        where = "" if ends is None else "AND max_end >= :start AND min_end <= :end"
        start, end = ends or (0, 0)
        rows = self._db.execute(
            "SELECT id, n, records, received_at FROM reading_runs WHERE id BETWEEN"
            " (SELECT COALESCE(MAX(id), :lo) FROM reading_runs WHERE id BETWEEN :base AND :lo)"
            f" AND :hi {where} ORDER BY id {'DESC' if desc else 'ASC'}",
            {"lo": lo, "hi": hi, "base": lo & ~_LAST_SEQ, "start": start, "end": end},
        )
        step = -1 if desc else 1
        for key, n, recs, at in rows:
            run_first = key & _LAST_SEQ
            a, b = max(first, run_first), min(last, run_first + n - 1)
            for seq in range(a, b + 1)[::step]:
                off = (seq - run_first) * rc.RECORD_LEN
                yield seq, bytes(recs[off : off + rc.RECORD_LEN]), at

    @_locked
    def record_at(self, meter_id: bytes, seq: int) -> bytes | None:
        if not 0 <= seq <= _LAST_SEQ:
            return None
        return next((rec for _, rec, _ in self._stored(meter_id, seq, seq)), None)

    @_locked
    def records(self, meter_id: bytes, first: int, last: int) -> list[tuple[int, bytes]]:
        """(seq, raw signed record) of a meter with first <= seq <= last, in seq order."""
        return [(seq, rec) for seq, rec, _ in self._stored(meter_id, first, last)]

    @_locked
    def heads(self) -> dict[bytes, int]:
        """meter_id -> seq of its newest stored record (meters with at least one record)."""
        out = {}
        for (meter_id,) in self._db.execute("SELECT meter_id FROM meters").fetchall():
            newest = self._head(bytes(meter_id))
            if newest is not None:
                out[bytes(meter_id)] = newest
        return out

    @_locked
    def head(self, meter_id: bytes) -> int | None:
        """The seq of `meter_id`'s newest stored record; None if it has none (or is unknown)."""
        return self._head(meter_id)  # an unknown meter's row range is empty

    def _head(self, meter_id: bytes) -> int | None:
        lo, hi = self._ids(meter_id)
        newest = self._db.execute(
            "SELECT id, n FROM reading_runs WHERE id BETWEEN ? AND ? ORDER BY id DESC LIMIT 1",
            (lo, hi),
        ).fetchone()
        return None if newest is None else (newest[0] & _LAST_SEQ) + newest[1] - 1

    @_locked
    def readings(self, meter_id: bytes, from_seq: int = 0) -> list[StoredRecord]:
        return [
            StoredRecord(rc.decode(rec)[0], rec, at)
            for _, rec, at in self._stored(meter_id, from_seq, _LAST_SEQ)
        ]

    @_locked
    def bounding(
        self, meter_id: bytes, start: int, end: int, min_seq: int = 0
    ) -> tuple[StoredRecord, StoredRecord] | None:
        """The first and the last interval reading (seq >= min_seq) whose end lies in [start, end]
        (None unless they are two different readings): the records that bound a period. Each is
        found from the runs whose ends overlap [start, end], from min_seq up and from the newest
        down."""
        found = []
        for desc in (False, True):
            for seq, rec, at in self._stored(meter_id, min_seq, _LAST_SEQ, desc, (start, end)):
                r = rc.decode(rec)[0]
                if r.kind == rc.KIND_READING and start <= r.end <= end:
                    found.append((seq, StoredRecord(r, rec, at)))
                    break
        if len(found) < 2 or found[0][0] == found[1][0]:
            return None
        return found[0][1], found[1][1]

    @_locked
    def count(self, meter_id: bytes | None = None) -> int:
        lo, hi = (0, 2**63 - 1) if meter_id is None else self._ids(meter_id)
        return self._db.execute(
            "SELECT COALESCE(SUM(n), 0) FROM reading_runs WHERE id BETWEEN ? AND ?", (lo, hi)
        ).fetchone()[0]
