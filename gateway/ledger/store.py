"""SQLite storage of the chain: WAL, synchronous=FULL, one SQL transaction per block.

A block is acknowledged only after its SQL transaction committed, so a crash (even SIGKILL)
leaves the file at a block boundary. WAL checkpoints run on a thread of their own
(`gateway.wal_checkpointer`), not inside a block's COMMIT.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from gateway.ledger.blocks import Block
from gateway.ledger.errors import StorageError
from gateway.ledger.txs import Tx
from gateway.wal_checkpointer import WalCheckpointer, defer_autocheckpoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash TEXT NOT NULL, header TEXT NOT NULL,
    signature TEXT NOT NULL, txs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    tx_id TEXT PRIMARY KEY, height INTEGER NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1);
"""


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _row_to_block(row: tuple[int, str, str, str, str]) -> Block:
    _, digest, header, signature, txs = row
    try:
        parsed = json.loads(txs)
        return Block(
            json.loads(header), digest, signature, tuple(Tx(t["body"], t["sigs"]) for t in parsed)
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"block {row[0]} is not readable: {exc}") from exc


class Store:
    """The chain in one SQLite file. Thread-safe: a writing and a reading connection, each
    behind its own lock. In WAL mode a read never waits for a block's commit (its fsync): it
    sees the blocks committed before it started."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        defer_autocheckpoint(self._db)
        self._checkpointer = WalCheckpointer(self.path)
        self.write_s = 0.0  # seconds spent writing blocks (BEGIN to the INSERTs), for figures
        self.commit_s = 0.0  # seconds spent in COMMIT (the WAL fsync)
        self._lock = threading.Lock()  # the reading connection's
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)

    def close(self) -> None:
        self._checkpointer.close()
        with self._write_lock, self._lock:
            self._db.close()
            self._reader.close()

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._reader.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def append(
        self,
        block: Block,
        rejected: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
        meta: dict[str, str] | None = None,
    ) -> None:
        """Store a block, refused tx ids (replicated mode) and meta, atomically (where each tx is
        is indexed in memory: `Chain.locate`)."""
        txs_json = "[" + ",".join([t.wire_json for t in block.txs]) + "]"  # == _dumps(to_json)
        with self._write_lock:
            try:
                t0 = time.perf_counter()
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO blocks VALUES (?,?,?,?,?)",
                    (block.height, block.hash, _dumps(block.header), block.signature, txs_json),
                )
                if rejected:
                    self._db.executemany(
                        "INSERT INTO rejected VALUES (?,?,?,?,1) ON CONFLICT(tx_id) DO UPDATE SET"
                        " height=excluded.height, reason=excluded.reason, detail=excluded.detail,"
                        " attempts=attempts+1",
                        [(tx_id, block.height, r, detail) for tx_id, r, detail in rejected],
                    )
                for key, value in (meta or {}).items():
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))
                t1 = time.perf_counter()
                self._db.execute("COMMIT")
                self.write_s += t1 - t0
                self.commit_s += time.perf_counter() - t1
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        self._checkpointer.committed()

    def tip_height(self) -> int:
        with self._lock:
            row = self._reader.execute("SELECT MAX(height) FROM blocks").fetchone()
        return -1 if row[0] is None else int(row[0])

    def block(self, height: int) -> Block | None:
        with self._lock:
            row = self._reader.execute("SELECT * FROM blocks WHERE height=?", (height,)).fetchone()
        return _row_to_block(row) if row else None

    def block_hash(self, height: int) -> str | None:
        with self._lock:
            row = self._reader.execute(
                "SELECT hash FROM blocks WHERE height=?", (height,)
            ).fetchone()
        return str(row[0]) if row else None

    def blocks(self, start: int = 0, batch: int = 500) -> Iterator[Block]:
        """All blocks from `start` in height order (read in batches)."""
        height = start
        while True:
            with self._lock:
                rows = self._reader.execute(
                    "SELECT * FROM blocks WHERE height>=? ORDER BY height LIMIT ?", (height, batch)
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_to_block(row)
            height = rows[-1][0] + 1
