"""Anchoring batches of stored readings on the real ledger: durable before submission, retried
until committed, each reading's proof verifiable offline."""

from __future__ import annotations

import time

import pytest

from gateway.grid import anchoring
from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from gateway.ledger import config as ledger_config
from gateway.ledger import proofs, service, txs
from gateway.ledger.client import LedgerClient
from gateway.ledger.errors import LedgerUnavailable
from hil_tests.gateway.ledger.conftest import GATEWAY, OPERATOR, Ledger, write_config
from hil_tests.gateway.soft_meter import SoftMeter


@pytest.fixture
def ledger(tmp_path):
    path = write_config(tmp_path / "ledger")
    running = service.start(ledger_config.load(path))
    client = LedgerClient(running.url)
    yield Ledger(client, client.info()["chain"], running, path)
    running.stop()


@pytest.fixture
def store(tmp_path):
    s = ReadingStore(tmp_path / "readings.sqlite3")
    yield s
    s.close()


def _ingest(store: ReadingStore, meter: SoftMeter, n: int) -> None:
    ing = Ingestor(store)
    ing.ingest([Incoming(meter.meter_id.hex(), meter.next_record(), time.time()) for _ in range(n)])


def test_batches_are_cut_once_retried_until_committed_and_prove_each_reading(
    ledger, store, tmp_path
):
    meters = [SoftMeter(bytes([20 + i] * 32)) for i in range(3)]
    ledger.enroll(GATEWAY, role="gateway")
    for m in meters:
        store.enroll(m.pubkey)
        _ingest(store, m, 5)
    for m in meters[:2]:  # the third meter is not on the ledger: an anchor naming it is refused
        ledger.submit(txs.make("enroll_meter", ledger.chain, meter=m.pubkey.hex(),
                               owner=GATEWAY.pubkey).signed_by(OPERATOR))  # fmt: skip
    known = {m.meter_id for m in meters[:2]}
    book = anchoring.AnchorBook(tmp_path / "anchors.sqlite3")
    ranges = anchoring.next_batch(store, book, known.__contains__, max_batch=8)
    first, second = sorted(known)
    assert ranges == [(first, 0, 4), (second, 0, 2)]  # at most 8 records, meters in id order
    tx, count = anchoring.make_anchor(store, ranges, GATEWAY, ledger.chain, "site-1")
    book.add(tx, count, ranges, time.time())  # on disk before any submission
    with pytest.raises(LedgerUnavailable):
        LedgerClient("http://127.0.0.1:9", retries=1).submit(tx)  # the ledger is away
    assert [b.batch_id for b in book.pending()] == [1]
    assert anchoring.next_batch(store, book, known.__contains__, 8) == [(second, 3, 4)]
    for _ in range(2):  # retried: the same tx, committed once
        receipt = ledger.client.submit(book.pending()[0].tx if book.pending() else tx)
        book.committed(1, receipt["height"])
    assert book.pending() == [] and book.stats() == {"batches": 1, "committed": 1, "records": 8}
    batch = book.containing(meters[0].meter_id, 2)
    assert batch is not None and book.containing(meters[2].meter_id, 0) is None
    tx_proof = ledger.client.tx_proof(batch.tx_id)
    validator = ledger.client.info()["validator"]
    for meter_id, first, last in batch.ranges:
        for seq in range(first, last + 1):
            proof = anchoring.proof_for(store, batch, meter_id, seq, tx_proof)
            summary = proofs.verify_reading_proof(proof, validator)
            assert (summary["meter_id"], summary["seq"]) == (meter_id.hex(), seq)
    book.close()
