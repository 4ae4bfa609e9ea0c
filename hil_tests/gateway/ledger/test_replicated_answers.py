"""A replica answers a submission once the cut holding it is applied here, from the applier:
no HTTP worker waits for it, and a cut stuck in its block write still answers "timeout"."""

import dataclasses
import threading
import time

import pytest

from gateway.ledger import config as ledger_config
from gateway.ledger import service, txs
from gateway.ledger.client import LedgerClient
from gateway.ledger.errors import LedgerUnavailable, TxRejected
from hil_tests.gateway.ledger.conftest import ALICE, OPERATOR, write_config
from hil_tests.gateway.ledger.etcd_cluster import ETCD, start_cluster

pytestmark = pytest.mark.needs("etcd (the Debian package etcd-server)", ETCD is not None)


@pytest.fixture
def cluster(tmp_path):
    c = start_cluster(tmp_path / "etcd")
    yield c
    c.stop()


def _start(tmp_path, cluster, **settings):
    endpoints = ",".join(f'"{e}"' for e in cluster.endpoints)
    repl = f"[replication]\netcd = [{endpoints}]\ncut_interval_ms = 10\n"
    config = ledger_config.load(write_config(tmp_path / "replica", replication=repl))
    return service.start(dataclasses.replace(config, **settings))


def _enroll(chain: str) -> txs.Tx:
    return txs.make(
        "enroll_participant", chain, participant=ALICE.pubkey, name="a", role="consumer"
    ).signed_by(OPERATOR)


def _submit(client: LedgerClient, tx: txs.Tx) -> object:
    try:
        return client.submit(tx)
    except (TxRejected, LedgerUnavailable) as exc:
        return exc


def _wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_submit_waiting_for_its_cut_holds_no_worker(tmp_path, cluster):
    running = _start(tmp_path, cluster, http_workers=1, commit_timeout_s=60.0)
    try:
        client = LedgerClient(running.url, timeout=20, retries=1)
        tx = _enroll(client.info()["chain"])
        outcome: list[object] = []
        with running.node.chain.store._write_lock:  # the cut's block cannot be stored yet
            other = LedgerClient(running.url, timeout=90, retries=1)
            submitter = threading.Thread(target=lambda: outcome.append(_submit(other, tx)))
            submitter.start()
            _wait_until(lambda: running.node._waiting)  # written to the log, awaiting its cut
            # the only worker is free (it used to wait for the cut): a block is read meanwhile
            assert client.block(0)["header"]["height"] == 0
            assert submitter.is_alive() and not outcome
        submitter.join(timeout=60)
        assert outcome[0]["status"] == "committed" and outcome[0]["height"] == 1
        assert not running.node._waiting and not running.node._awaited
    finally:
        running.stop()


def test_a_cut_stuck_in_its_write_answers_timeout_and_a_resubmit_gets_the_receipt(
    tmp_path, cluster
):
    running = _start(tmp_path, cluster, commit_timeout_s=1.0)
    try:
        client = LedgerClient(running.url, timeout=60, retries=1)
        tx = _enroll(client.info()["chain"])
        with running.node.chain.store._write_lock:
            outcome = _submit(client, tx)
            assert isinstance(outcome, LedgerUnavailable)
            assert "not committed in time" in str(outcome)
        _wait_until(lambda: running.node.chain.tip.height == 1)
        receipt = client.submit(tx)
        assert receipt["height"] == 1 and receipt["duplicate"] is True
        assert not running.node._waiting and not running.node._decided
    finally:
        running.stop()
