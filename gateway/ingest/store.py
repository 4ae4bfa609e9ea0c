"""The durable reading store: one SQLite file in WAL mode with synchronous=FULL.

Durability choice (docs/gateway.md): WAL + synchronous=FULL fsyncs the WAL on every COMMIT, so a
committed batch survives power loss, not just a process crash. The gateway acknowledges a reading
only after the COMMIT of the batch that holds it returned. Batching amortises the fsync.

Per meter the store keeps a contiguous chain: `meters.next_seq` / `meters.head_hash` describe the
last stored record, and a batch inserts readings and moves the head in one transaction.
"""

from __future__ import annotations

import functools
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from gateway.durable_db import open_durable
from gateway.errors import EnrollmentError, StoreError
from gateway.wal_checkpointer import WalCheckpointer, defer_autocheckpoint
from sgcore import reading as rc

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meters (
    meter_id    BLOB PRIMARY KEY,      -- sha256(pubkey)[:16]
    pubkey      BLOB NOT NULL,         -- 33-byte compressed secp256k1 key
    label       TEXT NOT NULL DEFAULT '',
    enrolled_at INTEGER NOT NULL,
    anchor_seq  INTEGER NOT NULL,      -- first seq the gateway accepts
    next_seq    INTEGER NOT NULL,      -- seq of the next record expected
    head_hash   BLOB                   -- chain hash of record next_seq-1; NULL = anchor unconstrained
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings (
    meter_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    import_wh INTEGER NOT NULL,
    export_wh INTEGER NOT NULL,
    interval_import_wh INTEGER NOT NULL,
    interval_export_wh INTEGER NOT NULL,
    avg_power_w INTEGER NOT NULL,
    peak_power_w INTEGER NOT NULL,
    voltage_dv INTEGER NOT NULL,
    relay INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    credit_wh INTEGER NOT NULL,
    record BLOB NOT NULL,              -- the full signed 167-byte record, as received
    record_hash BLOB NOT NULL,         -- sha256(record): the next record's prev_hash
    received_at REAL NOT NULL,
    PRIMARY KEY (meter_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_end ON readings (meter_id, "end");
"""

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


_INSERT = "INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"  # 18 columns
# A record's decoded fields (struct-unpacked in sgcore.reading's order: version, kind, reason,
# meter_id, seq, prev_hash, start, end, import_wh, ...) -> the readings table's first 15 columns
# (meter_id, seq, kind, start, "end", import_wh, ..., credit_wh); a row is those, then
# (record, record_hash, received_at). The ingest passes those two blobs as bytearrays: Python's
# sqlite3 binds a bytearray directly but looks for an adapter for every bytes object (~0.5 us
# each, per row).
ROW_COLUMNS = operator.itemgetter(3, 4, 1, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)


@dataclass(frozen=True)
class MeterRow:
    meter_id: bytes
    pubkey: bytes
    label: str
    anchor_seq: int
    next_seq: int
    head_hash: bytes | None


@dataclass(frozen=True)
class StoredRecord:
    reading: rc.Reading
    record: bytes
    record_hash: bytes
    received_at: float


class ReadingStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = open_durable(path, _SCHEMA)
        try:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            defer_autocheckpoint(self._db)  # checkpoints off the commit path (own thread)
        except sqlite3.Error as exc:
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
        """Register a meter key. Idempotent for the same key; anchor_seq 0 pins the chain start."""
        meter_id = rc.meter_id_from_pubkey(pubkey)
        existing = self.meter(meter_id)
        if existing is not None:
            if existing.pubkey != pubkey:
                raise EnrollmentError(
                    f"meter id {meter_id.hex()} already enrolled with another key"
                )
            return existing
        head = rc.ZERO_HASH if anchor_seq == 0 else None
        try:
            self._db.execute(
                "INSERT INTO meters VALUES (?,?,?,?,?,?,?)",
                (meter_id, pubkey, label, int(time.time()), anchor_seq, anchor_seq, head),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot enroll meter: {exc}") from exc
        return MeterRow(meter_id, pubkey, label, anchor_seq, anchor_seq, head)

    @_locked
    def meter(self, meter_id: bytes) -> MeterRow | None:
        row = self._db.execute(
            "SELECT meter_id, pubkey, label, anchor_seq, next_seq, head_hash FROM meters WHERE meter_id=?",
            (meter_id,),
        ).fetchone()
        return MeterRow(*row) if row else None

    @_locked
    def meters(self) -> list[MeterRow]:
        rows = self._db.execute(
            "SELECT meter_id, pubkey, label, anchor_seq, next_seq, head_hash FROM meters ORDER BY label"
        ).fetchall()
        return [MeterRow(*r) for r in rows]

    # --- readings ------------------------------------------------------------------------------

    def append_batch(
        self,
        records: Iterable[tuple[rc.Reading, bytes, bytes, float]],
        heads: dict[bytes, tuple[int, bytes]],
    ) -> None:
        """Insert (reading, record, record_hash, received_at) rows and move the meters' heads
        to `heads[meter_id] = (next_seq, head_hash)`, all in one transaction. Raises StoreError
        (and rolls back) on any failure, including a (meter_id, seq) already stored."""
        self.write_batch(records, heads)
        self.commit_batch()

    def write_batch(
        self,
        records: Iterable[tuple[rc.Reading, bytes, bytes, float]],
        heads: dict[bytes, tuple[int, bytes]],
    ) -> None:
        """`append_batch` up to its COMMIT: the transaction stays open for `commit_batch`."""
        self.write_rows(
            [
                (
                    r.meter_id,
                    r.seq,
                    r.kind,
                    r.start,
                    r.end,
                    r.import_wh,
                    r.export_wh,
                    r.interval_import_wh,
                    r.interval_export_wh,
                    r.avg_power_w,
                    r.peak_power_w,
                    r.voltage_dv,
                    r.relay,
                    r.flags,
                    r.credit_wh,
                    record,
                    h,
                    at,
                )
                for r, record, h, at in records
            ],
            heads,
        )

    @_locked
    def write_rows(self, rows: list[tuple], heads: dict[bytes, tuple[int, bytes]]) -> None:
        """Insert readings rows (the table's 18 columns, see ROW_COLUMNS) and move the meters'
        heads, in a transaction left open for `commit_batch` (the CPU part, done by the ingest
        loop; the COMMIT is the fsync, done by the commit thread). Raises StoreError (and rolls
        back) on any failure, including a (meter_id, seq) already stored."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_INSERT, rows)
            db.executemany(
                "UPDATE meters SET next_seq=?, head_hash=? WHERE meter_id=?",
                [(n, h, m) for m, (n, h) in heads.items()],
            )
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"batch not stored: {exc}") from exc

    @_locked
    def commit_batch(self) -> None:
        """COMMIT what `write_batch` wrote (one fsync); rolls back and raises StoreError on failure."""
        db = self._db
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"batch not stored: {exc}") from exc
        self._checkpointer.committed()

    @_locked
    def record_at(self, meter_id: bytes, seq: int) -> bytes | None:
        row = self._db.execute(
            "SELECT record FROM readings WHERE meter_id=? AND seq=?", (meter_id, seq)
        ).fetchone()
        return row[0] if row else None

    @_locked
    def records(self, meter_id: bytes, first: int, last: int) -> list[tuple[int, bytes]]:
        """(seq, raw signed record) of a meter with first <= seq <= last, in seq order."""
        rows = self._db.execute(
            "SELECT seq, record FROM readings WHERE meter_id=? AND seq BETWEEN ? AND ? ORDER BY seq",
            (meter_id, first, last),
        ).fetchall()
        return [(int(seq), bytes(rec)) for seq, rec in rows]

    @_locked
    def heads(self) -> dict[bytes, int]:
        """meter_id -> seq of its newest stored record (meters with at least one record)."""
        rows = self._db.execute("SELECT meter_id, MAX(seq) FROM readings GROUP BY meter_id")
        return {bytes(m): int(s) for m, s in rows}

    @_locked
    def readings(self, meter_id: bytes, from_seq: int = 0) -> list[StoredRecord]:
        rows = self._db.execute(
            "SELECT record, record_hash, received_at FROM readings WHERE meter_id=? AND seq>=? ORDER BY seq",
            (meter_id, from_seq),
        ).fetchall()
        return [StoredRecord(rc.decode(rec)[0], rec, h, at) for rec, h, at in rows]

    @_locked
    def bounding(
        self, meter_id: bytes, start: int, end: int, min_seq: int = 0
    ) -> tuple[StoredRecord, StoredRecord] | None:
        """The first and the last interval reading (seq >= min_seq) whose end lies in [start, end]
        (None unless they are two different readings): the records that bound a period."""
        q = (
            "SELECT record, record_hash, received_at FROM readings WHERE meter_id=? AND kind=? "
            'AND "end" BETWEEN ? AND ? AND seq >= ? ORDER BY seq {} LIMIT 1'
        )
        args = (meter_id, rc.KIND_READING, start, end, min_seq)
        a = self._db.execute(q.format("ASC"), args).fetchone()
        b = self._db.execute(q.format("DESC"), args).fetchone()
        if a is None or b is None or a[0] == b[0]:
            return None
        return (StoredRecord(rc.decode(a[0])[0], bytes(a[0]), bytes(a[1]), a[2]),
                StoredRecord(rc.decode(b[0])[0], bytes(b[0]), bytes(b[1]), b[2]))  # fmt: skip

    @_locked
    def count(self, meter_id: bytes | None = None) -> int:
        if meter_id is None:
            return self._db.execute("SELECT count(*) FROM readings").fetchone()[0]
        return self._db.execute(
            "SELECT count(*) FROM readings WHERE meter_id=?", (meter_id,)
        ).fetchone()[0]
