"""gateway/durable_db.py: durable settings, and sqlite3's errors as the caller's GatewayError."""

from __future__ import annotations

import pytest

from gateway.durable_db import open_durable
from gateway.errors import StoreError
from gateway.ln.errors import ChannelStoreError

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT);"


def test_a_new_database_is_durable_and_has_its_schema(tmp_path):
    db = open_durable(tmp_path / "sub" / "x.sqlite", SCHEMA)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        db.execute("INSERT INTO t VALUES (1, 'a')")  # autocommit: durable on return
    finally:
        db.close()
    again = open_durable(tmp_path / "sub" / "x.sqlite", SCHEMA)
    assert again.execute("SELECT v FROM t").fetchall() == [("a",)]
    again.close()


def test_a_corrupt_file_raises_the_callers_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="bad.sqlite"):
        open_durable(bad, SCHEMA)
    with pytest.raises(ChannelStoreError, match="bad.sqlite"):
        open_durable(bad, SCHEMA, ChannelStoreError)


def test_a_directory_in_the_way_is_a_store_error(tmp_path):
    (tmp_path / "d.sqlite").mkdir()
    with pytest.raises(StoreError):
        open_durable(tmp_path / "d.sqlite", SCHEMA)
