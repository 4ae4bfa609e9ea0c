"""One way to open the gateway's SQLite files that must survive a power cut.

WAL journal, ``synchronous=FULL`` (a committed transaction is on disk when COMMIT returns),
autocommit mode (callers open their own ``BEGIN IMMEDIATE`` transactions), a busy timeout for a
second process on the same file, and usable from the service's threads (the caller serialises).
sqlite3's errors are translated here into the caller's `GatewayError`, naming the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.errors import GatewayError, StoreError

BUSY_TIMEOUT_MS = 5000


def open_durable(
    path: Path, schema: str, error: type[GatewayError] = StoreError
) -> sqlite3.Connection:
    """Open (creating its directory and schema) the database at ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.executescript(schema)
    except (sqlite3.Error, OSError) as exc:
        raise error(f"{path}: cannot open the database: {exc}") from exc
    return db
