"""Replicated mode on a real three-member etcd cluster: identical blocks, faults lose nothing."""

import signal
import threading
import time

import pytest
from click.testing import CliRunner

from gateway.ledger import txs
from gateway.ledger.cli import ledger as ledger_cli
from gateway.ledger.client import LedgerClient
from gateway.ledger.errors import LedgerError, TxRejected
from hil_tests.gateway.ledger import funding
from hil_tests.gateway.ledger import supersede_kit as kit
from hil_tests.gateway.ledger.conftest import (
    ALICE,
    BOB,
    OPERATOR,
    free_port,
    start_process,
    write_config,
)
from hil_tests.gateway.ledger.etcd_cluster import ETCD, start_cluster

pytestmark = pytest.mark.needs("etcd (the Debian package etcd-server)", ETCD is not None)
DEPOSIT = 1_000_000


@pytest.fixture
def cluster(tmp_path):
    c = start_cluster(tmp_path / "etcd")
    yield c
    c.stop()


def _replica_configs(tmp_path, cluster, n):
    endpoints = ",".join(f'"{e}"' for e in cluster.endpoints)
    repl = f"[replication]\netcd = [{endpoints}]\ncut_interval_ms = 10\n"
    return [
        write_config(tmp_path / f"replica{i}", port=free_port(), replication=repl) for i in range(n)
    ]


