import coincurve
import ecdsa
import pytest
from ecdsa.util import sigdecode_string

from gateway.ingest.pipeline import Incoming, Ingestor, Reason
from gateway.ingest.store import ReadingStore
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc


@pytest.fixture
def store(tmp_path):
    s = ReadingStore(tmp_path / "r.sqlite3")
    yield s
    s.close()


def _in(meter, record):
    return Incoming(meter.hex, record, 1.0)


def test_soft_meter_signatures_verify_with_python_ecdsa():
    m = SoftMeter()
    record = m.next_record()
    vk = ecdsa.VerifyingKey.from_string(m.pubkey, curve=ecdsa.SECP256k1)
    body, sig = record[: rc.BODY_LEN], record[rc.BODY_LEN :]
    assert vk.verify_digest(sig, rc.digest(body), sigdecode=sigdecode_string)
    s = int.from_bytes(sig[32:], "big")
    assert s <= ecdsa.SECP256k1.order // 2


def test_chained_readings_are_stored_and_acknowledged(store):
    m = SoftMeter()
    store.enroll(m.pubkey, "house-1")
    ing = Ingestor(store)
    records = [m.next_record() for _ in range(5)]
    out = ing.ingest([_in(m, r) for r in records])
    assert out.rejections == []
    assert [r.seq for r in out.stored] == [0, 1, 2, 3, 4]
    assert out.acks == {m.meter_id: (4, rc.record_hash(records[4]))}
    assert [s.record for s in store.readings(m.meter_id)] == records


def test_unknown_meter_is_rejected_and_nothing_stored(store):
    m = SoftMeter()
    out = Ingestor(store).ingest([_in(m, m.next_record())])
    assert [r.reason for r in out.rejections] == [Reason.UNKNOWN_METER]
    assert store.count() == 0 and out.acks == {}


def test_forged_signature_is_rejected(store):
    m, forger = SoftMeter(), SoftMeter()
    store.enroll(m.pubkey)
    body = rc.encode_body(rc.decode(m.next_record())[0])
    forged = body + forger.sign_body(body)
    out = Ingestor(store).ingest([_in(m, forged)])
    assert [r.reason for r in out.rejections] == [Reason.BAD_SIGNATURE]
    assert store.count() == 0


def test_high_s_twin_of_a_valid_signature_is_rejected(store):
    m = SoftMeter()
    store.enroll(m.pubkey)
    record = m.next_record()
    n = coincurve.utils.GROUP_ORDER_INT
    s = int.from_bytes(record[135:], "big")
    twin = record[:135] + (n - s).to_bytes(32, "big")
    out = Ingestor(store).ingest([_in(m, twin)])
    assert [r.reason for r in out.rejections] == [Reason.BAD_SIGNATURE]


def test_replay_is_dropped_idempotently_and_reacknowledged(store):
    m = SoftMeter()
    store.enroll(m.pubkey)
    ing = Ingestor(store)
    r0, r1 = m.next_record(), m.next_record()
    ing.ingest([_in(m, r0), _in(m, r1)])
    out = ing.ingest([_in(m, r0), _in(m, r1), _in(m, r1)])
    assert [r.reason for r in out.rejections] == [Reason.REPLAY] * 3
    assert out.acks == {m.meter_id: (1, rc.record_hash(r1))}
    assert store.count() == 2


def test_gap_requests_resend_once_per_cooldown(store):
    clock = [100.0]
    m = SoftMeter()
    store.enroll(m.pubkey)
    ing = Ingestor(store, resend_cooldown_s=5, clock=lambda: clock[0])
    records = [m.next_record() for _ in range(4)]
    out = ing.ingest([_in(m, records[0]), _in(m, records[2]), _in(m, records[3])])
    assert [r.reason for r in out.rejections] == [Reason.GAP, Reason.GAP]
    assert out.resends == {m.meter_id: 1}
    assert ing.ingest([_in(m, records[3])]).resends == {}
    clock[0] += 5
    assert ing.ingest([_in(m, records[3])]).resends == {m.meter_id: 1}
    out = ing.ingest([_in(m, r) for r in records[1:]])
    assert [r.seq for r in out.stored] == [1, 2, 3]


