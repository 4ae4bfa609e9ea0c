"""Anchoring stored readings on the ledger: a batch's Merkle root in an `anchor` transaction.

Every `anchor.interval_s` the gateway takes the readings stored since the last batch (per meter a
contiguous seq range, meters in id order, at most `anchor.max_batch` records), signs an `anchor`
transaction with the node key and writes batch and transaction to `anchors.sqlite3` in one
SQLite transaction; only then is it submitted, and re-submitted until the ledger has committed it
(submission is idempotent by tx id). The batch is kept as its ranges: the records themselves stay
in the reading store, which is what `sgrid gateway proof` rebuilds the Merkle path from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.durable_db import open_durable
from gateway.ingest.store import ReadingStore
from gateway.ledger import proofs, txs
from gateway.ledger.keys import SigningKey

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id    INTEGER PRIMARY KEY,
    merkle_root TEXT NOT NULL,
    count       INTEGER NOT NULL,
    tx          TEXT NOT NULL,        -- the signed anchor transaction (wire JSON)
    tx_id       TEXT NOT NULL,
    status      TEXT NOT NULL,        -- pending | committed
    height      INTEGER,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ranges (
    batch_id  INTEGER NOT NULL,
    meter_id  BLOB NOT NULL,
    seq_first INTEGER NOT NULL,
    seq_last  INTEGER NOT NULL,
    PRIMARY KEY (batch_id, meter_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ranges_meter ON ranges (meter_id, seq_last);
"""


@dataclass(frozen=True)
class Batch:
    batch_id: int
    tx: dict[str, Any]
    tx_id: str
    status: str
    ranges: tuple[tuple[bytes, int, int], ...]


class AnchorBook:
    def __init__(self, path: Path) -> None:
        self._db = open_durable(path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def anchored_upto(self) -> dict[bytes, int]:
        """meter_id -> last seq already in some batch."""
        rows = self._db.execute("SELECT meter_id, MAX(seq_last) FROM ranges GROUP BY meter_id")
        return {bytes(m): int(s) for m, s in rows}

    def add(self, tx: txs.Tx, count: int, ranges: list[tuple[bytes, int, int]], now: float) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                "INSERT INTO batches (merkle_root, count, tx, tx_id, status, created_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                (tx.body["merkle_root"], count, json.dumps(tx.to_json()), tx.id, now),
            )
            batch_id = int(cur.lastrowid or 0)
            self._db.executemany(
                "INSERT INTO ranges VALUES (?, ?, ?, ?)", [(batch_id, *r) for r in ranges]
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return batch_id

    def _batch(self, row: tuple) -> Batch:
        ranges = self._db.execute(
            "SELECT meter_id, seq_first, seq_last FROM ranges WHERE batch_id=? ORDER BY meter_id",
            (row[0],),
        ).fetchall()
        return Batch(
            row[0],
            json.loads(row[1]),
            row[2],
            row[3],
            tuple((bytes(m), a, b) for m, a, b in ranges),
        )

    def pending(self) -> list[Batch]:
        rows = self._db.execute(
            "SELECT batch_id, tx, tx_id, status FROM batches WHERE status='pending' ORDER BY batch_id"
        ).fetchall()
        return [self._batch(r) for r in rows]

    def committed(self, batch_id: int, height: int) -> None:
        self._db.execute(
            "UPDATE batches SET status='committed', height=? WHERE batch_id=?", (height, batch_id)
        )

    def containing(self, meter_id: bytes, seq: int) -> Batch | None:
        row = self._db.execute(
            "SELECT b.batch_id, b.tx, b.tx_id, b.status FROM ranges r JOIN batches b "
            "ON b.batch_id = r.batch_id WHERE r.meter_id=? AND r.seq_first<=? AND r.seq_last>=?",
            (meter_id, seq, seq),
        ).fetchone()
        return self._batch(row) if row else None

    def stats(self) -> dict[str, int]:
        n, committed, records = self._db.execute(
            "SELECT count(*), coalesce(sum(status='committed'), 0), coalesce(sum(count), 0) "
            "FROM batches"
        ).fetchone()
        return {"batches": n, "committed": committed, "records": records}


def batch_records(store: ReadingStore, ranges: tuple[tuple[bytes, int, int], ...]) -> list[bytes]:
    """The batch's records in Merkle-leaf order: meters by id, each meter's seqs ascending."""
    out: list[bytes] = []
    for meter_id, first, last in sorted(ranges):
        out += [rec for _, rec in store.records(meter_id, first, last)]
    return out


def next_batch(
    store: ReadingStore,
    book: AnchorBook,
    enrolled: Callable[[bytes], bool],
    max_batch: int,
) -> list[tuple[bytes, int, int]]:
    """The ranges of the next batch: what was stored since the last one, for meters the ledger
    knows (an anchor naming an unknown meter is refused), at most `max_batch` records."""
    done = book.anchored_upto()
    ranges: list[tuple[bytes, int, int]] = []
    room = max_batch
    for meter_id, head in sorted(store.heads().items()):
        if room <= 0:
            break
        row = store.meter(meter_id)
        first = max(done.get(meter_id, -1) + 1, row.anchor_seq if row else 0)
        if head < first or not enrolled(meter_id):
            continue
        seqs = [s for s, _ in store.records(meter_id, first, min(head, first + room - 1))]
        if not seqs:
            continue
        # only a contiguous run: the range must describe exactly the records in the batch
        last = seqs[0] - 1
        for s in seqs:
            if s != last + 1:
                break
            last = s
        ranges.append((meter_id, seqs[0], last))
        room -= last - seqs[0] + 1
    return ranges


def make_anchor(
    store: ReadingStore,
    ranges: list[tuple[bytes, int, int]],
    key: SigningKey,
    chain: str,
    nonce: str,
) -> tuple[txs.Tx, int]:
    records = batch_records(store, tuple(ranges))
    fields = proofs.anchor_fields(records)
    tx = txs.make(
        "anchor", chain, nonce=nonce, submitter=key.pubkey, batch=nonce[:64], **fields
    ).signed_by(key)
    return tx, len(records)


def proof_for(
    store: ReadingStore, batch: Batch, meter_id: bytes, seq: int, tx_proof: dict[str, Any]
) -> dict[str, Any]:
    """The offline inclusion proof of one reading (checked by `sgrid ledger verify-proof`)."""
    records = batch_records(store, batch.ranges)
    target = store.record_at(meter_id, seq)
    if target is None or target not in records:
        raise LookupError(f"meter {meter_id.hex()} seq {seq} is not in batch {batch.batch_id}")
    return proofs.reading_proof(records, records.index(target), tx_proof)
