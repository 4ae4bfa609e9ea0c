"""The POD's side of surplus claims on two real channel nodes in one process (BOLT-8 on loopback,
a real channel under the ledger's rules in memory, real SQLite books): a claim is paid once
however often it is asked, and no second claim is paid for the same energy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.config_grid import MarketConfig
from gateway.grid.node import GridNode
from gateway.grid.pod_surplus import MeterEntry
from gateway.grid.surplus_book import PodPurchases
from gateway.grid.surplus_link import SurplusBuyer
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.codec import surplus_claim as sc
from gateway.ln.codec.receipt import KIND_SURPLUS, EnergyMemo
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.market.units import amount_msat
from hil_tests.gateway.grid.test_pod_surplus import METER_PUB, MID, record

P = 900
PRICE = 400_000


async def _answer(answers: asyncio.Queue[sc.SurplusAnswer], rid: bytes) -> sc.SurplusAnswer:
    while True:
        a = await asyncio.wait_for(answers.get(), 60)
        if a.request_id == rid:
            return a


async def _until(pred: Any, timeout: float = 60) -> None:
    """Let the nodes run until `pred()` holds (or `timeout`: the caller's assert then says why)."""
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def _scenario(tmp: Path) -> dict[str, Any]:
    ledger = MemoryLedger()
    pod = GridNode(tmp / "pod", ledger, FeePolicy())
    pv = GridNode(tmp / "pv", ledger, FeePolicy())
    ledger.deposit(pod.node_id, 10**10)
    await pod.start(0, 0.05)
    await pv.start(0, 0.05)
    tasks: set[asyncio.Task[Any]] = set()
    purchases = PodPurchases(tmp / "pod_surplus.sqlite3")
    market = MarketConfig(role="pod", settle_period_s=P, surplus_price_msat_per_kwh=PRICE)
    owner = {MID: MeterEntry(METER_PUB, pv.node_id)}
    buyer = SurplusBuyer(market, pod, purchases, owner.get,
                         lambda coro, name: tasks.add(asyncio.create_task(coro, name=name)))  # fmt: skip
    pod.on_surplus_claim = buyer.on_claim
    answers: asyncio.Queue[sc.SurplusAnswer] = asyncio.Queue()
    pv.on_surplus_answer = lambda _sender, a: answers.put_nowait(a)
    try:
        await pv.connect("127.0.0.1", pod.port, pod.node_id)
        stranger = sc.SurplusClaim(bytes(32), 0, P, 1, record(1, 60, 0), record(2, P, 1), "x")
        pv.send_raw(pod.node_id, sc.encode_claim(stranger))  # no channel yet: dropped unanswered
        await _until(lambda: buyer.counts)
        assert buyer.counts == {"no_channel": 1}
        await pod.lifecycle.open_channel(pv.node_id, 10**8)

        def pv_balance() -> int:
            return sum(c.local_balance for c in pv.switch.channels.values())

        before = pv_balance()
        s = int(time.time()) // P * P - 2 * P
        first, last = record(10, s, 1000), record(25, s + P, 1400)
        rec = pv.create_invoice(amount_msat(300, PRICE),
                                EnergyMemo("pv", s, s + P, kwh=0.3, kind=KIND_SURPLUS),
                                settlement_expiry_s=3600)  # fmt: skip
        claim = sc.SurplusClaim(sc.request_id_for(MID, s, s + P), s, s + P, 300, first, last,
                                rec.invoice)  # fmt: skip
        for _ in range(3):  # asked three times at once (a resend, a restart)
            pv.send_raw(pod.node_id, sc.encode_claim(claim))
        got = [await _answer(answers, claim.request_id) for _ in range(3)]
        assert {a.status for a in got} <= {sc.PAID, sc.PENDING} and sc.PAID in {
            a.status for a in got
        }  # the copies that came while it was being paid: pending
        pv.send_raw(pod.node_id, sc.encode_claim(claim))  # and once more, after it was paid
        assert (await _answer(answers, claim.request_id)).status == sc.PAID
        # the POD knows the preimage before pv's commitment with the fulfil is signed
        await _until(lambda: pv_balance() - before == amount_msat(300, PRICE))
        out: dict[str, Any] = {"paid": pv_balance() - before}
        assert pv.switch.invoices[rec.payment_hash].paid

        # the same period again with another receipt: refused, and nothing paid
        rec2 = pv.create_invoice(amount_msat(300, PRICE),
                                 EnergyMemo("pv", s, s + P, kwh=0.3, kind=KIND_SURPLUS),
                                 settlement_expiry_s=3600)  # fmt: skip
        pv.send_raw(pod.node_id, sc.encode_claim(
            sc.SurplusClaim(claim.request_id, s, s + P, 300, first, last, rec2.invoice)))  # fmt: skip
        out["again"] = await _answer(answers, claim.request_id)
        # the next period, starting from a record inside the range bought (a meter that sent
        # one interval twice): refused
        n = s + P
        rec3 = pv.create_invoice(amount_msat(100, PRICE),
                                 EnergyMemo("pv", n, n + P, kwh=0.1, kind=KIND_SURPLUS),
                                 settlement_expiry_s=3600)  # fmt: skip
        rid3 = sc.request_id_for(MID, n, n + P)
        pv.send_raw(pod.node_id, sc.encode_claim(sc.SurplusClaim(
            rid3, n, n + P, 100, record(24, n, 1390), record(30, n + P, 1500), rec3.invoice)))  # fmt: skip
        out["overlap"] = await _answer(answers, rid3)
        out["after"] = pv_balance() - before
        out["purchases"] = purchases.all()
        out["pod_payments"] = [h for h in pod.switch.payments if h == rec.payment_hash]
        return out
    finally:
        for t in tasks:
            t.cancel()
        await pv.stop()
        await pod.stop()
        purchases.close()


def test_a_claim_is_paid_once_and_no_energy_twice(tmp_path):
    out = asyncio.run(_scenario(tmp_path))
    assert out["paid"] == out["after"] == amount_msat(300, PRICE)
    assert out["again"].status == sc.REFUSED and "settled already" in out["again"].reason
    assert out["overlap"].status == sc.REFUSED and "overlap" in out["overlap"].reason
    assert [(p.wh, p.status, p.first_seq, p.last_seq) for p in out["purchases"]] == [
        (300, "paid", 10, 25)
    ]
    assert len(out["pod_payments"]) == 1
