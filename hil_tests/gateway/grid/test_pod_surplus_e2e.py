"""The long side of imbalance settlement, end to end: the POD pays the producer for what its
meter exported beyond what it sold, exactly once per period, across a SIGKILL of the producer (and of the POD) mid-claim.

Real processes as in test_grid_e2e.py (ledger, mosquitto, three `sgrid gateway run` from their
TOML configs), plus the producer's meter: the real firmware on an emulated board reading an
emulated BL0942 whose load the test sets (negative: export); the consumer buys without a meter of
its own (that path is test_grid_e2e.py's). Settlement periods of 60 virtual seconds at 20x: one
every 3 s.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from hil_tests.gateway.grid.grid_rig import SURPLUS_PRICE, GridRig, wait_until
from hil_tests.rig.stored_readings import stored_rows
from sgcore import reading as rc

PERIOD = 60
SOLD_WH, SOLD_MSAT = 20, 20_000


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = GridRig(tmp_path_factory.mktemp("surplus"), speed=20.0, home_meter=False, pv_meter=True)
    r.start()  # stops what it started if the bring-up fails
    try:
        r.balance0 = _pv_balance(r)  # type: ignore[attr-defined]
        yield r
    finally:
        r.stop()


def _pv_balance(rig: GridRig) -> int:
    return sum(int(c["local_msat"]) for c in rig.nodes["pv"].api("/channels"))


def _claims(rig: GridRig) -> list[dict[str, Any]]:
    cols = ("request_id, start, exported_wh, sold_wh, wh, amount_msat, payment_hash, status, "
            "sends, first, last")  # fmt: skip
    con = rig.state_db("pv", "surplus.sqlite3")
    try:
        rows = con.execute(f"SELECT {cols} FROM claims ORDER BY start").fetchall()
    finally:
        con.close()
    return [dict(zip(cols.split(", "), r, strict=True)) for r in rows]


def _cursor(rig: GridRig) -> int:
    con = rig.state_db("pv", "surplus.sqlite3")
    try:
        row = con.execute("SELECT period_end FROM cursor").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _bought(rig: GridRig) -> dict[int, dict[str, Any]]:
    cols = "start, wh, amount_msat, payment_hash, status"
    con = rig.state_db("pod", "pod_surplus.sqlite3")
    try:
        rows = con.execute(f"SELECT {cols} FROM bought").fetchall()
    finally:
        con.close()
    return {r[0]: dict(zip(cols.split(", "), r, strict=True)) for r in rows}


def _records(c: dict[str, Any]) -> tuple[rc.Reading, rc.Reading]:
    return rc.decode(bytes(c["first"]))[0], rc.decode(bytes(c["last"]))[0]


def _total_export(rig: GridRig) -> int:
    """The pv meter's export counter over its stored, signed readings: what the POD may pay for
    at most, all periods together."""
    exports = [
        r["export_wh"] for r in stored_rows(rig.nodes["pv"].dir / "state" / "readings.sqlite3")
    ]
    return max(exports) - min(exports)


def _settled(rig: GridRig, after: float) -> bool:
    """Every claim paid, and the periods up to `after` (virtual) examined."""
    claims = _claims(rig)
    return _cursor(rig) >= after and bool(claims) and all(c["status"] == "paid" for c in claims)


def _check_every_claim(rig: GridRig, sold_start: int) -> tuple[int, int, int]:
    claims, bought = _claims(rig), _bought(rig)
    assert sorted(bought) == [c["start"] for c in claims]  # one POD purchase per claimed period
    last_seq = -1
    for c in claims:
        sold = SOLD_WH if c["start"] == sold_start else 0
        first, last = _records(c)  # the meter-signed records the claim went with
        assert c["start"] <= first.end and last.end <= c["start"] + PERIOD
        assert first.seq >= last_seq  # claims never share energy: one starts where one ended
        last_seq = last.seq
        assert c["exported_wh"] == last.export_wh - first.export_wh
        assert c["sold_wh"] == sold and c["wh"] == c["exported_wh"] - sold
        assert c["amount_msat"] == c["wh"] * SURPLUS_PRICE // 1000
        b = bought[c["start"]]
        assert (b["wh"], b["amount_msat"], b["status"]) == (c["wh"], c["amount_msat"], "paid")
        assert bytes(b["payment_hash"]) == bytes(c["payment_hash"])
        status = rig.nodes["pod"].api("/payment", {"payment_hash": bytes(b["payment_hash"]).hex()})
        assert status["status"] == "succeeded"
    assert sum(c["wh"] for c in claims) + SOLD_WH <= _total_export(rig)
    total_msat = sum(c["amount_msat"] for c in claims)
    # the producer got the home's payment and each POD payment once: nothing twice, nothing lost
    # (awaited: the POD answers "paid" once it knows the preimage, before pv's commitment with
    # the fulfil is signed)
    want = SOLD_MSAT + total_msat

    def gained() -> int:
        return _pv_balance(rig) - rig.balance0  # type: ignore[attr-defined]

    wait_until(lambda: gained() >= want, 60, f"pv's balance to gain {want} msat")
    assert gained() == want
    return len(claims), sum(c["wh"] for c in claims), total_msat


def _stop_pod_kill_pv_restart(rig: GridRig) -> tuple[dict[str, Any], dict[str, Any]]:
    """SIGSTOP the POD until a new claim went out to it, SIGKILL the producer's gateway (the claim
    on disk, unanswered) and the POD's (the claim lost with it), restart both: the producer asks
    again with the same claim. Returns the claim before and after."""
    pod, pv = rig.nodes["pod"], rig.nodes["pv"]
    assert pod.gateway is not None and pv.gateway is not None
    before = {c["start"] for c in _claims(rig)}
    os.kill(pod.gateway.proc.pid, signal.SIGSTOP)
    try:
        asked = wait_until(
            lambda: [c for c in _claims(rig) if c["start"] not in before and c["sends"] >= 1],
            90, "a claim sent to the stopped POD")[0]  # fmt: skip
        pv.gateway.kill()
        pv.gateway.close()
    finally:
        pod.gateway.kill()  # SIGKILL works on a stopped process
        pod.gateway.close()
    rig.start_gateway(pod)
    rig.start_gateway(pv)
    rid = asked["request_id"]
    wait_until(lambda: any(c["request_id"] == rid and c["status"] == "paid" for c in _claims(rig)),
               120, "the claim to be paid after the restart")  # fmt: skip
    return asked, next(c for c in _claims(rig) if c["request_id"] == rid)


def test_the_pod_pays_exactly_the_unsold_surplus_once_per_period_across_a_sigkill(rig):
    wait_until(lambda: _cursor(rig) > 0, 60, "the producer to start examining its periods")
    pv = rig.nodes["pv"]
    sold_start = int(rig.clock.now()) // PERIOD * PERIOD + 4 * PERIOD
    out = pv.api("/invoice", {"amount_msat": SOLD_MSAT, "node": "pv", "start": sold_start,
                              "end": sold_start + PERIOD, "kwh": SOLD_WH / 1000})  # fmt: skip
    paid = rig.nodes["home"].api("/pay", {"invoice": out["invoices"][0]})  # the consumer buys it
    assert paid["status"] == "succeeded"
    rig.pv_power_w = -2400.0  # exports 40 Wh a virtual minute, 20 of them sold in one period
    wait_until(lambda: any(c["start"] == sold_start and c["status"] == "paid"
                           for c in _claims(rig)), 120, "the sold period's surplus to be paid")  # fmt: skip
    asked, after = _stop_pod_kill_pv_restart(rig)
    assert bytes(after["payment_hash"]) == bytes(asked["payment_hash"])  # the same receipt
    assert after["sends"] > asked["sends"]  # asked again after the restarts
    rig.pv_power_w = 0.0
    stop = rig.clock.now() + PERIOD
    wait_until(lambda: _settled(rig, stop), 120, "every exporting period to be settled")
    n, wh, msat = _check_every_claim(rig, sold_start)
    assert rig.nodes["pv"].api("/offers")["surplus_claims"] == {"paid": n}
    assert rig.nodes["pod"].api("/offers")["surplus_claims"].get("paid", 0) >= 1
    sold = next(c for c in _claims(rig) if c["start"] == sold_start)
    assert sold["exported_wh"] > SOLD_WH and sold["wh"] == sold["exported_wh"] - SOLD_WH
    print(
        f"\nSURPLUS: {n} POD payments, {wh} Wh settled, {msat} msat; the interrupted claim "
        f"was sent {asked['sends']} time(s) before the SIGKILL, {after['sends']} in all"
    )
