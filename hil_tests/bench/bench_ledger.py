"""Ledger benchmark: transactions per second, submit-to-block latency, read latency.

    uv run python -m hil_tests.bench.bench_ledger [--n 20000] [--concurrency 16] [--reads 500]
                                                  [--batches 1,4,8,16,32] [--modes embedded,replicated]

Each mode runs real processes: `sgrid ledger run` (SQLite, WAL, synchronous=FULL); replicated mode
adds a three-member etcd cluster on loopback and two replicas, the load split across them. The
client pre-signs every transaction, then C threads submit them over HTTP (keep-alive), B per
request (`POST /v1/tx` for B = 1, `POST /v1/txs` above); a submit returns only once the block
holding it is stored, so its round trip is the submit-to-block latency of each of its txs.

The ceiling: one thread verifying the same signed transactions with the ledger's own check
(`keys.verify_digest`), measured just before and just after each row, the mean of the two (the
machine may be shared, so a ceiling taken minutes earlier would not describe the same
conditions); every tx/s figure is printed as a share of its row's ceiling, with the 1-minute
load average at the start of that row.

With C clients each waiting for B transactions, C * B transactions are in flight, so the mean
submit-to-block latency is C * B / throughput (Little's law): the rows with B = 1 are the
latency of single-transaction clients, the batched rows show what submit_many adds to throughput.
The clients are other machines in a deployment: each encodes its request bodies before the clock
starts (as it signed them) and sends them over one keep-alive connection; the answers are
parsed and checked (every tx committed, in order).

Where the time goes, per row: CPU per transaction of the ledger process(es) (and how much of it
in the kernel), against one signature check at the row's ceiling, of the client threads (this
process, sharing the machine's cores with the ledger) and of etcd, context switches per
transaction of the ledger, the ledger's CPU by step, and the node's own figures (`GET
/v1/stats`): per block, milliseconds validating (apply), sealing (merkle root + validator
signature), writing and committing (the WAL fsync), and the share of the producer's time spent
waiting for transactions.

Parts (hil_tests/bench/ledger/): ceiling.py, workload.py (+ poster.py, proc_cpu.py), rigs.py,
figures.py, report.py.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from hil_tests.bench.ledger import figures, report
from hil_tests.bench.ledger.ceiling import verify_ceiling
from hil_tests.bench.ledger.rigs import run_embedded, run_replicated
from hil_tests.gateway.ledger.etcd_cluster import ETCD


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="transactions per run")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--reads", type=int, default=500, help="balance and proof queries each")
    parser.add_argument(
        "--batches", default="1,4,8,16,32", help="transactions per request, per run"
    )
    parser.add_argument("--modes", default="embedded,replicated")
    parser.add_argument(
        "--ceiling-txs", type=int, default=3000, help="signature checks per ceiling measurement"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="the ledger's http_workers (0: its default)"
    )
    args = parser.parse_args(argv)
    results: report.Rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        for mode in args.modes.split(","):
            if mode == "replicated" and ETCD is None:
                print("replicated: skipped (install the Debian package etcd-server)")
                continue
            runner = run_embedded if mode == "embedded" else run_replicated
            for batch in (int(b) for b in args.batches.split(",")):
                n = args.n if batch > 1 else max(args.concurrency, args.n // 4)
                before, load = verify_ceiling(args.ceiling_txs), os.getloadavg()[0]
                measured = runner(Path(tmp), n, args.concurrency, args.reads, batch, args.workers)
                ceiling = (before + verify_ceiling(args.ceiling_txs)) / 2
                results[f"{mode}/{batch}"] = {**figures.row(measured, ceiling), "load": load}
    print(report.render(results, args.concurrency, args.reads))
    return results


if __name__ == "__main__":
    main()
