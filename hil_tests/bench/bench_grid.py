"""Three grid nodes on the bench: how fast a settled payment closes the relay; anchors and proofs.

    uv run python -m hil_tests.bench.bench_grid [--payments 20]

Real time (1x): real mosquitto, the real ledger process, three `sgrid gateway run` processes,
the real firmware on an emulated board. For each payment the producer makes a 5 Wh receipt through
its node, the consumer's node pays it (control API, as `sgrid pay` does), and the clock runs from
the moment the payment has settled (the payer holds the preimage) until the meter's relay line
closes; the meter then draws the credit (S0 pulses) so the relay opens for the next round.
Anchoring: the time from cutting a batch to its commit on the ledger (so the most anchors per
hour one node could make), and proof sizes: a reading's proof from `sgrid gateway proof` of the
rig's own batch, and proofs over synthetic batches of 1, 1,000 and 4,096 records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from gateway.ledger import merkle
from hil_tests.gateway.grid.grid_rig import GridRig, sgrid, wait_until

WH = 5


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _proof_size(n: int) -> int:
    """JSON bytes of a reading proof in a batch of `n` records (the Merkle part grows log2 n)."""
    records = [bytes([i % 256]) * 167 for i in range(n)]
    path = [h.hex() for h in merkle.audit_path(records, n // 2)]
    return len(json.dumps({"record": records[0].hex(), "index": n // 2, "count": n, "path": path}))


def run(payments: int, workdir: Path) -> dict[str, float]:
    rig = GridRig(workdir, speed=1.0, anchor_interval_s=1.0)
    rig.start()
    try:
        assert rig.meter is not None
        home, pv = rig.nodes["home"], rig.nodes["pv"]
        latencies: list[float] = []
        for i in range(payments):
            start = int(time.time()) + 900
            body = {"amount_msat": WH * 1000, "start": start, "end": start + 900,
                    "kwh": WH / 1000, "node": "pv"}  # fmt: skip
            invoice = pv.api("/invoice", body)["invoices"][0]
            result = home.api("/pay", {"invoice": invoice})
            settled = time.monotonic()
            if result["status"] != "succeeded":
                raise RuntimeError(f"payment {i} failed: {result}")
            while rig.relay() != 1:
                if time.monotonic() - settled > 30:
                    raise TimeoutError(f"relay never closed after payment {i}")
                time.sleep(0.002)
            latencies.append(time.monotonic() - settled)
            rig.meter.pulses(WH)  # draw the credit to 0: the relay opens again
            wait_until(lambda: rig.relay() == 0, 30, "the relay to open")
        floor = _token_floor(rig, max(2, min(5, payments)))
        anchor = _anchor_figures(rig)
    finally:
        rig.stop()
    return {
        "payments": payments,
        "close_p50_s": statistics.median(latencies),
        "close_p99_s": _quantile(latencies, 0.99),
        "close_max_s": max(latencies),
        "floor_p50_s": statistics.median(floor),
        "ratio_to_floor": statistics.median(latencies) / statistics.median(floor),
        **anchor,
        "proof_bytes_1": _proof_size(1),
        "proof_bytes_1000": _proof_size(1000),
        "proof_bytes_4096": _proof_size(4096),
    }


def _token_floor(rig: GridRig, rounds: int) -> list[float]:
    """The ceiling of this path measured in the same run: a token published straight to the
    meter (no payment, no gateway) until the relay closes, i.e. the meter's own share."""
    import paho.mqtt.client as mqtt

    from gateway.credit.issuer import TokenIssuer
    from gateway.crypto import SiteKey

    assert rig.meter is not None
    state = rig.nodes["home"].dir / "state"
    issuer = TokenIssuer(SiteKey.load(state / "site.key"), state / "tokens.sqlite3")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(rig.broker.host, rig.broker.port)
    client.loop_start()
    out = []
    try:
        for i in range(rounds):
            token = issuer.energy(rig.meter_id, WH, int(time.time()) + 3600,
                                  f"bench-floor-{i}-{time.time_ns()}".encode())  # fmt: skip
            t0 = time.monotonic()
            client.publish(f"sg/home/{rig.meter_id.hex()}/token", token, qos=1)
            wait_until(lambda: rig.relay() == 1, 30, "the relay to close (floor)")
            out.append(time.monotonic() - t0)
            rig.meter.pulses(WH)
            wait_until(lambda: rig.relay() == 0, 30, "the relay to open")
    finally:
        client.loop_stop()
        client.disconnect()
        issuer.close()
    return out