def _wait_converged(clients, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        infos = [c.info() for c in clients]
        if len({(i["height"], i["tip_hash"]) for i in infos}) == 1:
            return infos[0]
        assert time.monotonic() < deadline, f"replicas did not converge: {infos}"
        time.sleep(0.1)


def test_replicas_order_concurrent_double_spends_identically_and_a_late_one_catches_up(
    tmp_path, cluster
):
    procs = [start_process(c) for c in _replica_configs(tmp_path, cluster, 2)]
    try:
        clients = [LedgerClient(url) for _, url in procs]
        chain = clients[0].info()["chain"]
        enroll, deposit = funding.account(chain, ALICE, 100, name="a")
        clients[0].submit(enroll)
        clients[1].submit(deposit)
        outcomes = []

        def spend(i):  # two replicas race to spend the same 100 msat
            tx = txs.make(
                "withdraw", chain, nonce=i, account=ALICE.pubkey, amount_msat=100
            ).signed_by(ALICE)
            try:
                outcomes.append(clients[i % 2].submit(tx)["status"])
            except TxRejected as exc:
                outcomes.append(exc.reason)

        threads = [threading.Thread(target=spend, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["committed"] + ["insufficient_funds"] * 3
        # one tx sent at once through both replicas: in the log up to 4 times, applied once
        twice = txs.make(
            "deposit", chain, account=ALICE.pubkey, amount_msat=7, reference="twice"
        ).signed_by(OPERATOR)
        answers: list[dict] = []
        senders = [
            threading.Thread(target=lambda i=i: answers.append(clients[i % 2].submit(twice)))
            for i in range(4)
        ]
        for t in senders:
            t.start()
        for t in senders:
            t.join(30)
        assert len(answers) == 4
        assert len({(a["height"], a["index"]) for a in answers}) == 1
        assert [a["duplicate"] for a in answers].count(False) == 1
        _wait_converged(clients)
        assert [c.balance(ALICE.pubkey) for c in clients] == [7, 7]
        late = start_process(_replica_configs(tmp_path / "late", cluster, 1)[0])  # empty database
        procs.append(late)
        _wait_converged([*clients, LedgerClient(late[1])])
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()


def test_killing_the_etcd_leader_and_a_replica_loses_nothing(tmp_path, cluster):
    configs = _replica_configs(tmp_path, cluster, 2)
    started = [start_process(c) for c in configs]  # fixed ports: a restart keeps its URL
    procs = [proc for proc, _ in started]
    urls = [url for _, url in started]
    try:
        setup = LedgerClient(urls)
        chain = setup.info()["chain"]
        for tx in funding.account(chain, ALICE, DEPOSIT, name="a"):
            setup.submit(tx)
        acked: list[str] = []
        errors: list[str] = []
        done = threading.Event()

        def stream(worker: int) -> None:
            # each worker prefers one replica and fails over to the other; resubmits are idempotent
            client = LedgerClient(urls[worker:] + urls[:worker], timeout=10, retries=20)
            i = 0
            while not done.is_set():
                tx = txs.make(
                    "withdraw", chain, nonce=f"{worker}-{i}", account=ALICE.pubkey, amount_msat=1
                ).signed_by(ALICE)
                try:
                    acked.append(client.submit(tx)["tx_id"])
                except LedgerError as exc:
                    errors.append(repr(exc))
                i += 1

        workers = [threading.Thread(target=stream, args=(w,)) for w in range(2)]
        for w in workers:
            w.start()

        def wait_acks(n):
            deadline = time.monotonic() + 60
            while len(acked) < n:
                assert time.monotonic() < deadline, f"stalled at {len(acked)} acks: {errors[-3:]}"
                time.sleep(0.02)

        wait_acks(20)
        leader = cluster.leader_index()  # the hardest member to lose: forces an election
        cluster.kill(leader)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        wait_acks(len(acked) + 20)  # the cluster and the other replica carry on
        cluster.restart(leader)
        procs[0] = start_process(configs[0])[0]
        wait_acks(len(acked) + 20)
        done.set()
        for w in workers:
            w.join(60)
        assert not errors, errors[:3]
        clients = [LedgerClient(u) for u in urls]
        info = _wait_converged(clients)
        for height in range(info["height"] + 1):
            assert clients[0].block(height)["hash"] == clients[1].block(height)["hash"]
        for tx_id in acked:
            assert clients[0].tx(tx_id)["tx_id"] == tx_id
        assert clients[0].balance(ALICE.pubkey) == DEPOSIT - len(acked)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    for config in configs:
        result = CliRunner().invoke(ledger_cli, ["verify", "--config", str(config)])
        assert result.exit_code == 0, result.output


def test_a_refused_transaction_can_succeed_when_resubmitted_later(tmp_path, cluster):
    ((proc, url),) = [start_process(c) for c in _replica_configs(tmp_path, cluster, 1)]
    try:
        client = LedgerClient(url)
        chain = client.info()["chain"]
        client.submit(funding.enroll(chain, ALICE, name="a"))
        withdraw = txs.make("withdraw", chain, account=ALICE.pubkey, amount_msat=50).signed_by(
            ALICE
        )
        for _ in range(2):
            with pytest.raises(TxRejected) as err:
                client.submit(withdraw)
            assert err.value.reason == "insufficient_funds"
        client.submit(funding.deposit(chain, ALICE, 80))
        assert client.submit(withdraw)["status"] == "committed"
        assert client.submit(withdraw)["duplicate"]
        assert client.balance(ALICE.pubkey) == 30
    finally:
        proc.kill()
        proc.wait()


def test_replicas_agree_on_the_penalty_of_a_revoked_state_its_holder_superseded(tmp_path, cluster):
    """The record of published states is rebuilt by every replica from the same log: a penalty
    that only the record allows commits once and every replica, a late one too, shows it."""
    procs = [start_process(c) for c in _replica_configs(tmp_path, cluster, 2)]
    try:
        clients = [LedgerClient(url) for _, url in procs]
        chain = clients[0].info()["chain"]
        # a window open for the whole test however loaded the machine
        setup, fund = kit.funded_txs(chain, dispute_blocks=1000)
        for i, tx in enumerate(setup):  # enrolled through one replica, credited through the other
            clients[i % 2].submit(tx)
        clients[0].submit(fund)
        # her revoked 3, then at once her latest 5 through the other replica
        revoked = kit.state(fund.id, 3, ALICE, 9_000, chain=chain)
        clients[0].submit(kit.force_close(revoked, ALICE, chain=chain))
        latest = kit.state(fund.id, 5, ALICE, 5_000, chain=chain)
        clients[1].submit(kit.supersede(latest, ALICE, chain=chain))
        penalty = kit.penalty(fund.id, "b", kit.secret(ALICE, 3), chain=chain)
        clients[0].submit(penalty)
        assert clients[1].submit(penalty)["duplicate"]
        _wait_converged(clients)
        views = [c.channel(fund.id) for c in clients]
        assert views[0] == views[1]
        assert views[0]["status"] == "penalized" and views[0]["state"]["number"] == 5
        assert [p["number"] for p in views[0]["published"]] == [3, 5]
        assert [c.balance(BOB.pubkey) for c in clients] == [16_000, 16_000]
        late = start_process(_replica_configs(tmp_path / "late", cluster, 1)[0])  # empty database
        procs.append(late)
        _wait_converged([*clients, LedgerClient(late[1])])
        assert LedgerClient(late[1]).channel(fund.id) == views[0]
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()
