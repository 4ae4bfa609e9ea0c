"""IngestPipeline: batch k+1 checked while batch k is stored; outcomes only once stored, in order."""

import sqlite3

import pytest

from gateway.errors import StoreError
from gateway.ingest.pipeline import BatchOutcome, Incoming, Ingestor
from gateway.ingest.pipelined import IngestPipeline, StoreFailed
from gateway.ingest.store import ReadingStore, row_id
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc


@pytest.fixture
def store(tmp_path):
    s = ReadingStore(tmp_path / "r.sqlite3")
    yield s
    s.close()


def _batch(m, n):
    return [Incoming(m.hex, m.next_record(), 1.0) for _ in range(n)]


def test_outcomes_come_after_their_commit_in_batch_order(store):
    m = SoftMeter()
    store.enroll(m.pubkey)
    pipe = IngestPipeline(Ingestor(store))
    b1, b2, b3 = _batch(m, 3), _batch(m, 2), _batch(m, 2)
    assert pipe.submit(b1) == []  # checked, being stored: nothing acknowledged yet
    first = pipe.submit(b2)
    assert [[r.seq for r in o.stored] for o in first] == [[0, 1, 2]]
    assert store.count() >= 3  # what an outcome acknowledges is in the store
    assert first[0].acks == {m.meter_id: (2, rc.record_hash(b1[2].payload))}  # not seq 4
    rest = pipe.submit(b3) + pipe.close()
    assert [[r.seq for r in o.stored] for o in rest] == [[3, 4], [5, 6]]
    assert [s.record for s in store.readings(m.meter_id)] == [i.payload for i in b1 + b2 + b3]


def _one_batch_stored(store):
    """A meter, an ingestor and the first batch of 2 readings already through a pipeline."""
    m = SoftMeter()
    store.enroll(m.pubkey)
    ing = Ingestor(store)
    pipe = IngestPipeline(ing)
    ok = _batch(m, 2)
    pipe.submit(ok)
    assert len(pipe.close()) == 1
    return m, ing, ok


def test_a_failed_store_abandons_it_and_the_batch_checked_on_top_of_it(store, tmp_path):
    m, ing, ok = _one_batch_stored(store)
    pipe = IngestPipeline(ing)
    doomed = _batch(m, 2)
    assert pipe.submit(doomed) == []  # checked and written, its COMMIT under way
    doomed_too, on_top = _batch(m, 2), _batch(m, 2)
    # another writer (a second gateway on the same file) stored seq 5 and moved the head past it:
    # the store refuses the next batch, whose run (seq 4, 5) would follow the head at seq 4
    other = sqlite3.connect(tmp_path / "r.sqlite3")
    num = store.meter(m.meter_id).num
    end = rc.decode(doomed_too[1].payload)[0].end
    other.execute("INSERT INTO reading_runs VALUES (?,1,?,?,?,0)",
                  (row_id(num, 5), doomed_too[1].payload, end, end))  # fmt: skip
    other.execute("UPDATE meters SET next_seq=6 WHERE meter_id=?", (m.meter_id,))
    other.commit()
    other.close()
    results = pipe.submit(doomed_too)  # its INSERT fails: the batch before it still stands
    assert [type(r) for r in results] == [BatchOutcome, StoreFailed]
    assert ing.head(m.meter_id) == (3, rc.record_hash(doomed[1].payload))
    assert pipe.submit(on_top) == []  # gap (seq 6 without 4, 5): nothing stored
    assert pipe.close()[0].stored == []
    assert store.records(m.meter_id, 0, 4) == [(i, b.payload) for i, b in enumerate(ok + doomed)]
    assert store.count(m.meter_id) == 5  # seq 0..3 and the other writer's 5


def test_a_failed_commit_abandons_it_and_the_batch_checked_on_top_of_it(store):
    m, ing, ok = _one_batch_stored(store)
    real = store.commit_batch

    def failing_commit():  # the disk fails during the fsync of the next batch
        store._db.execute("ROLLBACK")
        raise StoreError("disk I/O error")

    store.commit_batch = failing_commit
    pipe = IngestPipeline(ing)
    assert pipe.submit(_batch(m, 2)) == []
    results = pipe.submit(_batch(m, 2))
    store.commit_batch = real
    assert [type(r) for r in results] == [StoreFailed, StoreFailed]
    assert pipe.close() == []
    assert ing.head(m.meter_id) == (1, rc.record_hash(ok[1].payload))  # both rolled back
    assert store.count(m.meter_id) == 2


def test_the_head_told_to_a_meter_never_covers_a_batch_still_being_stored(store):
    """`Ingestor.head` answers a meter's online status at any moment, also while a batch
    commits: it covered that batch's readings (an ack before COMMIT) until issue 15."""
    m = SoftMeter()
    store.enroll(m.pubkey)
    ing = Ingestor(store)
    pipe = IngestPipeline(ing)
    b1, b2 = _batch(m, 3), _batch(m, 2)
    assert pipe.submit(b1) == []  # checked, written, its COMMIT handed to the commit thread
    assert ing.head(m.meter_id) is None  # nothing acknowledged yet, whatever the thread did
    first = pipe.submit(b2)  # b1's outcome is final: b1 is stored, b2 is being stored
    assert [[r.seq for r in o.stored] for o in first] == [[0, 1, 2]]
    assert ing.head(m.meter_id) == (2, rc.record_hash(b1[2].payload))
    assert pipe.close()[0].acks == {m.meter_id: (4, rc.record_hash(b2[1].payload))}
    assert ing.head(m.meter_id) == (4, rc.record_hash(b2[1].payload))
