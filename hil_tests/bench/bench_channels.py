"""Payment-channel benchmark: gateway node processes on loopback (BOLT-8, SQLite WAL FULL).

    uv run python -m hil_tests.bench.bench_channels [--payments 3000] [--latency 300] [--rounds 7]

Prints: single-hop payments per second over one channel (payments sent together, so HTLCs batch
into few commitments as Lightning does), 2-hop payment latency p50/p99 (one payment at a time,
measured at the control API client: includes HTTP; on one kept-alive connection, as long-lived
callers pay, or with --one-shot a connection per payment, as `sgrid pay` does), and fsyncs
(store commits) per payment.

Ceilings measured in the same run: the decoded-request rate for the BOLT-11 rate (a warm-up
pair, then alternating pairs: see single_hop.py), and for the 2-hop latency the store commit
itself (one SQLite WAL transaction with synchronous=FULL, as the node makes it, on the same
disk): a 2-hop payment makes COMMITS_ON_PATH of them one after the other (each node persists
before it signs or forwards), so their sum bounds its latency from below whatever the code does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.durable_db import open_durable
from gateway.ln.node.control import call
from hil_tests.bench import single_hop
from hil_tests.bench import two_hop_timeline as tl
from hil_tests.gateway.ln.node_procs import Grid

AMOUNT = 1000
# the payer's add, the forwarder's ack + forward, the payee's ack + sg_preimages, the
# forwarder's sg_preimages upstream, and the payer's own record of the outcome: each is
# committed before its message leaves (early lock-in, docs/channels.md sixth pass; 9 before)
COMMITS_ON_PATH = 5
PROBE_GAP_S = 0.002  # about the time between one node's commits in a 2-hop run


def commit_latency(
    root: Path, count: int = 200, size: int = 4000, gap_s: float = 0.0
) -> list[float]:
    """Milliseconds of `count` store commits of a `size`-byte row (a channel's document is a
    few kB) on the node's durable SQLite settings, in `root` (the nodes' disk); `gap_s` apart
    (0: back to back; the disk answers a sync after a pause more slowly: store_commit.py)."""
    db = open_durable(root / "commit_probe.sqlite", "CREATE TABLE IF NOT EXISTS t (k, v);")
    out = []
    try:
        for i in range(count):
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (i % 8, "x" * size))
            db.execute("COMMIT")
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        db.close()
    return out


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def _commits(*nodes) -> int:  # noqa: ANN002 - NodeProc
    return sum(n.api("/info")["commits"] for n in nodes)


def _cpu_ns(*nodes) -> list[int]:  # noqa: ANN002 - NodeProc
    """Nanoseconds each node's process has run on a CPU (its threads; /proc/<pid>/schedstat):
    what a payment costs whatever else the shared machine runs meanwhile."""
    out = []
    for n in nodes:
        total = 0
        for task in Path(f"/proc/{n.proc.pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        out.append(total)
    return out


def two_hop_latency(
    root: Path, count: int, one_shot: bool = False, gap_ms: float = 0.0
) -> dict[str, Any]:
    """``one_shot``: each measured payment on a connection of its own (`control.call`, the
    CLI's client), else all on the payer's kept-alive one (`ControlClient`). ``gap_ms``: a
    pause after each payment (0: back to back, the next payment's add may wait for the last
    one's fulfil rounds; ~20: each payment finds its channels at rest)."""
    g = Grid(root)
    try:
        names = ("alice", "bob", "carol")
        a, b, c = (g.add(n, "--tick", "1", "--timeline", str(60 * count + 1000)) for n in names)
        for x, y in ((a, b), (b, c)):
            x.connect(y)
            x.api("/open", {"node_id": y.node_id, "amount_msat": 10**10})
        now = int(time.time())
        body = {
            "amount_msat": AMOUNT,
            "start": now + 3600,
            "end": now + 7200,
            "kwh": 0.001,
            "count": count,
        }
        invoices = c.api("/invoice", body)["invoices"]
        a.pay_once_routed(c, AMOUNT)  # gossip has given alice the route
        probe = commit_latency(root, count // 2)  # the disk before and after the payments
        spaced = commit_latency(root, count // 4, gap_s=PROBE_GAP_S)
        for n in (a, b, c):
            n.api("/timeline")  # only the measured payments' marks
        c0, cpu0 = _commits(a, b, c), _cpu_ns(a, b, c)
        lat, inner, windows = [], [], []
        for inv in invoices:
            t0, w0 = time.perf_counter(), time.monotonic_ns()
            if one_shot:
                r = call(a.url, "/pay", {"invoice": inv}, token_file=a.token_file)
            else:
                r = a.api("/pay", {"invoice": inv})
            lat.append((time.perf_counter() - t0) * 1000)
            windows.append((w0, time.monotonic_ns()))
            inner.append(r["latency_ms"])
            assert r["status"] == "succeeded", r
            if gap_ms:
                time.sleep(gap_ms / 1000)
        fsyncs = _commits(a, b, c) - c0
        cpu = [(t - t0) / 1e6 / count for t, t0 in zip(_cpu_ns(a, b, c), cpu0, strict=True)]
        marks = tl.merge({n.name: n.api("/timeline") for n in (a, b, c)})
        shorts = {n.node_id[:12]: n.name for n in (a, b, c)}
        paths = [
            tl.with_client(
                tl.critical_path(marks, shorts, "alice", w0, w1), "alice", w0, w1, marks["alice"]
            )
            for w0, w1 in windows
        ]
        probe += commit_latency(root, count // 2)
        spaced += commit_latency(root, count // 4, gap_s=PROBE_GAP_S)
        return {
            "paths": paths,
            "windows": windows,
            "marks": marks,
            "node_p50_ms": statistics.median(inner),
            "node_p99_ms": _pct(inner, 0.99),
            "count": count,
            "gap_ms": gap_ms,
            "p50_ms": statistics.median(lat),
            "p99_ms": _pct(lat, 0.99),
            "fsyncs_per_payment": fsyncs / count,
            "cpu_ms": cpu,  # per payment, alice, bob, carol
            "commit_p50_ms": statistics.median(probe),
            "commit_p99_ms": _pct(probe, 0.99),
            "spaced_commit_p50_ms": statistics.median(spaced),
        }
    finally:
        g.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--payments", type=int, default=3000)
    ap.add_argument("--latency", type=int, default=300)
    ap.add_argument(
        "--rounds", type=int, default=7, help="single hop: alternating pairs after the warm-up pair"
    )
    ap.add_argument("--single-only", action="store_true", help="the single-hop part only")
    ap.add_argument("--two-hop-only", action="store_true", help="the 2-hop part only")
    ap.add_argument(
        "--runs", type=int, default=1, help="2-hop: runs on new nodes (min / median / max)"
    )
    ap.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="2-hop: pause after each payment (default 0: back to back; 20: channels at rest)",
    )
    ap.add_argument(
        "--one-shot",
        action="store_true",
        help="2-hop: a new connection per payment (as `sgrid pay`), not one kept-alive one",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        if not args.two_hop_only:
            runs = single_hop.run(Path(d) / "one", args.payments, args.rounds)
            for line in single_hop.report(runs):
                print(line, flush=True)
        if args.single_only:
            return
        two_hop_report(Path(d), args.latency, args.runs, args.one_shot, args.gap_ms)


def two_hop_report(
    root: Path, count: int, runs: int = 1, one_shot: bool = False, gap_ms: float = 0.0
) -> None:
    """`runs` 2-hop runs of `count` payments, each on new nodes; with several, one line each
    and their min / median / max, then the figures and the timeline of the median run."""
    results = []
    for i in range(runs):
        t = two_hop_latency(root / f"two{i}", count, one_shot, gap_ms)
        results.append(t)
        if runs > 1:
            print(
                f"2-hop run {i + 1}/{runs}: at the CLI client p50 {t['p50_ms']:.2f} ms, p99"
                f" {t['p99_ms']:.2f} ms; in the payer node p50 {t['node_p50_ms']:.2f} ms, p99"
                f" {t['node_p99_ms']:.2f} ms; {t['fsyncs_per_payment']:.2f} fsyncs/payment;"
                f" CPU {sum(t['cpu_ms']):.2f} ms/payment",
                flush=True,
            )
    if runs > 1:
        for key, what in (("p50_ms", "CLI p50"), ("p99_ms", "CLI p99"), ("node_p50_ms", "node p50"),
                          ("node_p99_ms", "node p99")):  # fmt: skip
            v = sorted(r[key] for r in results)
            print(f"2-hop {what} over {runs} runs: min {v[0]:.2f} / median "
                  f"{statistics.median(v):.2f} / max {v[-1]:.2f} ms")  # fmt: skip
    t = sorted(results, key=lambda r: r["p50_ms"])[len(results) // 2]
    floor = COMMITS_ON_PATH * t["commit_p50_ms"]
    print(
        f"2-hop latency in the payer node (route, 3 nodes, preimage back): "
        f"p50 {t['node_p50_ms']:.1f} ms, p99 {t['node_p99_ms']:.1f} ms\n"
        f"2-hop latency at the CLI client (+ HTTP {'one-shot' if one_shot else 'kept-alive'},"
        f" + BOLT-11 decode): p50 {t['p50_ms']:.1f} ms,"
        f" p99 {t['p99_ms']:.1f} ms over {t['count']} sequential payments"
        f"{f' {gap_ms:g} ms apart' if gap_ms else ' back to back'}; "
        f"{t['fsyncs_per_payment']:.1f} fsyncs/payment (3 nodes)"
        f" (goal p50 <= 4 ms, p99 <= 10 ms)\n"
        f"  store commit on this disk, same run: p50 {t['commit_p50_ms']:.2f} ms, p99 "
        f"{t['commit_p99_ms']:.2f} ms; the {COMMITS_ON_PATH} commits in a row on a 2-hop "
        f"payment's path take >= {floor:.1f} ms: payer-node p50 = "
        f"{t['node_p50_ms'] / floor:.1f}x that floor; {PROBE_GAP_S * 1000:g} ms apart (as a"
        f" node's commits come in this run) p50 {t['spaced_commit_p50_ms']:.2f} ms"
    )
    alice, bob, carol = t["cpu_ms"]
    print(
        f"  CPU per payment (on a CPU, whatever the machine's load): alice {alice:.2f} ms,"
        f" bob {bob:.2f} ms, carol {carol:.2f} ms, {alice + bob + carol:.2f} ms in all"
    )
    print_timeline(t["paths"])


def print_timeline(paths: list[list[tl.Step]]) -> None:
    """Where a 2-hop payment's time goes: the steps of its critical path through the three
    nodes' timelines (two_hop_timeline.py), summed per kind over the payments, and the path of
    the median payment step by step."""
    paths = [p for p in paths if p]
    if not paths:
        print("  (no timeline: the nodes kept no marks)")
        return
    totals = [sum(s.ms for s in p) for p in paths]
    median = sorted(range(len(paths)), key=totals.__getitem__)[len(paths) // 2]
    commits = sum(s.label == "store commit (fsync)" for s in paths[median])
    in_nodes = [s.ms for p in paths for s in p if s.label == "store commit (fsync)"]
    print(
        f"  store commits on the payments' paths, in the nodes: p50 {statistics.median(in_nodes):.2f}"
        f" ms, p99 {_pct(in_nodes, 0.99):.2f} ms (the probe above appends to a new WAL; a node's"
        f" WAL is reused after each checkpoint)"
    )
    print(
        f"  where the time goes on the critical path, as the CLI client sees it (mean ms per"
        f" payment over {len(paths)}"
        f" payments, mean total {statistics.mean(totals):.2f} ms; the wire and commits summed"
        f" over the nodes):"
    )
    for label, ms, share in tl.breakdown(paths):
        if ms >= 0.005:
            print(f"    {ms:7.3f} ms {100 * share:5.1f} %  {label}")
    print(
        f"  timeline of the median payment ({totals[median]:.2f} ms, {commits} store commits"
        f" on its path):\n{tl.format_path(paths[median])}"
    )
    slow = max(1, len(paths) // 100)
    print(
        f"  the slowest {slow} payment(s) spend more than the middle half on (mean ms per payment):"
    )
    for label, ms in tl.tail_excess(paths)[:6]:
        print(f"    {ms:+7.3f} ms  {label}")


if __name__ == "__main__":
    main()
