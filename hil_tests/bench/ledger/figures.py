"""The figures of one benchmark row, from what the load measured (pure)."""

from __future__ import annotations

import statistics

from gateway.ledger import thread_cpu
from hil_tests.bench.ledger.workload import Measured

STEPS = ("check", "build", "answer")  # the embedded node's CPU seconds by step (GET /v1/stats)
# the ledger's threads by role (GET /v1/stats, gateway.ledger.thread_cpu) -> column
THREADS = {
    "ledger-http": "selector",
    "ledger-http-worker": "http workers",
    "ledger-producer": "producer",
    "wal-checkpoint": "checkpoints",
    "ledger-etcd-watch": "etcd threads",
    "ledger-etcd-cut": "etcd threads",
    "ledger-etcd-write": "etcd threads",
}
THREAD_COLUMNS = tuple(dict.fromkeys([*THREADS.values(), "other"]))


def pct(samples: list[float], p: float) -> float:
    """The p-th percentile of `samples` (seconds), in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def row(m: Measured, ceiling: float) -> dict[str, float]:
    """Throughput, latencies and where the time goes, per tx and per block.

    `ceiling`: signature checks per second on one core measured around the row, so
    `verify_us` (1e6 / ceiling) is what the check of one signature costs there."""
    count = max(1, len(m.latencies))
    node = m.node
    built = max(1.0, node.get("blocks", 0))  # summed over replicas (each builds every block)
    producer = node.get("wait_s", 0) + sum(
        node.get(k, 0) for k in ("apply_s", "seal_s", "write_s", "commit_s", "answer_s")
    )
    split = {  # CPU per tx by step (embedded node; -1 where the node does not count it)
        f"{k}_cpu_us": node[f"{k}_cpu_s"] / count * 1e6 if f"{k}_cpu_s" in node else -1.0
        for k in STEPS
    }
    counted = sum(v for v in split.values() if v > 0)
    server_us = m.ledger.cpu_s / count * 1e6
    verify_us = 1e6 / ceiling
    tps = len(m.latencies) / m.elapsed_s
    by_thread = {f"thread_{col}_us": 0.0 for col in THREAD_COLUMNS}
    for key, seconds in node.items():
        if key.startswith(thread_cpu.PREFIX):
            col = THREADS.get(key[len(thread_cpu.PREFIX) :], "other")
            by_thread[f"thread_{col}_us"] += seconds / count * 1e6
    return {
        **split,
        **by_thread,
        "rest_cpu_us": server_us - counted if counted else -1.0,
        "verify_us": verify_us,
        "beyond_verify_us": server_us - verify_us,
        "server_us": server_us,
        "server_sys_us": m.ledger.sys_s / count * 1e6,
        "client_us": m.client.cpu_s / count * 1e6,
        "etcd_us": m.etcd.cpu_s / count * 1e6,
        "switches": m.ledger.switches / count,
        "ledger_cores": m.ledger.cpu_s / m.elapsed_s,
        "client_cores": m.client.cpu_s / m.elapsed_s,
        "apply_ms": node.get("apply_s", 0) / built * 1e3,
        "seal_ms": node.get("seal_s", 0) / built * 1e3,
        "write_ms": node.get("write_s", 0) / built * 1e3,
        "commit_ms": node.get("commit_s", 0) / built * 1e3,
        "check_us": node.get("check_s", 0) / count * 1e6,
        "producer_idle": node["wait_s"] / producer if producer and "wait_s" in node else -1.0,
        "etcd_txns": node.get("etcd_txns", 0),
        "batch": m.batch,
        "txs": len(m.latencies),
        "tps": tps,
        "ceiling": ceiling,
        "ceiling_share": tps / ceiling,
        "blocks": m.blocks,
        "txs_per_block": len(m.latencies) / max(1, m.blocks),
        "submit_p50_ms": pct(m.latencies, 50),
        "submit_p99_ms": pct(m.latencies, 99),
        "load_balance_p50_ms": pct(m.balance_under_load, 50) if m.balance_under_load else 0.0,
        "load_balance_p99_ms": pct(m.balance_under_load, 99) if m.balance_under_load else 0.0,
        "balance_p50_ms": pct(m.balance, 50),
        "balance_p99_ms": pct(m.balance, 99),
        "proof_p50_ms": pct(m.proof, 50),
        "proof_p99_ms": pct(m.proof, 99),
        "read_mean_ms": statistics.mean(m.balance + m.proof) * 1000 if m.balance else 0.0,
    }
