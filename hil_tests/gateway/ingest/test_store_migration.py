"""A reading store written by a gateway before schema 2 opens: migrated in one transaction, every
reading and head kept, ingest carrying on where it stopped; files it cannot read are refused
unchanged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.errors import StoreError
from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

# schema 1 verbatim (gateway/ingest/store.py before schema 2), as it set user_version=1
SCHEMA_1 = """
PRAGMA journal_mode=WAL;
CREATE TABLE meters (
    meter_id BLOB PRIMARY KEY, pubkey BLOB NOT NULL, label TEXT NOT NULL DEFAULT '',
    enrolled_at INTEGER NOT NULL, anchor_seq INTEGER NOT NULL, next_seq INTEGER NOT NULL,
    head_hash BLOB
) WITHOUT ROWID;
CREATE TABLE readings (
    meter_id BLOB NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL,
    interval_import_wh INTEGER NOT NULL, interval_export_wh INTEGER NOT NULL,
    avg_power_w INTEGER NOT NULL, peak_power_w INTEGER NOT NULL, voltage_dv INTEGER NOT NULL,
    relay INTEGER NOT NULL, flags INTEGER NOT NULL, credit_wh INTEGER NOT NULL,
    record BLOB NOT NULL, record_hash BLOB NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (meter_id, seq)
) WITHOUT ROWID;
CREATE INDEX readings_end ON readings (meter_id, "end");
PRAGMA user_version=1;
"""


def write_schema_1(path: Path, meters: dict[SoftMeter, tuple[int, list[bytes]]]) -> None:
    """A file as schema 1 left it: meters (anchor_seq, records stored from the anchor on)."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    for m, (anchor, records) in meters.items():
        head = rc.record_hash(records[-1]) if records else (rc.ZERO_HASH if anchor == 0 else None)
        db.execute("INSERT INTO meters VALUES (?,?,?,?,?,?,?)",
                   (m.meter_id, m.pubkey, m.hex[:6], 1, anchor, anchor + len(records), head))  # fmt: skip
        for i, record in enumerate(records):
            r = rc.decode(record)[0]
            db.execute(
                "INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (r.meter_id, r.seq, r.kind, r.start, r.end, r.import_wh, r.export_wh,
                 r.interval_import_wh, r.interval_export_wh, r.avg_power_w, r.peak_power_w,
                 r.voltage_dv, r.relay, r.flags, r.credit_wh, record, rc.record_hash(record),
                 100.0 + i),
            )  # fmt: skip
    db.commit()
    db.close()


def _meters(n: int) -> list[SoftMeter]:
    return [SoftMeter(bytes([i + 1]) * 32) for i in range(n)]


def test_a_schema_1_store_opens_with_every_reading_and_head_and_ingest_carries_on(tmp_path):
    a, b, idle = _meters(3)
    rec_a = [a.next_record() for _ in range(5)]
    for _ in range(3):  # b was enrolled with an anchor at seq 3
        b.next_record()
    rec_b = [b.next_record() for _ in range(2)]
    path = tmp_path / "readings.sqlite3"
    write_schema_1(path, {a: (0, rec_a), b: (3, rec_b), idle: (0, [])})

    store = ReadingStore(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (2,)
    assert store.count() == 7 and store.heads() == {a.meter_id: 4, b.meter_id: 4}
    assert store.records(a.meter_id, 0, 9) == list(enumerate(rec_a))
    assert store.records(b.meter_id, 0, 9) == [(3, rec_b[0]), (4, rec_b[1])]
    assert [(s.record, s.received_at) for s in store.readings(b.meter_id)] == [
        (rec_b[0], 100.0), (rec_b[1], 101.0)]  # fmt: skip
    assert store.record_at(a.meter_id, 2) == rec_a[2] and store.record_at(idle.meter_id, 0) is None
    ends = [rc.decode(r)[0].end for r in rec_a]
    first, last = store.bounding(a.meter_id, ends[1], ends[3])  # type: ignore[misc]
    assert (first.record, last.record) == (rec_a[1], rec_a[3])
    nums = sorted(store.meter(m.meter_id).num for m in (a, b, idle))  # type: ignore[union-attr]
    assert nums == [0, 1, 2]

    # ingest carries on: a replay is re-acknowledged, the next records are stored and acked
    ing = Ingestor(store)
    nxt = [a.next_record(), a.next_record()]
    out = ing.ingest([Incoming(a.hex, rec_a[4], 0.0), *(Incoming(a.hex, r, 0.0) for r in nxt)])
    assert [r.reason for r in out.rejections] == ["replay"]
    assert out.acks == {a.meter_id: (6, rc.record_hash(nxt[1]))}
    out = ing.ingest([Incoming(idle.hex, idle.next_record(), 0.0)])
    assert out.counts == {idle.meter_id: 1}
    store.close()

    again = ReadingStore(path)  # migrated once: reopening changes nothing
    assert again.count() == 10 and again.records(a.meter_id, 5, 6) == list(enumerate(nxt, 5))
    again.close()


def test_a_file_it_cannot_migrate_is_refused_and_left_as_it_was(tmp_path):
    (a,) = _meters(1)
    path = tmp_path / "readings.sqlite3"
    write_schema_1(path, {a: (0, [a.next_record() for _ in range(3)])})
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meters")  # readings of a meter that is not enrolled
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="3 readings of no meter"):
        ReadingStore(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (3,)
    assert "num" not in [r[1] for r in db.execute("PRAGMA table_info(meters)")]
    db.close()


def test_a_newer_schema_or_another_database_is_refused(tmp_path):
    path = tmp_path / "readings.sqlite3"
    ReadingStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema 3"):
        ReadingStore(path)
    other = tmp_path / "tokens.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE credit (x)").connection.close()
    with pytest.raises(StoreError, match="not a reading store"):
        ReadingStore(other)
