"""The reading store keeps each batch's records of a meter as one run (store_migration, schema 2):
whatever the batches, every query answers as if each record were stored on its own, and a head
that another writer moved refuses the batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import StoreError
from gateway.ingest.store import ReadingStore
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc


def chain(m: SoftMeter, shape: list[tuple[int, int]]) -> list[bytes]:
    """Records of `m` with the given (kind, end) each, chained."""
    out = []
    for kind, end in shape:
        r = rc.Reading(m.meter_id, m.seq, m.prev_hash, min(end, m.t), end, m.seq * 10, m.seq,
                       kind=kind, reason=1 if kind == rc.KIND_RELAY_EVENT else 0)  # fmt: skip
        record = m.make(r)
        m.seq, m.prev_hash = m.seq + 1, rc.record_hash(record)
        out.append(record)
    return out


def store_in_batches(store: ReadingStore, records: list[bytes], cuts: list[int]) -> None:
    """Store `records` (one meter's, from seq 0) in batches ending at `cuts`."""
    start = 0
    for end in [*sorted(set(cuts)), len(records)]:
        part = records[start:end]
        if part:
            head = (rc.decode(part[-1])[0].seq + 1, rc.record_hash(part[-1]))
            mid = rc.decode(part[0])[0].meter_id
            store.append_batch([(r, float(i)) for i, r in enumerate(part, start)], {mid: head})
        start = max(start, end)


shapes = st.lists(
    st.tuples(st.sampled_from([rc.KIND_READING, rc.KIND_READING, rc.KIND_RELAY_EVENT]),
              st.integers(0, 40)),  # fmt: skip
    min_size=1, max_size=25,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(shape=shapes, cuts=st.lists(st.integers(0, 25), max_size=6), q=st.tuples(
    st.integers(-2, 27), st.integers(-2, 27), st.integers(0, 40), st.integers(0, 40)))  # fmt: skip
def test_every_query_answers_as_for_records_stored_one_by_one(tmp_path_factory, shape, cuts, q):
    m, other = SoftMeter(b"\x01" * 32), SoftMeter(b"\x02" * 32)
    records = chain(m, [(k, 1_000 + e) for k, e in shape])
    store = ReadingStore(tmp_path_factory.mktemp("s") / "r.sqlite3")
    try:
        store.enroll(other.pubkey)  # number 0: m's runs are not the first meter's
        store.enroll(m.pubkey)
        store_in_batches(store, records, cuts)
        first, last, start, end = q
        n = len(records)
        assert store.count(m.meter_id) == store.count() == n
        assert store.count(other.meter_id) == 0 and store.heads() == {m.meter_id: n - 1}
        assert store.head(m.meter_id) == n - 1 and store.head(other.meter_id) is None
        assert store.head(b"\x09" * 32) is None  # not enrolled
        assert store.records(m.meter_id, first, last) == [
            (s, records[s]) for s in range(max(0, first), min(last, n - 1) + 1)
        ]
        assert store.record_at(m.meter_id, first) == (records[first] if 0 <= first < n else None)
        assert [s.record for s in store.readings(m.meter_id, first)] == records[max(0, first) :]
        assert (
            store.records(other.meter_id, 0, n) == [] and store.record_at(other.meter_id, 0) is None
        )
        # bounding: the first and the last interval reading from min_seq whose end is in range
        lo, hi = 1_000 + min(start, end), 1_000 + max(start, end)
        min_seq = max(0, first)
        hits = [s for s in range(min_seq, n) if shape[s][0] == rc.KIND_READING
                and lo <= rc.decode(records[s])[0].end <= hi]  # fmt: skip
        bounds = store.bounding(m.meter_id, lo, hi, min_seq)
        if len(hits) < 2:
            assert bounds is None
        else:
            assert bounds is not None
            assert (bounds[0].record, bounds[1].record) == (records[hits[0]], records[hits[-1]])
        # the view gives one row per record, for SQL readers
        con = sqlite3.connect(store.path)
        rows = con.execute("SELECT meter_id, seq, record FROM readings ORDER BY seq").fetchall()
        con.close()
        assert rows == [(m.meter_id, s, r) for s, r in enumerate(records)]
    finally:
        store.close()


def test_a_batch_following_a_head_another_writer_moved_is_refused(tmp_path: Path):
    m = SoftMeter()
    records = chain(m, [(rc.KIND_READING, 1_000 + i) for i in range(4)])
    store = ReadingStore(tmp_path / "r.sqlite3")
    store.enroll(m.pubkey)
    store_in_batches(store, records[:2], [])
    other = sqlite3.connect(tmp_path / "r.sqlite3")  # stored seq 2 and moved the head past it
    other.execute("UPDATE meters SET next_seq=3 WHERE meter_id=?", (m.meter_id,))
    other.commit()
    other.close()
    with pytest.raises(StoreError, match="head is not where"):
        store.append_batch([(records[2], 0.0), (records[3], 0.0)], {m.meter_id: (4, b"h" * 32)})
    assert store.count() == 2 and store.meter(m.meter_id).next_seq == 3  # nothing of it stored
    store.close()
