"""The single-hop part of bench_channels: payments per second over one channel, from decoded
payment requests (the channel's own rate, the ceiling) and from BOLT-11 receipts the payer
decodes and verifies (end to end), measured in the same run on the same channel.

How the two are compared (the machine is shared, its load moves within seconds):
- a warm-up round of each phase first, not counted: it starts the payer's decoding workers
  (`invoice_batch`, spawned on the first large batch, ~0.2-0.5 s of imports that would otherwise
  fall in the first receipts round) and brings both nodes' caches and store to steady state;
- then `rounds` pairs, each a requests round and a receipts round back to back, the order
  swapped from one pair to the next (RI, IR, RI, ...), so a drift of the load is shared;
- each phase keeps its best round (the figure least disturbed by other jobs) and the ratio of
  the bests is the goal figure; the median and lowest of the per-pair ratios are printed with
  it, and every round's rate, so a disturbed run shows as one.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from hil_tests.gateway.ln.node_procs import Grid

AMOUNT = 1000
PHASES = ("requests", "invoices")
WHAT = {"requests": "decoded requests", "invoices": "BOLT-11 receipts"}


@dataclass
class Round:
    per_s: float
    fsyncs: float  # store commits per payment, both nodes
    commitments: int


@dataclass
class SingleHop:
    payments: int
    rounds: dict[str, list[Round]] = field(default_factory=lambda: {p: [] for p in PHASES})

    def best(self, phase: str) -> Round:
        return max(self.rounds[phase], key=lambda r: r.per_s)

    @property
    def ratio(self) -> float:
        """The goal figure: best receipts round / best requests round."""
        return self.best("invoices").per_s / self.best("requests").per_s

    @property
    def pair_ratios(self) -> list[float]:
        pairs = zip(self.rounds["invoices"], self.rounds["requests"], strict=True)
        return [i.per_s / r.per_s for i, r in pairs]


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


def _order(rounds: int) -> list[str]:
    """The warm-up pair, then `rounds` pairs with the order swapped each time."""
    order = list(PHASES)
    for k in range(rounds):
        order += PHASES if k % 2 == 0 else PHASES[::-1]
    return order


def run(root: Path, payments: int, rounds: int = 7) -> SingleHop:
    """Two nodes, one channel, the phases in the order of `_order`; every payment must succeed
    and the channel must have moved exactly their amounts."""
    g = Grid(root)
    out = SingleHop(payments)
    try:
        a, b = g.add("payer", "--tick", "1"), g.add("payee", "--tick", "1")
        a.connect(b)
        order = _order(rounds)
        a.api("/open", {"node_id": b.node_id, "amount_msat": (len(order) + 8) * payments * AMOUNT})
        for k, phase in enumerate(order):
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
            if k >= len(PHASES):  # the warm-up pair is not counted
                fsyncs = (_commits(a, b) - c0) / payments
                n = a.channel_with(b)["commitment"] - n0
                out.rounds[phase].append(Round(payments / dt, fsyncs, n))
        assert a.channel_with(b)["remote_msat"] == len(order) * payments * AMOUNT
        return out
    finally:
        g.close()


def report(s: SingleHop) -> list[str]:
    lines = []
    for phase in PHASES:
        best = s.best(phase)
        rates = " ".join(f"{r.per_s:.0f}" for r in s.rounds[phase])
        lines.append(
            f"single-hop, {WHAT[phase]}: {best.per_s:.0f} payments/s over one channel "
            f"({s.payments} payments in {best.commitments} commitments), "
            f"{best.fsyncs:.3f} fsyncs/payment (both nodes); rounds: {rates}"
        )
    pairs = s.pair_ratios
    n = len(pairs)
    lines.append(
        f"  BOLT-11 rate = {100 * s.ratio:.0f}% of the decoded-request rate, same run"
        f" (best of {n} alternating rounds each, after a warm-up pair;"
        f" pair by pair: median {100 * statistics.median(pairs):.0f}%,"
        f" lowest {100 * min(pairs):.0f}%) (goal >= 80% and >= 5,000/s)"
    )
    return lines
