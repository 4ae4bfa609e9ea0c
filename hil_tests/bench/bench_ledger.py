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

Where the time goes, per row: CPU per transaction of the ledger process(es), of the client
threads (this process) and of etcd, context switches per transaction of the ledger, and the
node's own figures (`GET /v1/stats`): per block, milliseconds validating (apply), sealing
(merkle root + validator signature), writing and committing (the WAL fsync), and the share of
the producer's time spent waiting for transactions.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.ledger import keys, txs
from gateway.ledger.client import LedgerClient
from gateway.ledger.keys import SigningKey
from hil_tests.gateway.ledger.conftest import OPERATOR, free_port, start_process, write_config
from hil_tests.gateway.ledger.etcd_cluster import ETCD, start_cluster


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def verify_ceiling(count: int = 3000) -> float:
    """Signature checks per second on one core (the ledger's check, cached public keys)."""
    key = SigningKey()
    signed = [
        txs.make("withdraw", "00" * 32, nonce=i, account=key.pubkey, amount_msat=1).signed_by(key)
        for i in range(count)
    ]
    work = [(bytes.fromhex(t.id), t.sigs[key.pubkey]) for t in signed]
    t0 = time.perf_counter()
    ok = sum(keys.verify_digest(key.pubkey, digest, sig) for digest, sig in work)
    elapsed = time.perf_counter() - t0
    assert ok == count
    return count / elapsed


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches(pid: int) -> int:
    """Context switches (voluntary + forced) of every thread of a process."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[-1])
    return total


class _LeanPoster:
    """A keep-alive HTTP/1.1 client for one connection that does only what the load needs
    (http.client's header parsing cost the client threads more CPU than the ledger's requests
    cost the ledger: they share the machine's two cores with it)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = parts.netloc.encode()

    def post(self, path: str, body: bytes) -> Any:
        head = (
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), self.host, len(body))
        )
        self.sock.sendall(head + body)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv()
        lines = data[:end].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        length = next(
            int(v)
            for n, _, v in (x.partition(b":") for x in lines[1:])
            if n.lower() == b"content-length"
        )
        while len(data) < end + 4 + length:
            data += self._recv()
        raw = data[end + 4 : end + 4 + length]
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status} {raw[:200]!r}")
        return json.loads(raw)

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the ledger closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def _load(
    urls: list[str],
    n: int,
    concurrency: int,
    reads: int,
    batch: int = 1,
    pids: tuple[list[int], list[int]] = ([], []),
) -> dict[str, float]:
    """`pids`: the ledger processes and the etcd members, whose CPU is counted."""
    setup = LedgerClient(urls)
    chain = setup.info()["chain"]
    accounts = [SigningKey() for _ in range(concurrency)]
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
    per_worker = max(1, n // concurrency)
    signed = [
        [
            txs.make("withdraw", chain, nonce=i, account=k.pubkey, amount_msat=1).signed_by(k)
            for i in range(per_worker)
        ]
        for k in accounts
    ]
    path = "/v1/tx" if batch == 1 else "/v1/txs"
    requests = [
        [
            (
                json.dumps(
                    chunk[0].to_json() if batch == 1 else {"txs": [t.to_json() for t in chunk]}
                ).encode(),
                [t.id for t in chunk],
            )
            for chunk in (mine[i : i + batch] for i in range(0, len(mine), batch))
        ]
        for mine in signed
    ]
    latencies: list[float] = []
    tx_ids: list[str] = []
    failures: list[BaseException] = []
    start_height = setup.info()["height"]
    before_stats = [_stats(u) for u in urls]

    def worker(w: int) -> None:
        conn = _LeanPoster(urls[w % len(urls)])
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

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    server_cpu0 = sum(_cpu_s(p) for p in pids[0])
    etcd_cpu0 = sum(_cpu_s(p) for p in pids[1])
    switches0 = sum(_switches(p) for p in pids[0])
    client0 = os.times()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    client1 = os.times()
    server_cpu = sum(_cpu_s(p) for p in pids[0]) - server_cpu0
    etcd_cpu = sum(_cpu_s(p) for p in pids[1]) - etcd_cpu0
    switches = sum(_switches(p) for p in pids[0]) - switches0
    if failures:
        raise failures[0]
    after_stats = [_stats(u) for u in urls]
    node = {
        k: sum(a.get(k, 0) - b.get(k, 0) for a, b in zip(after_stats, before_stats, strict=True))
        for k in after_stats[0]
        if k != "mode"
    }
    blocks = setup.info()["height"] - start_height
    reader = LedgerClient(urls[0])

    def timed(call: Callable[[int], object]) -> list[float]:
        out = []
        for i in range(reads):
            r0 = time.perf_counter()
            call(i)
            out.append(time.perf_counter() - r0)
        return out

    balance = timed(lambda i: reader.balance(accounts[i % len(accounts)].pubkey))
    proof = timed(lambda i: reader.tx_proof(tx_ids[i % len(tx_ids)]))
    count = max(1, len(latencies))
    built = max(1.0, node.get("blocks", 0))  # summed over replicas (each builds every block)
    producer = node.get("wait_s", 0) + sum(
        node.get(k, 0) for k in ("apply_s", "seal_s", "write_s", "commit_s", "answer_s")
    )
    split = {  # CPU per tx by step (embedded node; -1 where the node does not count it)
        f"{k}_cpu_us": node[f"{k}_cpu_s"] / count * 1e6 if f"{k}_cpu_s" in node else -1.0
        for k in ("check", "build", "answer")
    }
    counted = sum(v for v in split.values() if v > 0)
    return {
        **split,
        "rest_cpu_us": server_cpu / count * 1e6 - counted if counted else -1.0,
        "server_us": server_cpu / count * 1e6,
        "client_us": (client1.user + client1.system - client0.user - client0.system) / count * 1e6,
        "etcd_us": etcd_cpu / count * 1e6,
        "switches": switches / count,
        "apply_ms": node.get("apply_s", 0) / built * 1e3,
        "seal_ms": node.get("seal_s", 0) / built * 1e3,
        "write_ms": node.get("write_s", 0) / built * 1e3,
        "commit_ms": node.get("commit_s", 0) / built * 1e3,
        "check_us": node.get("check_s", 0) / count * 1e6,
        "producer_idle": node["wait_s"] / producer if producer and "wait_s" in node else -1.0,
        "etcd_txns": node.get("etcd_txns", 0),
        "txs": len(latencies),
        "tps": len(latencies) / elapsed,
        "blocks": blocks,
        "txs_per_block": len(latencies) / max(1, blocks),
        "submit_p50_ms": _pct(latencies, 50),
        "submit_p99_ms": _pct(latencies, 99),
        "balance_p50_ms": _pct(balance, 50),
        "balance_p99_ms": _pct(balance, 99),
        "proof_p50_ms": _pct(proof, 50),
        "proof_p99_ms": _pct(proof, 99),
        "read_mean_ms": statistics.mean(balance + proof) * 1000,
    }


def _stats(url: str) -> dict[str, Any]:
    return LedgerClient(url)._request("GET", "/v1/stats")


def _with_workers(config: Path, workers: int) -> Path:
    if workers:
        text = config.read_text().replace("[ledger]\n", f"[ledger]\nhttp_workers = {workers}\n")
        config.write_text(text)
    return config


def run_embedded(
    root: Path, n: int, concurrency: int, reads: int, batch: int, workers: int = 0
) -> dict[str, float]:
    config = write_config(root / f"embedded-{batch}", port=free_port())
    proc, url = start_process(_with_workers(config, workers))
    try:
        return _load([url], n, concurrency, reads, batch, ([proc.pid], []))
    finally:
        proc.kill()
        proc.wait()


def run_replicated(
    root: Path, n: int, concurrency: int, reads: int, batch: int, workers: int = 0
) -> dict[str, float]:
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
        return _load(
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
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        for mode in args.modes.split(","):
            if mode == "replicated" and ETCD is None:
                print("replicated: skipped (install the Debian package etcd-server)")
                continue
            runner = run_embedded if mode == "embedded" else run_replicated
            for batch in (int(b) for b in args.batches.split(",")):
                n = args.n if batch > 1 else max(args.concurrency, args.n // 4)
                before, load = verify_ceiling(args.ceiling_txs), os.getloadavg()[0]
                r = runner(Path(tmp), n, args.concurrency, args.reads, batch, args.workers)
                ceiling = (before + verify_ceiling(args.ceiling_txs)) / 2
                r["batch"] = batch
                r["ceiling"] = ceiling
                r["ceiling_share"] = r["tps"] / ceiling
                r["load"] = load
                results[f"{mode}/{batch}"] = r
    print(
        f"ledger benchmark: {args.concurrency} concurrent clients, reads={args.reads};"
        " tx/req 1 = one tx per request (POST /v1/tx), > 1 = submit_many (POST /v1/txs);"
        " ceiling = verification ceiling (one core checking signatures), measured around each row"
    )
    header = (
        "mode",
        "tx/req",
        "txs",
        "tx/s",
        "ceiling",
        "of ceiling",
        "load",
        "tx/block",
        "submit p50",
        "p99",
        "balance p50",
        "p99",
        "proof p50",
        "p99",
    )
    print("  ".join(f"{h:>11}" for h in header))
    for name, r in results.items():
        row = (
            name.split("/")[0],
            f"{r['batch']:.0f}",
            f"{r['txs']:.0f}",
            f"{r['tps']:.0f}",
            f"{r['ceiling']:.0f}",
            f"{100 * r['ceiling_share']:.0f}%",
            f"{r['load']:.1f}",
            f"{r['txs_per_block']:.1f}",
            f"{r['submit_p50_ms']:.1f}ms",
            f"{r['submit_p99_ms']:.1f}ms",
            f"{r['balance_p50_ms']:.2f}ms",
            f"{r['balance_p99_ms']:.2f}ms",
            f"{r['proof_p50_ms']:.2f}ms",
            f"{r['proof_p99_ms']:.2f}ms",
        )
        print("  ".join(f"{c:>11}" for c in row))
    print(
        "where the time goes: CPU per tx of the ledger process(es), of the client threads and of"
        " etcd; ledger context switches per tx; per block (GET /v1/stats): ms validating, sealing,"
        " writing, committing (WAL fsync); submitters' signature-check wall time per tx; share of"
        " the producer's time waiting for transactions"
    )
    header = ("mode", "tx/req", "ledger CPU", "client CPU", "etcd CPU", "switches", "apply",
              "seal", "write", "commit", "check", "idle")  # fmt: skip
    print("  ".join(f"{h:>11}" for h in header))
    for name, r in results.items():
        row = (
            name.split("/")[0],
            f"{r['batch']:.0f}",
            f"{r['server_us']:.0f}us",
            f"{r['client_us']:.0f}us",
            f"{r['etcd_us']:.0f}us",
            f"{r['switches']:.1f}",
            f"{r['apply_ms']:.2f}ms",
            f"{r['seal_ms']:.2f}ms",
            f"{r['write_ms']:.2f}ms",
            f"{r['commit_ms']:.2f}ms",
            f"{r['check_us']:.0f}us",
            f"{100 * r['producer_idle']:.0f}%" if r["producer_idle"] >= 0 else "-",
        )
        print("  ".join(f"{c:>11}" for c in row))
    print(
        "CPU per tx of the ledger process by step (embedded; thread CPU time): check = the HTTP"
        " workers decoding, shape-checking and verifying (libsecp256k1 included); build = the"
        " producer validating, sealing and storing the block; answer = the producer encoding and"
        " writing the replies; rest = everything else (request framing, the selector thread,"
        " thread hand-offs, the kernel's side of the sockets and the fsync)"
    )
    header = ("mode", "tx/req", "ledger CPU", "check", "build", "answer", "rest", "client CPU")
    print("  ".join(f"{h:>11}" for h in header))
    for name, r in results.items():
        cells = [r[f"{k}_cpu_us"] for k in ("check", "build", "answer", "rest")]
        row = (
            name.split("/")[0],
            f"{r['batch']:.0f}",
            f"{r['server_us']:.0f}us",
            *(f"{c:.0f}us" if c >= 0 else "-" for c in cells),
            f"{r['client_us']:.0f}us",
        )
        print("  ".join(f"{c:>11}" for c in row))
    print(goals(results))
    return results


def goals(results: dict[str, dict[str, float]]) -> str:
    """Issue 15's goals against the best row of each mode (met or not, with the figures)."""
    lines = []
    embedded = [r for name, r in results.items() if name.startswith("embedded/")]
    if embedded:
        ok = [r for r in embedded if r["submit_p99_ms"] <= 50]
        best = max(ok or embedded, key=lambda r: r["tps"])
        met = bool(ok) and best["tps"] >= 5000 and best["ceiling_share"] >= 0.25
        lines.append(
            f"goal embedded >= 5,000 tx/s, p99 <= 50 ms, >= 25 % of the ceiling:"
            f" {'met' if met else 'NOT met'} (best row with p99 <= 50 ms:"
            + (
                f" {best['tps']:,.0f} tx/s, {best['ceiling_share']:.0%}, p99"
                f" {best['submit_p99_ms']:.0f} ms at {best['batch']:.0f} tx/req)"
                if ok
                else " none)"
            )
        )
    replicated = [r for name, r in results.items() if name.startswith("replicated/")]
    if replicated:
        best = max(replicated, key=lambda r: r["tps"])
        lines.append(
            f"goal replicated >= 2,000 tx/s: {'met' if best['tps'] >= 2000 else 'NOT met'}"
            f" (best {best['tps']:,.0f} tx/s = {best['ceiling_share']:.0%} of its ceiling,"
            f" {best['batch']:.0f} tx/req)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
