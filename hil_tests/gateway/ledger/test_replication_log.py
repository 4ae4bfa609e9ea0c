"""The replicated log's entries (pure): what a submit call writes, and what a replica reads back."""

import json

from gateway.ledger import log_entries, txs
from hil_tests.gateway.ledger.conftest import ALICE, OPERATOR

BASE = b"/sgrid/ledger/c/"


def _withdraws(n, size=0):
    return [
        txs.make(
            "withdraw", "ab" * 32, nonce="x" * size + str(i), account=ALICE.pubkey, amount_msat=1
        ).signed_by(ALICE)
        for i in range(n)
    ]


def test_one_entry_per_call_reads_back_as_the_same_transactions():
    batch = _withdraws(5)
    ((key, value, held),) = log_entries.log_entries(BASE, batch)
    assert key.startswith(BASE + b"txs/") and held == batch
    back = log_entries.read_entry(key[len(BASE) :].decode(), value)
    assert [(t.id, t.sigs) for t in back] == [(t.id, t.sigs) for t in batch]


def test_a_large_call_is_split_in_order_and_keys_differ(monkeypatch):
    monkeypatch.setattr(log_entries, "MAX_ENTRY_BYTES", 2000)
    batch = _withdraws(12, size=60)
    entries = log_entries.log_entries(BASE, batch)
    assert len(entries) > 1 and len({k for k, _, _ in entries}) == len(entries)
    assert all(len(v) <= 2000 for _, v, _ in entries)
    assert [t for _, _, held in entries for t in held] == batch


def test_unreadable_entries_become_transactions_every_replica_refuses_alike():
    good = txs.make("deposit", "ab" * 32, account=ALICE.pubkey, amount_msat=1, reference="")
    good = good.signed_by(OPERATOR)
    mixed = json.dumps([good.to_json(), {"body": 1}]).encode()
    read = log_entries.read_entry("txs/k", mixed)
    assert read[0].id == good.id and read[1].kind == "unreadable"
    assert log_entries.read_entry("txs/k", b"not json")[0].kind == "unreadable"
    assert log_entries.read_entry("txs/k", b"{}")[0].kind == "unreadable"
    # the former layout, one transaction per key
    (old,) = log_entries.read_entry(f"tx/{good.id}#1", good.wire_json.encode())
    assert old.id == good.id
