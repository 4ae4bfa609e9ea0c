"""WAL checkpoints run on their own thread, not in a COMMIT (the ledger's and the ingest store's)."""

from __future__ import annotations

import sqlite3
import time

from gateway.durable_db import open_durable
from gateway.wal_checkpointer import BACKSTOP_PAGES, WalCheckpointer, defer_autocheckpoint


def _wait(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_commits_are_checkpointed_in_the_background_and_survive(tmp_path):
    path = tmp_path / "db.sqlite3"
    db = open_durable(path, "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB);")
    defer_autocheckpoint(db)
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    checkpointer = WalCheckpointer(path, interval_s=0.05)
    try:
        size0 = path.stat().st_size
        for i in range(20):  # ~20 pages: far below SQLite's own 1000-page checkpoint
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?, ?)", (i, bytes(3000)))
            db.execute("COMMIT")
            checkpointer.committed()
        # the pages reach the database file while the writer stays open: a background checkpoint
        assert _wait(lambda: checkpointer.checkpoints > 0 and path.stat().st_size > size0)
    finally:
        checkpointer.close()
    db.close()
    reread = sqlite3.connect(path)
    assert reread.execute("SELECT count(*) FROM t").fetchone()[0] == 20
    reread.close()


def test_a_checkpointer_without_commits_opens_nothing(tmp_path):
    checkpointer = WalCheckpointer(tmp_path / "never.sqlite3", interval_s=0.01)
    checkpointer.close()
    assert checkpointer.checkpoints == 0
    assert not (tmp_path / "never.sqlite3").exists()
