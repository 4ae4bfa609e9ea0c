"""Signatures checked ahead on another thread (`Ingestor.preverify`) change no outcome: the same
batches give the same stored readings, acks, resends and rejections as checking inline."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

METERS = [SoftMeter(bytes([i + 1]) * 32) for i in range(3)]
STRANGER = SoftMeter(b"\x09" * 32)  # never enrolled
RECORDS = {m.meter_id: [m.next_record() for _ in range(8)] for m in [*METERS, STRANGER]}

# what one incoming message is: (meter index, seq, how it is spoiled)
SPOIL = ["none", "none", "none", "forged", "flipped", "truncated", "topic", "stranger"]
messages = st.lists(
    st.tuples(st.integers(0, len(METERS) - 1), st.integers(0, 3), st.sampled_from(SPOIL)),
    max_size=30,
)


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
    return Incoming(topic, record, 1.0)


def _outcomes(batches: list[list[Incoming]], ahead: bool) -> list[tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        store = ReadingStore(Path(tmp) / "r.sqlite3")
        for m in METERS:
            store.enroll(m.pubkey)
        ing = Ingestor(store, clock=lambda: 0.0)
        out = []
        for batch in batches:
            checked = ing.check(batch, ing.preverify(batch) if ahead else None)
            ing.store_checked(checked)
            o = checked.outcome
            out.append(
                (
                    [(r.meter_id, r.seq) for r in o.stored],
                    o.acks,
                    o.resends,
                    [(r.reason, r.meter_hex, r.seq) for r in o.rejections],
                )
            )
        stored = [s.record for m in METERS for s in store.readings(m.meter_id)]
        store.close()
        return [*out, stored]


@settings(max_examples=25, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4))
def test_checking_signatures_ahead_gives_the_same_outcome_as_checking_inline(batches):
    incoming = [[_incoming(*m) for m in batch] for batch in batches]
    assert _outcomes(incoming, ahead=True) == _outcomes(incoming, ahead=False)


def test_preverify_answers_only_for_well_formed_records_of_known_meters(tmp_path):
    store = ReadingStore(tmp_path / "r.sqlite3")
    store.enroll(METERS[0].pubkey)
    ing = Ingestor(store)
    batch = [
        _incoming(0, 0, "none"),
        _incoming(0, 1, "forged"),
        _incoming(0, 2, "truncated"),
        _incoming(0, 3, "stranger"),
    ]
    assert ing.preverify(batch) == [True, False, None, None]
    store.close()
