"""Every replica clears a seed-003 listing identically (real etcd cluster, two ledger replicas)."""

import threading

import pytest

from gateway.ledger import keys, txs
from gateway.ledger.client import LedgerClient
from hil_tests.gateway.ledger.conftest import OPERATOR, free_port, start_process, write_config
from hil_tests.gateway.ledger.etcd_cluster import ETCD, start_cluster

pytestmark = pytest.mark.needs("etcd (the Debian package etcd-server)", ETCD is not None)
TRADERS = [keys.SigningKey(bytes([40 + i] * 32)) for i in range(8)]
START = 1774098000


def _wait_converged(clients, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while len({(i["height"], i["tip_hash"]) for i in (c.info() for c in clients)}) != 1:
        assert time.monotonic() < deadline, "replicas did not converge"
        time.sleep(0.1)


def test_racing_offers_through_two_replicas_clear_identically_on_both(tmp_path):
    cluster = start_cluster(tmp_path / "etcd")
    endpoints = ",".join(f'"{e}"' for e in cluster.endpoints)
    repl = f"[replication]\netcd = [{endpoints}]\ncut_interval_ms = 10\n"
    configs = [
        write_config(tmp_path / f"r{i}", port=free_port(), replication=repl) for i in range(2)
    ]
    procs = [start_process(c) for c in configs]
    try:
        clients = [LedgerClient(url) for _, url in procs]
        chain = clients[0].info()["chain"]
        for i, key in enumerate(TRADERS):
            clients[i % 2].submit(
                txs.make(
                    "enroll_participant",
                    chain,
                    participant=key.pubkey,
                    name=f"t{i}",
                    role="prosumer",
                ).signed_by(OPERATOR)
            )
        clients[0].submit(
            txs.make(
                "accept_offer_broadcast", chain, listing_id="L", start=START, end=START + 3600
            ).signed_by(OPERATOR)
        )

        def trade(i):  # sellers and buyers race through both replicas at once
            key = TRADERS[i]
            if i % 2:
                tx = txs.make(
                    "buy_offer",
                    chain,
                    listing_id="L",
                    buyer=key.pubkey,
                    wh=700 + 10 * i,
                    bid_msat_per_kwh=100_000 + 7_000 * i,
                )
            else:
                tx = txs.make(
                    "pv_offer",
                    chain,
                    listing_id="L",
                    seller=key.pubkey,
                    wh=500 + 30 * i,
                    reserve_msat_per_kwh=90_000 + 5_000 * i,
                )
            clients[(i // 2) % 2].submit(tx.signed_by(key))

        threads = [threading.Thread(target=trade, args=(i,)) for i in range(len(TRADERS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        clients[1].submit(txs.make("close_bidding", chain, listing_id="L").signed_by(OPERATOR))
        _wait_converged(clients)
        listings = [c.listing("L") for c in clients]
        assert listings[0] == listings[1]
        assert listings[0]["state"] == "AUCTION_CLOSED" and listings[0]["trades"]
        assert len(listings[0]["offers"]) + len(listings[0]["bids"]) == len(TRADERS)
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()
        cluster.stop()
