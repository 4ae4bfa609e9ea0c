"""Issue 15: a submission is answered by the block producer once its block is stored; no HTTP
worker waits for it, and a stuck block write still answers "timeout" at the deadline."""

import dataclasses
import json
import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from gateway.ledger import api, service, txs
from gateway.ledger import config as ledger_config
from gateway.ledger.chain import Receipt
from gateway.ledger.client import LedgerClient
from gateway.ledger.errors import LedgerUnavailable, TxRejected
from hil_tests.gateway.ledger.conftest import ALICE, OPERATOR, write_config


def _start(tmp_path, **settings):
    config = ledger_config.load(write_config(tmp_path / "node"))
    return service.start(dataclasses.replace(config, **settings))


def _enroll(chain: str, key) -> txs.Tx:
    return txs.make(
        "enroll_participant", chain, participant=key.pubkey, name="a", role="consumer"
    ).signed_by(OPERATOR)


def _wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_submit_waiting_for_its_block_holds_no_worker(tmp_path):
    running = _start(tmp_path, http_workers=1, commit_timeout_s=30.0)
    try:
        client = LedgerClient(running.url, timeout=60, retries=1)
        tx = _enroll(client.info()["chain"], ALICE)
        outcome: list[object] = []
        with running.node.chain.store._write_lock:  # the block cannot be stored yet
            other = LedgerClient(running.url, timeout=60, retries=1)  # a client per thread
            submitter = threading.Thread(target=lambda: outcome.append(_submit(other, tx)))
            submitter.start()
            _wait_until(lambda: running.node._calls)  # checked and queued
            # the only worker is free: a stored block is read while the submit waits for its
            # own (state reads would wait for the block being built: they take the node's lock)
            assert client.block(0)["header"]["height"] == 0
            assert submitter.is_alive() and not outcome
        submitter.join(timeout=60)
        assert outcome[0]["status"] == "committed" and outcome[0]["height"] == 1
    finally:
        running.stop()


def test_a_stuck_block_write_answers_timeout_and_a_resubmit_gets_the_receipt(tmp_path):
    running = _start(tmp_path, commit_timeout_s=1.0)
    try:
        client = LedgerClient(running.url, timeout=60, retries=1)
        tx = _enroll(client.info()["chain"], ALICE)
        with running.node.chain.store._write_lock:  # the block's SQL transaction cannot start
            outcome = _submit(client, tx)
            assert isinstance(outcome, LedgerUnavailable)  # 503 at the deadline
            assert "HTTP 503 not committed in time" in str(outcome)
        # the write goes through once unblocked; resubmitting is answered with its receipt
        _wait_until(lambda: running.node.chain.tip.height == 1)
        receipt = client.submit(tx)
        assert receipt["height"] == 1 and receipt["duplicate"] is True
    finally:
        running.stop()


def _submit(client: LedgerClient, tx: txs.Tx) -> object:
    try:
        return client.submit(tx)
    except (TxRejected, LedgerUnavailable) as exc:
        return exc


def test_many_clients_over_few_workers_each_get_their_own_receipts(tmp_path):
    running = _start(tmp_path, http_workers=2)
    try:
        client = LedgerClient(running.url, timeout=30, retries=1)
        chain = client.info()["chain"]
        client.submit(_enroll(chain, ALICE))
        client.submit(
            txs.make(
                "deposit", chain, account=ALICE.pubkey, amount_msat=10_000, reference="t"
            ).signed_by(OPERATOR)
        )
        answers: dict[int, list] = {}

        def submitter(n: int) -> None:
            mine = LedgerClient(running.url, timeout=30, retries=1)
            batch = [
                txs.make(
                    "withdraw", chain, account=ALICE.pubkey, amount_msat=1, nonce=f"{n}-{i}"
                ).signed_by(ALICE)
                for i in range(5)
            ]
            answers[n] = [(t.id, r) for t, r in zip(batch, mine.submit_many(batch), strict=True)]

        threads = [threading.Thread(target=submitter, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(answers) == list(range(12))
        for pairs in answers.values():
            for tx_id, result in pairs:
                assert result["status"] == "committed" and result["tx_id"] == tx_id
        assert client.balance(ALICE.pubkey) == 10_000 - 60
    finally:
        running.stop()


@given(
    tx_id=st.binary(min_size=32, max_size=32).map(bytes.hex),
    height=st.integers(0, 2**53),
    index=st.integers(0, 10**6),
    block_hash=st.binary(min_size=32, max_size=32).map(bytes.hex),
    duplicate=st.booleans(),
)
def test_a_receipts_answer_text_is_its_json(tx_id, height, index, block_hash, duplicate):
    receipt = Receipt(tx_id, height, index, block_hash, duplicate)
    assert receipt.json_text() == json.dumps(receipt.to_json())


def test_a_batch_answer_is_the_json_of_its_results():
    receipt = Receipt("ab" * 32, 7, 2, "cd" * 32)
    refused = TxRejected("insufficient_funds", 'holds "0" \\ msat', "ef" * 32)
    status, body = api.answer_batch([receipt, refused])
    assert status == 200
    assert json.loads(body) == {
        "results": [
            receipt.to_json(),
            {"error": {"reason": refused.reason, "detail": refused.detail, "tx_id": "ef" * 32}},
        ]
    }


def test_an_answer_that_fails_to_build_is_a_500_and_frees_the_connection(tmp_path, monkeypatch):
    # a deferred answer whose building raised was logged and dropped: its connection stayed
    # busy for good (busy connections are neither swept nor evicted)
    running = _start(tmp_path, http_workers=1)
    try:
        client = LedgerClient(running.url, timeout=30, retries=1)
        tx = _enroll(client.info()["chain"], ALICE)

        def broken(outcome):
            raise RuntimeError("a bug in answering")

        monkeypatch.setattr(api, "answer_one", broken)
        got = _submit(client, tx)
        assert isinstance(got, LedgerUnavailable) and "500" in str(got), got
        monkeypatch.undo()
        again = _submit(client, tx)  # the tx was stored: a resubmit gets its receipt
        assert isinstance(again, dict) and again["height"] == 1, again
    finally:
        running.stop()
