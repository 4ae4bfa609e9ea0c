"""The processes under test: `sgrid ledger run` alone (embedded) or two replicas on a
three-member etcd cluster (replicated), each driven by the load and stopped after it."""

from __future__ import annotations

from pathlib import Path

from hil_tests.bench.ledger import workload
from hil_tests.bench.ledger.workload import Measured
from hil_tests.gateway.ledger.conftest import free_port, start_process, write_config
from hil_tests.gateway.ledger.etcd_cluster import start_cluster


def _with_workers(config: Path, workers: int) -> Path:
    if workers:
        text = config.read_text().replace("[ledger]\n", f"[ledger]\nhttp_workers = {workers}\n")
        config.write_text(text)
    return config


def run_embedded(
    root: Path, n: int, concurrency: int, reads: int, batch: int, workers: int = 0
) -> Measured:
    config = write_config(root / f"embedded-{batch}", port=free_port())
    proc, url = start_process(_with_workers(config, workers))
    try:
        return workload.run([url], n, concurrency, reads, batch, ([proc.pid], []))
    finally:
        proc.kill()
        proc.wait()


def run_replicated(
    root: Path, n: int, concurrency: int, reads: int, batch: int, workers: int = 0
) -> Measured:
    root = root / f"replicated-{batch}"
    cluster = start_cluster(root / "etcd")
    endpoints = ",".join(f'"{e}"' for e in cluster.endpoints)
    repl = f"[replication]\netcd = [{endpoints}]\ncut_interval_ms = 5\n"
    procs = []
    try:
        for i in range(2):
            config = write_config(root / f"replica{i}", port=free_port(), replication=repl)
            procs.append(start_process(_with_workers(config, workers)))
        etcd = [m.proc.pid for m in cluster.members if m.proc is not None]
        return workload.run(
            [url for _, url in procs],
            n,
            concurrency,
            reads,
            batch,
            ([p.pid for p, _ in procs], etcd),
        )
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()
        cluster.stop()
