"""Payment-channel benchmark: gateway node processes on loopback (BOLT-8, SQLite WAL FULL).

    uv run python -m hil_tests.bench.bench_channels [--payments 3000] [--latency 300] [--rounds 3]

Prints: single-hop payments per second over one channel (payments sent together, so HTLCs batch
into few commitments as Lightning does), 2-hop payment latency p50/p99 (one payment at a time,
measured at the control API client: includes HTTP), and fsyncs (store commits) per payment.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hil_tests.gateway.ln.node_procs import Grid

AMOUNT = 1000


def _commits(*nodes) -> int:  # noqa: ANN002 - NodeProc
    return sum(n.api("/info")["commits"] for n in nodes)


def _invoices(node, count: int) -> dict:  # noqa: ANN001 - NodeProc
    out: dict[str, list[str]] = {"invoices": [], "payment_hashes": [], "payment_secrets": []}
    now = int(time.time())
    while len(out["invoices"]) < count:
        n = min(500, count - len(out["invoices"]))
        body = {
            "amount_msat": AMOUNT,
            "start": now + 3600,
            "end": now + 7200,
            "kwh": 0.001,
            "count": n,
        }
        got = node.api("/invoice", body)
        out["invoices"] += got["invoices"]
        out["payment_hashes"] += got["payment_hashes"]
        out["payment_secrets"] += got["payment_secrets"]
    return out


def single_hop(root: Path, payments: int, rounds: int = 1) -> dict[str, float]:
    """Two phases on one channel: decoded payment requests (the channel's own rate), then the
    same number of BOLT-11 receipts decoded by the payer (end to end). The phases alternate for
    `rounds` rounds and each keeps its best round: on a shared machine a load burst then hits
    one round, not one phase."""
    g = Grid(root)
    try:
        a, b = g.add("payer", "--tick", "1"), g.add("payee", "--tick", "1")
        a.connect(b)
        capacity = (2 * rounds + 8) * payments * AMOUNT
        a.api("/open", {"node_id": b.node_id, "amount_msat": capacity})
        out: dict[str, float] = {"payments": payments, "requests_per_s": 0, "invoices_per_s": 0}
        for phase in ("requests", "invoices") * rounds:
            inv = _invoices(b, payments)
            if phase == "requests":
                pairs = zip(inv["payment_hashes"], inv["payment_secrets"], strict=True)
                body = {"requests": [[b.node_id, h, AMOUNT, s] for h, s in pairs]}
            else:
                body = {"invoices": inv["invoices"]}
            c0, n0 = _commits(a, b), a.channel_with(b)["commitment"]
            t0 = time.perf_counter()
            results = a.api("/pay", {**body, "timeout": 300}, timeout=600)
            dt = time.perf_counter() - t0
            assert sum(r["status"] == "succeeded" for r in results) == payments
            if payments / dt > out[f"{phase}_per_s"]:
                out[f"{phase}_per_s"] = payments / dt
                out[f"{phase}_fsyncs"] = (_commits(a, b) - c0) / payments
                out[f"{phase}_commitments"] = a.channel_with(b)["commitment"] - n0
        assert a.channel_with(b)["remote_msat"] == 2 * rounds * payments * AMOUNT
        return out
    finally:
        g.close()


def two_hop_latency(root: Path, count: int) -> dict[str, float]:
    g = Grid(root)
    try:
        a, b, c = (g.add(n, "--tick", "1") for n in ("alice", "bob", "carol"))
        for x, y in ((a, b), (b, c)):
            x.connect(y)
            x.api("/open", {"node_id": y.node_id, "amount_msat": 10**10})
        now = int(time.time())
        body = {
            "amount_msat": AMOUNT,
            "start": now + 3600,
            "end": now + 7200,
            "kwh": 0.001,
            "count": count + 5,
        }
        invoices = c.api("/invoice", body)["invoices"]
        for _ in range(100):  # wait for gossip to give alice a route
            try:
                a.api("/pay", {"invoice": invoices.pop()})
                break
            except Exception:  # noqa: BLE001 - no route yet
                time.sleep(0.05)
        c0 = _commits(a, b, c)
        lat, inner = [], []
        for inv in invoices[:count]:
            t0 = time.perf_counter()
            r = a.api("/pay", {"invoice": inv})
            lat.append((time.perf_counter() - t0) * 1000)
            inner.append(r["latency_ms"])
            assert r["status"] == "succeeded", r
        fsyncs = _commits(a, b, c) - c0
        lat.sort()
        inner.sort()
        return {
            "node_p50_ms": statistics.median(inner),
            "node_p99_ms": inner[min(len(inner) - 1, int(len(inner) * 0.99))],
            "count": count,
            "p50_ms": statistics.median(lat),
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "fsyncs_per_payment": fsyncs / count,
        }
    finally:
        g.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--payments", type=int, default=3000)
    ap.add_argument("--latency", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of both phases")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        s = single_hop(Path(d) / "one", args.payments, args.rounds)
        for phase, what in (("requests", "decoded requests"), ("invoices", "BOLT-11 receipts")):
            print(
                f"single-hop, {what}: {s[phase + '_per_s']:.0f} payments/s over one channel "
                f"({s['payments']:.0f} payments in "
                f"{s[phase + '_commitments']:.0f} commitments), "
                f"{s[phase + '_fsyncs']:.3f} fsyncs/payment (both nodes)"
            )
        ratio = s["invoices_per_s"] / s["requests_per_s"]
        print(
            f"  BOLT-11 rate = {100 * ratio:.0f}% of the decoded-request rate, same run"
            f" (best of {args.rounds} alternating rounds each)"
            f" (goal >= 80% and >= 5,000/s)"
        )
        t = two_hop_latency(Path(d) / "two", args.latency)
        print(
            f"2-hop latency in the payer node (route, 3 nodes, preimage back): "
            f"p50 {t['node_p50_ms']:.1f} ms, p99 {t['node_p99_ms']:.1f} ms\n"
            f"2-hop latency at the CLI client (+ HTTP, + BOLT-11 decode): p50 {t['p50_ms']:.1f} ms,"
            f" p99 {t['p99_ms']:.1f} ms over {t['count']} sequential payments; "
            f"{t['fsyncs_per_payment']:.1f} fsyncs/payment (3 nodes)"
            f" (goal p50 <= 4 ms, p99 <= 10 ms)"
        )


if __name__ == "__main__":
    main()
