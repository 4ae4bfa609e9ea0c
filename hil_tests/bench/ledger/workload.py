"""The load: funded accounts, pre-signed and pre-encoded requests, C client threads submitting
them over keep-alive connections, then timed balance and proof reads."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.ledger import txs
from gateway.ledger.client import LedgerClient
from gateway.ledger.keys import SigningKey
from hil_tests.bench.ledger import proc_cpu
from hil_tests.bench.ledger.poster import LeanPoster
from hil_tests.gateway.ledger.conftest import OPERATOR

READ_EVERY_S = 0.01
Request = tuple[bytes, list[str]]  # an encoded body and the ids of its txs, in order


@dataclass
class Measured:
    """What one run measured; `figures.row` turns it into the printed figures."""

    batch: int
    elapsed_s: float
    latencies: list[float]  # per tx: the submit round trip of its request
    blocks: int
    ledger: proc_cpu.ProcCpu  # the ledger process(es) during the submits
    client: proc_cpu.ProcCpu  # this process (the client threads) during the submits
    etcd: proc_cpu.ProcCpu
    node: dict[str, float]  # GET /v1/stats differences, summed over the ledger processes
    balance: list[float] = field(default_factory=list)
    proof: list[float] = field(default_factory=list)
    balance_under_load: list[float] = field(default_factory=list)  # read while txs are submitted


def funded_accounts(setup: LedgerClient, chain: str, count: int) -> list[SigningKey]:
    accounts = [SigningKey() for _ in range(count)]
    for key in accounts:
        setup.submit(
            txs.make(
                "enroll_participant", chain, participant=key.pubkey, name="b", role="consumer"
            ).signed_by(OPERATOR)
        )
        setup.submit(
            txs.make(
                "deposit", chain, account=key.pubkey, amount_msat=10**12, reference=""
            ).signed_by(OPERATOR)
        )
    return accounts


def signed_requests(chain: str, key: SigningKey, count: int, batch: int) -> list[Request]:
    """`count` withdrawals by `key`, signed and encoded `batch` per request before the clock
    starts (clients are other machines in a deployment: their signing is not the ledger's)."""
    mine = [
        txs.make("withdraw", chain, nonce=i, account=key.pubkey, amount_msat=1).signed_by(key)
        for i in range(count)
    ]
    chunks = (mine[i : i + batch] for i in range(0, len(mine), batch))
    return [
        (
            json.dumps(
                chunk[0].to_json() if batch == 1 else {"txs": [t.to_json() for t in chunk]}
            ).encode(),
            [t.id for t in chunk],
        )
        for chunk in chunks
    ]


def node_stats(url: str) -> dict[str, Any]:
    return LedgerClient(url)._request("GET", "/v1/stats")


def run(
    urls: list[str],
    n: int,
    concurrency: int,
    reads: int,
    batch: int = 1,
    pids: tuple[list[int], list[int]] = ([], []),
) -> Measured:
    """`pids`: the ledger processes and the etcd members, whose CPU is counted."""
    setup = LedgerClient(urls)
    chain = setup.info()["chain"]
    accounts = funded_accounts(setup, chain, concurrency)
    per_worker = max(1, n // concurrency)
    requests = [signed_requests(chain, key, per_worker, batch) for key in accounts]
    path = "/v1/tx" if batch == 1 else "/v1/txs"
    latencies: list[float] = []
    tx_ids: list[str] = []
    failures: list[BaseException] = []
    start_height = setup.info()["height"]
    before_stats = [node_stats(u) for u in urls]

    def worker(w: int) -> None:
        conn = LeanPoster(urls[w % len(urls)])
        try:
            for body, ids in requests[w]:
                t0 = time.perf_counter()
                answer = conn.post(path, body)
                took = time.perf_counter() - t0
                got = [answer["tx_id"]] if batch == 1 else [r["tx_id"] for r in answer["results"]]
                if got != ids:
                    raise RuntimeError(f"answers {answer!r:.200} are not for txs {ids}")
                tx_ids.extend(got)
                latencies.extend([took] * len(got))
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    under_load: list[float] = []
    submitting = threading.Event()

    def reader() -> None:
        """One balance read every READ_EVERY_S while the submitters run (a wallet polling)."""
        client = LedgerClient(urls[0])
        i = 0
        while not submitting.wait(READ_EVERY_S):
            r0 = time.perf_counter()
            client.balance(accounts[i % len(accounts)].pubkey)
            under_load.append(time.perf_counter() - r0)
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    polling = threading.Thread(target=reader)
    ledger0, etcd0 = proc_cpu.sample(pids[0]), proc_cpu.sample(pids[1])
    client0 = proc_cpu.this_process()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    polling.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    submitting.set()
    polling.join()
    client = proc_cpu.this_process() - client0
    ledger, etcd = proc_cpu.sample(pids[0]) - ledger0, proc_cpu.sample(pids[1]) - etcd0
    if failures:
        raise failures[0]
    after_stats = [node_stats(u) for u in urls]
    node = {
        k: sum(a.get(k, 0) - b.get(k, 0) for a, b in zip(after_stats, before_stats, strict=True))
        for k in after_stats[0]
        if k != "mode"
    }
    measured = Measured(
        batch, elapsed, latencies, setup.info()["height"] - start_height, ledger, client, etcd, node
    )
    measured.balance_under_load = under_load
    reader = LedgerClient(urls[0])
    measured.balance = _timed(reads, lambda i: reader.balance(accounts[i % len(accounts)].pubkey))
    measured.proof = _timed(reads, lambda i: reader.tx_proof(tx_ids[i % len(tx_ids)]))
    return measured


def _timed(reads: int, call: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(reads):
        r0 = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - r0)
    return out
