"""WAL checkpoints on a thread of their own, off the COMMIT path of a SQLite file.

With SQLite's default (`wal_autocheckpoint` = 1000 pages) the connection whose COMMIT crosses
the threshold copies the whole WAL into the database and fsyncs it before COMMIT returns: one
block or batch in a few hundred waits 10-30 ms longer, which is the p99 of the ledger's
submit-to-commit latency. Here the writer's automatic checkpoint is pushed far out (a backstop
only) and a daemon thread, on its own connection, runs `PRAGMA wal_checkpoint(PASSIVE)` at most
every `interval_s` after commits were signalled. A passive checkpoint never blocks the writer
nor readers; durability is unchanged (a COMMIT is durable once the WAL is fsynced, which
synchronous=FULL does in the COMMIT itself).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)
BACKSTOP_PAGES = 50_000  # the writer checkpoints itself past this (~200 MB): never in practice
INTERVAL_S = 0.2


def defer_autocheckpoint(db: sqlite3.Connection) -> None:
    """Leave checkpoints to a `WalCheckpointer` (the writer still does one far past the usual
    size, should that thread ever fall behind)."""
    db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")


class WalCheckpointer:
    def __init__(self, path: Path, interval_s: float = INTERVAL_S) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self.checkpoints = 0  # passive checkpoints run (for tests and figures)
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A transaction was committed: a checkpoint is due within `interval_s`."""
        self._pending.set()

    def close(self) -> None:
        self._stop.set()
        self._pending.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None  # opened at the first checkpoint
        try:
            while not self._stop.is_set():
                self._pending.wait()
                if self._stop.wait(self.interval_s):
                    break
                self._pending.clear()
                try:
                    if db is None:
                        db = sqlite3.connect(
                            self.path, isolation_level=None, check_same_thread=False
                        )
                        db.execute("PRAGMA busy_timeout=5000")
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # e.g. busy: the next commit asks again
                    log.warning("%s: checkpoint failed: %s", self.path, exc)
        finally:
            if db is not None:
                db.close()