def test_conflicting_record_for_a_stored_seq_is_rejected(store):
    m = SoftMeter()
    store.enroll(m.pubkey)
    ing = Ingestor(store)
    ing.ingest([_in(m, m.next_record())])
    reading = rc.decode(m.journal[0])[0]
    reading.import_wh += 1
    out = ing.ingest([_in(m, m.make(reading))])
    assert [r.reason for r in out.rejections] == [Reason.CONFLICT]
    assert [s.record for s in store.readings(m.meter_id)] == m.journal[:1]


def test_broken_chain_is_rejected(store):
    m = SoftMeter()
    store.enroll(m.pubkey)
    ing = Ingestor(store)
    ing.ingest([_in(m, m.next_record())])
    m.prev_hash = b"\x11" * 32
    out = ing.ingest([_in(m, m.next_record())])
    assert [r.reason for r in out.rejections] == [Reason.CHAIN_BREAK]
    assert store.count() == 1


def test_record_on_another_meters_topic_is_rejected(store):
    a, b = SoftMeter(), SoftMeter()
    store.enroll(a.pubkey)
    store.enroll(b.pubkey)
    out = Ingestor(store).ingest([Incoming(b.hex, a.next_record(), 1.0)])
    assert [r.reason for r in out.rejections] == [Reason.TOPIC_MISMATCH]


def test_oversized_and_malformed_payloads_are_rejected(store):
    m = SoftMeter()
    store.enroll(m.pubkey)
    out = Ingestor(store).ingest([_in(m, b"x" * 168), _in(m, b"x" * 20), _in(m, b"")])
    assert [r.reason for r in out.rejections] == [
        Reason.OVERSIZED,
        Reason.MALFORMED,
        Reason.MALFORMED,
    ]


def test_meter_enrolled_after_start_is_picked_up(store):
    ing = Ingestor(store)
    m = SoftMeter()
    store.enroll(m.pubkey)
    assert [r.seq for r in ing.ingest([_in(m, m.next_record())]).stored] == [0]


def test_anchor_enrollment_accepts_a_mid_stream_start(store):
    m = SoftMeter()
    for _ in range(3):
        m.next_record()
    store.enroll(m.pubkey, anchor_seq=3)
    ing = Ingestor(store)
    out = ing.ingest([_in(m, m.journal[1]), _in(m, m.next_record()), _in(m, m.next_record())])
    assert [r.reason for r in out.rejections] == [Reason.REPLAY]
    assert [r.seq for r in out.stored] == [3, 4]


def test_heads_survive_reopening_the_store(tmp_path):
    m = SoftMeter()
    s = ReadingStore(tmp_path / "r.sqlite3")
    s.enroll(m.pubkey)
    Ingestor(s).ingest([_in(m, m.next_record()) for _ in range(3)])
    s.close()
    s = ReadingStore(tmp_path / "r.sqlite3")
    out = Ingestor(s).ingest([_in(m, m.next_record())])
    assert [r.seq for r in out.stored] == [3]
    s.close()


def test_a_store_error_mid_batch_rolls_the_chain_head_back_so_nothing_unstored_is_acked(store):
    import sqlite3

    m = SoftMeter()
    store.enroll(m.pubkey)
    ing = Ingestor(store)
    first = [m.next_record() for _ in range(2)]
    ing.ingest([_in(m, r) for r in first])
    later = [m.next_record() for _ in range(2)]
    real = store.record_at

    def failing(mid, seq):  # the database fails while the batch is being checked
        raise sqlite3.OperationalError("disk I/O error")

    store.record_at = failing
    with pytest.raises(sqlite3.OperationalError):
        # a duplicate of seq 1 makes the pipeline look the stored record up, after seq 2 advanced
        ing.ingest([_in(m, later[0]), _in(m, first[1])])
    store.record_at = real
    assert ing.head(m.meter_id) == (1, rc.record_hash(first[1]))  # not seq 2: it was never stored
    out = ing.ingest([_in(m, r) for r in later])
    assert [r.seq for r in out.stored] == [2, 3]
