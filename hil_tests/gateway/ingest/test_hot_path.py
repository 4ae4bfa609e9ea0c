"""The hot path of `Ingestor.check` (the next record of a known meter, checked inline) changes no
outcome: random batches of good, forged, corrupted, replayed, reordered and misrouted records
give the same stored readings, acks, resends, rejections and store as the full record-by-record
path (`Ingestor._one`) alone."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.pipeline import Incoming, Ingestor, Reason
from gateway.ingest.store import ReadingStore
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

METERS = [SoftMeter(bytes([i + 1]) * 32) for i in range(3)]
STRANGER = SoftMeter(b"\x09" * 32)  # never enrolled
RECORDS = {m.meter_id: [m.next_record() for _ in range(8)] for m in [*METERS, STRANGER]}
# the same meters' keys signing another history: same seqs, other prev_hash (a chain break)
FORKS = [SoftMeter(bytes([i + 1]) * 32) for i in range(len(METERS))]
FORK_RECORDS = [[m.next_record(wh=7) for _ in range(8)] for m in FORKS]

# what one incoming message is: (meter index, seq, how it is spoiled)
SPOIL = ["none", "none", "none", "forged", "flipped", "truncated", "topic", "stranger", "future",
         "fork", "ends_early", "version", "kind", "relay"]  # fmt: skip
MALFORMED = {"version": 0, "kind": 1, "relay": 97}  # a byte set to 3 (validly signed, malformed)
messages = st.lists(
    st.tuples(st.integers(0, len(METERS) - 1), st.integers(0, 5), st.sampled_from(SPOIL)),
    max_size=30,
)
FUTURE_METER = SoftMeter(b"\x0b" * 32, start=4_000_000_000)  # its clock runs years ahead
FUTURE_RECORDS = [FUTURE_METER.next_record() for _ in range(6)]


def _incoming(meter: int, seq: int, spoil: str) -> Incoming:
    m = STRANGER if spoil == "stranger" else METERS[meter]
    record = RECORDS[m.meter_id][seq]
    topic = m.hex
    if spoil == "forged":
        body = record[: rc.BODY_LEN]
        record = body + STRANGER.sign_body(body)
    elif spoil == "flipped":
        record = record[:40] + bytes([record[40] ^ 1]) + record[41:]
    elif spoil == "truncated":
        record = record[:-1]
    elif spoil == "topic":
        topic = METERS[(meter + 1) % len(METERS)].hex
    elif spoil == "fork":
        record = FORK_RECORDS[meter][seq]
    elif spoil == "ends_early" or spoil in MALFORMED:  # validly signed, not a valid record
        body = bytearray(record[: rc.BODY_LEN])
        if spoil == "ends_early":
            body[55:63] = body[59:63] + body[55:59]  # swapped: it ends before it starts
        else:
            body[MALFORMED[spoil]] = 3
        record = bytes(body) + m.sign_body(bytes(body))
    elif spoil == "future":
        record, topic = FUTURE_RECORDS[seq], FUTURE_METER.hex
    return Incoming(topic, record, 1.0)


def _outcomes(batches: list[list[Incoming]], hot_path: bool) -> list[tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        store = ReadingStore(Path(tmp) / "r.sqlite3")
        for m in [*METERS, FUTURE_METER]:
            store.enroll(m.pubkey)
        ing = Ingestor(store, clock=lambda: 0.0)
        if not hot_path:  # no topic matches the hot path's: every record takes the full path
            for state in ing._meters.values():
                state.hex = "not a topic"
        out = []
        for batch in batches:
            o = ing.ingest(batch)
            out.append(
                (
                    [(r.meter_id, r.seq) for r in o.stored],
                    o.counts,
                    {mid: rc.decode(rec)[0].seq for mid, rec in o.last.items()},
                    o.acks,
                    o.resends,
                    [(r.reason, r.meter_hex, r.seq) for r in o.rejections],
                )
            )
        stored = [s.record for m in METERS for s in store.readings(m.meter_id)]
        store.close()
        return [*out, stored]


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4))
def test_the_hot_path_gives_the_same_outcome_as_the_full_path(batches):
    incoming = [[_incoming(*m) for m in batch] for batch in batches]
    assert _outcomes(incoming, hot_path=True) == _outcomes(incoming, hot_path=False)


def test_a_record_sent_twice_in_one_batch_is_stored_once_and_acknowledged(tmp_path):
    store = ReadingStore(tmp_path / "r.sqlite3")
    m = METERS[0]
    store.enroll(m.pubkey)
    ing = Ingestor(store)
    first, second = (_incoming(0, s, "none") for s in (0, 1))
    out = ing.ingest([first, second, first])  # a redelivery of seq 0 within the batch
    assert [r.seq for r in out.stored] == [0, 1]
    assert [(r.reason, r.seq) for r in out.rejections] == [(Reason.REPLAY, 0)]
    assert out.acks == {m.meter_id: (1, rc.record_hash(second.payload))}
    assert out.counts == {m.meter_id: 2} and out.last == {m.meter_id: second.payload}
    assert store.count() == 2
    store.close()