def _anchor_figures(rig: GridRig) -> dict[str, float]:
    import sqlite3

    home = rig.nodes["home"]
    db = home.dir / "state" / "anchors.sqlite3"

    def committed() -> list[tuple]:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(
                "SELECT batch_id, count, created_at FROM batches WHERE status='committed'"
            ).fetchall()
        finally:
            con.close()

    rows = wait_until(committed, 120, "an anchor of the home meter's readings")
    t0 = time.monotonic()
    proof = wait_until(
        lambda: _try_proof(home.config), 60, "a proof of reading 0 of the home meter"
    )
    proof_s = time.monotonic() - t0
    path = home.dir / "proof.json"
    path.write_text(proof)
    verdict = sgrid("ledger", "verify-proof", str(path), "--validator", rig.validator)
    if not verdict.startswith("OK"):
        raise RuntimeError(verdict)
    # submit -> commit of one anchor, timed against the ledger directly
    from gateway.ledger import txs
    from gateway.ledger.client import LedgerClient
    from gateway.ledger.keys import SigningKey
    from gateway.ln.node.keys import load_or_create

    client = LedgerClient(rig.ledger_url)
    chain = client.info()["chain"]
    key = SigningKey(load_or_create(home.dir / "state" / "node").node_priv)
    mid = rig.meter_id.hex()
    times = []
    for i in range(5):
        tx = txs.make("anchor", chain, nonce=f"bench-{i}-{time.time_ns()}", submitter=key.pubkey,
                      merkle_root=f"{time.time_ns():064x}"[-64:], count=1, meter_first=mid,
                      meter_last=mid, seq_first=0, seq_last=0, batch="bench").signed_by(key)  # fmt: skip
        t = time.monotonic()
        client.submit(tx)
        times.append(time.monotonic() - t)
    commit_s = statistics.median(times)
    return {
        "anchor_batches": len(rows),
        "anchored_readings": sum(r[1] for r in rows),
        "anchor_commit_s": commit_s,
        "anchors_per_hour_max": 3600 / commit_s,
        "proof_bytes_rig": len(proof),
        "proof_fetch_s": proof_s,
    }


def _try_proof(config: Path) -> str | None:
    import subprocess

    from hil_tests import REPO_ROOT
    from hil_tests.gateway.grid.grid_rig import SGRID

    out = subprocess.run(
        [*SGRID, "gateway", "proof", "--config", str(config), "--meter", "home", "--seq", "0"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return out.stdout if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--payments", type=int, default=20)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        r = run(args.payments, Path(tmp))
    print(f"payments: {r['payments']}")
    print(
        f"payment settled -> relay closed: p50 {r['close_p50_s'] * 1000:.0f} ms, "
        f"p99 {r['close_p99_s'] * 1000:.0f} ms, max {r['close_max_s'] * 1000:.0f} ms"
    )
    print(
        f"same run, token published straight to the meter -> relay closed (the meter's share): "
        f"p50 {r['floor_p50_s'] * 1000:.0f} ms; payment path / that floor: {r['ratio_to_floor']:.2f}"
    )
    print(
        f"anchor submit -> commit: {r['anchor_commit_s'] * 1000:.0f} ms "
        f"(at most {r['anchors_per_hour_max']:.0f} anchors/hour from one node; "
        f"the gateway makes 3600/anchor.interval_s, 1 by default)"
    )
    print(f"rig: {r['anchor_batches']} batches, {r['anchored_readings']} readings anchored")
    print(
        f"proof size: {r['proof_bytes_rig']} B (rig's batch), JSON Merkle part for a batch of "
        f"1 / 1000 / 4096 records: {r['proof_bytes_1']} / {r['proof_bytes_1000']} / "
        f"{r['proof_bytes_4096']} B"
    )
    return r


if __name__ == "__main__":
    main()
