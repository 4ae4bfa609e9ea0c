"""The reading store's layout on disk: a new file gets the current one, an older file is migrated.

Schema 2: a reading is stored once, as the signed record it arrived as (every field is in it:
sgcore.reading decodes it), in a run: the consecutive records of one meter that one batch
stored, joined in seq order, in one row (a meter catching up on its journal sends hundreds in a
batch: one row, one INSERT for them all). A run's id is the meter's number (`meters.num`, given at
enrollment) << 32 | the seq of its first record: one meter's runs lie together in seq order in
the table's own B-tree, found by id range, with no index to keep; min_end / max_end let the
store's period queries skip runs. The view `readings` gives one row per record (for people and
tools reading the file with SQL; the gateway itself reads the runs).

Schema 1 (until 2026-12) had one WITHOUT ROWID row per reading keyed (meter_id, seq) holding the
record, its 15 fields decoded again as columns, its chain hash (= sha256(record)) and an index on
(meter_id, "end"): ~1.3 KB of WAL per reading for a 167-byte record. `create_or_migrate` turns
each of its readings into a run of one, in one transaction: a file is wholly in schema 1 (an
interrupted migration runs again at the next open) or wholly in schema 2.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from gateway.errors import StoreError

VERSION = 2

_RUNS = """
CREATE TABLE reading_runs (
    id          INTEGER PRIMARY KEY,   -- meters.num << 32 | seq of the run's first record
    n           INTEGER NOT NULL,      -- records in the run: seqs (id & 0xffffffff) .. + n - 1
    records     BLOB NOT NULL,         -- the n signed 167-byte records, as received, in seq order
    min_end     INTEGER NOT NULL,      -- the smallest and largest interval end among them
    max_end     INTEGER NOT NULL,
    received_at REAL NOT NULL          -- when the first of them arrived
)"""
_METERS_NUM = "CREATE UNIQUE INDEX meters_num ON meters (num)"
_VIEW = """
CREATE VIEW readings AS
    WITH RECURSIVE one(meter_id, seq, i, n, records, received_at) AS (
        SELECT meters.meter_id, reading_runs.id & 4294967295, 0, n, records, received_at
        FROM reading_runs JOIN meters ON meters.num = reading_runs.id >> 32
        UNION ALL
        SELECT meter_id, seq + 1, i + 1, n, records, received_at FROM one WHERE i + 1 < n
    )
    SELECT meter_id, seq, substr(records, i * 167 + 1, 167) AS record, received_at FROM one"""
SCHEMA = (
    """
CREATE TABLE meters (
    meter_id    BLOB PRIMARY KEY,      -- sha256(pubkey)[:16]
    pubkey      BLOB NOT NULL,         -- 33-byte compressed secp256k1 key
    label       TEXT NOT NULL DEFAULT '',
    enrolled_at INTEGER NOT NULL,
    anchor_seq  INTEGER NOT NULL,      -- first seq the gateway accepts
    next_seq    INTEGER NOT NULL,      -- seq of the next record expected
    head_hash   BLOB,                  -- chain hash of record next_seq-1, NULL: anchor unconstrained
    num         INTEGER                -- the meter's number in its runs' ids: 0, 1, ...
) WITHOUT ROWID;
"""
    + f"{_METERS_NUM};\n{_RUNS};\n{_VIEW};\n"
)


def create_or_migrate(db: sqlite3.Connection) -> None:
    """Give the file schema `VERSION`: create it in an empty file, migrate schema 1, leave the
    current one as it is. Raises StoreError for a file this gateway cannot read."""
    if _current(db):
        return  # no write lock taken: a reader opening the file never waits for the gateway
    db.execute("BEGIN IMMEDIATE")  # another process opening the same file waits for this one
    try:
        _create_or_migrate(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _current(db: sqlite3.Connection) -> bool:
    (found,) = db.execute("PRAGMA user_version").fetchone()
    tables = db.execute("SELECT 1 FROM sqlite_schema WHERE name='reading_runs'").fetchall()
    return found == VERSION and bool(tables)


def _create_or_migrate(db: sqlite3.Connection) -> None:
    (found,) = db.execute("PRAGMA user_version").fetchone()
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    if "reading_runs" in tables:
        if found != VERSION:
            raise StoreError(
                f"schema {found}: this gateway reads schema {VERSION} (and migrates 1)"
            )
        return
    if "readings" not in tables:
        if tables:
            raise StoreError(f"not a reading store (tables {', '.join(sorted(tables))})")
        _statements(db, SCHEMA)
    elif found <= 1 and "meter_id" in _columns(db, "readings"):
        _from_1(db)
    else:
        raise StoreError(f"schema {found}, not one this gateway reads ({VERSION}) or migrates (1)")
    db.execute(f"PRAGMA user_version={VERSION}")


def _statements(db: sqlite3.Connection, script: str) -> None:
    """Run a script's statements one by one (executescript would commit the transaction)."""
    done: Callable[[str], bool] = sqlite3.complete_statement
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if done(buf):
            db.execute(buf)
            buf = ""


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def _from_1(db: sqlite3.Connection) -> None:
    (stored,) = db.execute("SELECT count(*) FROM readings").fetchone()
    db.execute("ALTER TABLE meters ADD COLUMN num INTEGER")
    # numbered in meter id order (any order would do: a meter's number never changes)
    db.execute(
        "UPDATE meters SET num ="
        " (SELECT count(*) FROM meters AS m WHERE m.meter_id < meters.meter_id)"
    )
    db.execute(_METERS_NUM)
    db.execute(_RUNS)
    db.execute(
        'INSERT INTO reading_runs SELECT meters.num << 32 | r.seq, 1, r.record, r."end", r."end",'
        " r.received_at FROM readings AS r JOIN meters USING (meter_id) ORDER BY 1"
    )
    (moved,) = db.execute("SELECT count(*) FROM reading_runs").fetchone()
    if moved != stored:  # readings of a meter that is not enrolled: ingest never writes one
        raise StoreError(
            f"cannot migrate to schema {VERSION}: {stored - moved} readings of no meter"
        )
    db.execute("DROP TABLE readings")  # and its index readings_end
    db.execute(_VIEW)
