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
  it, and every round's rate with the CPU the other jobs used meanwhile (in cores, from
  /proc/stat less our processes), so a disturbed run shows as one;
- the CPU a payment costs in each phase (payer + payee + the payer's decoding workers, from
  /proc/<pid>/task/*/schedstat): on a machine the other jobs saturate the rate ratio tends to
  the ratio of these, whatever the code's parallelism.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from hil_tests.gateway.ln.node_procs import Grid, wait_until

AMOUNT = 1000
PHASES = ("requests", "invoices")
WHAT = {"requests": "decoded requests", "invoices": "BOLT-11 receipts"}


@dataclass
class Round:
    per_s: float
    fsyncs: float  # store commits per payment, both nodes
    commitments: int
    cpu_us: tuple[float, float, float] = (0.0, 0.0, 0.0)  # CPU per payment: payer, payee,
    # the payer's decoding workers
    others: float = 0.0  # cores the machine's other processes used during the round


def _pids(root: int) -> list[int]:
    """`root` and its child processes (a node's decoding workers)."""
    out = [root]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == root:
                out.append(int(d))
    return out


def _cpu_s(pids: list[int]) -> float:
    """Seconds the processes' threads have run on a CPU (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            continue
    return total / 1e9


def _busy_s() -> float:
    """Seconds all CPUs have been busy (user, nice, system, irq, softirq, steal)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


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
            pay, *workers = _pids(a.proc.pid)  # type: ignore[union-attr]
            groups = ([pay], [b.proc.pid], workers)  # type: ignore[union-attr]
            cpu0, busy0, t0 = [_cpu_s(g) for g in groups], _busy_s(), time.perf_counter()
            results = a.api("/pay", {**body, "timeout": 300}, timeout=600)
            dt = time.perf_counter() - t0
            cpu = [_cpu_s(g) - c for g, c in zip(groups, cpu0, strict=True)]
            busy = _busy_s() - busy0
            assert sum(r["status"] == "succeeded" for r in results) == payments
            if k >= len(PHASES):  # the warm-up pair is not counted
                fsyncs = (_commits(a, b) - c0) / payments
                n = a.channel_with(b)["commitment"] - n0
                others = max(0.0, busy - sum(cpu)) / dt
                us = [c / payments * 1e6 for c in cpu]
                out.rounds[phase].append(
                    Round(payments / dt, fsyncs, n, (us[0], us[1], us[2]), others)
                )
        # a payer learns each preimage from the payee's sg_preimages, before the fulfil round
        # that moves the amount has run: wait for it (headroom, not a measured figure)
        want = len(order) * payments * AMOUNT
        wait_until(lambda: a.channel_with(b)["remote_msat"] == want, 60, "the fulfil rounds")
        return out
    finally:
        g.close()


def report(s: SingleHop) -> list[str]:
    lines = []
    for phase in PHASES:
        best = s.best(phase)
        lines.append(
            f"single-hop, {WHAT[phase]}: {best.per_s:.0f} payments/s over one channel "
            f"({s.payments} payments in {best.commitments} commitments), "
            f"{best.fsyncs:.3f} fsyncs/payment (both nodes)"
        )
        rates = " ".join(f"{r.per_s:.0f}@{r.others:.1f}" for r in s.rounds[phase])
        lines.append(f"  rounds (payments/s @ cores the other jobs used meanwhile): {rates}")
    pairs = s.pair_ratios
    n = len(pairs)
    lines.append(
        f"  BOLT-11 rate = {100 * s.ratio:.0f}% of the decoded-request rate, same run"
        f" (best of {n} alternating rounds each, after a warm-up pair;"
        f" pair by pair: median {100 * statistics.median(pairs):.0f}%,"
        f" lowest {100 * min(pairs):.0f}%) (goal >= 80% and >= 5,000/s)"
    )
    cpu = {p: [statistics.median(r.cpu_us[k] for r in s.rounds[p]) for k in range(3)]
           for p in PHASES}  # fmt: skip
    req, inv = sum(cpu["requests"]), sum(cpu["invoices"])
    parts = {p: " + ".join(f"{c:.0f}" for c in cpu[p]) for p in PHASES}
    lines.append(
        f"  CPU per payment (payer + payee + decoding workers, median round): decoded request"
        f" {req:.0f} us ({parts['requests']}), BOLT-11 receipt {inv:.0f} us ({parts['invoices']}):"
        f" on a saturated machine the rate ratio tends to {100 * req / inv:.0f}%"
    )
    return lines
