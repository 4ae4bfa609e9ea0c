"""SIGKILL a gateway at every step of channel updates, restart it, and check nothing was lost.

    uv run python -m hil_tests.gateway.ln.torture --steps 12       (the CI test runs a short variant)

For each crash point (before the store commit, after it but before sending, after sending) and
each step k, the victim (payer or payee, in turn) is started with SIGKILL fault injection at <point>:<k> (crashing_node.py), a
payment is attempted, the victim dies mid-update, restarts clean, and then: both sides agree on
the latest commitment, no HTLC is left in flight, balances + in-flight == capacity, the payee
gained exactly the sum of the payments the payer saw succeed, and every payment the payer
answered /pay for (succeeded or failed) still has that status after all the crashes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from gateway.ln.errors import LnError
from hil_tests.gateway.ln.node_procs import Grid, NodeProc, wait_until

POINTS = ("before_commit", "after_commit", "after_send")
AMOUNT = 10_000


def _settled(a: NodeProc, b: NodeProc) -> tuple[dict, dict] | None:
    try:
        return _agreed(a, b)
    except (LnError, StopIteration):
        return None


def _agreed(a: NodeProc, b: NodeProc) -> tuple[dict, dict] | None:
    ca, cb = a.channel_with(b), b.channel_with(a)
    if ca["commitment"] != cb["commitment"] or ca["htlcs"] or cb["htlcs"]:
        return None
    if ca["unsettled_updates"] or cb["unsettled_updates"]:
        return None
    if b.node_id not in a.api("/info")["peers"] or a.node_id not in b.api("/info")["peers"]:
        return None
    return ca, cb


def _pay_once(a: NodeProc, b: NodeProc, hashes: list[str], answers: dict[str, str]) -> None:
    """Attempt one payment; record its hash, and the payer's answer if it gave one."""
    now = int(time.time())
    body = {"amount_msat": AMOUNT, "start": now + 3600, "end": now + 7200, "kwh": 0.01}
    try:
        inv = b.api("/invoice", body)
    except LnError:
        return  # the payee died first: no invoice, no payment
    hashes.append(inv["payment_hashes"][0])
    try:
        answer = a.api("/pay", {"invoice": inv["invoices"][0], "timeout": 1.5}, timeout=5)
    except LnError:
        return  # the victim died under us (or the payment timed out): no answer to hold to
    answers[inv["payment_hashes"][0]] = answer["status"]


def _assert_answers_held(a: NodeProc, answers: dict[str, str], when: str) -> None:
    """What the payer answered /pay with is on its disk: a restarted payer says it too."""
    now = {h: a.api("/payment", {"payment_hash": h})["status"] for h in answers}
    changed = {h[:12]: (said, now[h]) for h, said in answers.items() if now[h] != said}
    assert not changed, f"{when}: answered (then, now): {changed}"


def run(root: Path, steps: int, points: tuple[str, ...] = POINTS, log=print) -> int:
    grid = Grid(root)
    try:
        a, b = grid.add("payer"), grid.add("payee")
        a.connect(b)
        a.api("/open", {"node_id": b.node_id, "amount_msat": 100_000_000})
        capacity = 100_000_000
        paid, rounds, crashed = 0, 0, 0
        hashes: list[str] = []
        answers: dict[str, str] = {}  # payment hash -> status the payer answered /pay with
        for point in points:
            for k in range(1, steps + 1):
                for victim in (a, b):
                    victim.stop()
                    victim.start(crash=f"{point}:{k}")
                    # the crash may already hit while reconnecting (reestablish is a step too)
                    wait_until(
                        lambda v=victim: v.proc.poll() is not None or _settled(a, b), 60, "ready"
                    )
                    for _ in range(max(2, k // 2)):  # enough payments to reach step k
                        if victim.proc.poll() is not None:
                            break
                        _pay_once(a, b, hashes, answers)
                    # a loaded host may still be on its way to step k: let the update run out
                    # (crash, or both sides agree) before stopping the victim, or the fault
                    # injection is cut short and fires in too few rounds
                    wait_until(
                        lambda v=victim: v.proc.poll() is not None or _settled(a, b), 60, "ran out"
                    )
                    if victim.proc is not None and victim.proc.poll() is None:
                        victim.stop()
                    victim.start()  # clean restart
                    if victim is a:  # at once, before the payee could tell it again
                        _assert_answers_held(a, answers, f"restart after {point}:{k}")
                    ca, cb = wait_until(lambda: _settled(a, b), 60, f"settle after {point}:{k}")
                    crashed += victim.crashed()
                    for ch in (ca, cb):
                        assert (
                            ch["local_msat"] + ch["remote_msat"] + ch["in_flight_msat"] == capacity
                        )
                    assert ca["local_msat"] == cb["remote_msat"]
                    rounds += 1
        wait_until(lambda: _settled(a, b), 60, "final settle")
        statuses = [a.api("/payment", {"payment_hash": h})["status"] for h in hashes]
        paid = AMOUNT * statuses.count("succeeded")
        assert "pending" not in statuses, statuses
        _assert_answers_held(a, answers, "after all the crashes")  # an answer is final
        assert "succeeded" in answers.values(), f"no payment was answered succeeded: {answers}"
        cb = b.channel_with(a)
        assert cb["local_msat"] == paid, (cb, paid)
        assert crashed > rounds // 2, f"fault injection fired only {crashed} of {rounds} times"
        log(
            f"torture: {crashed} SIGKILLs in {rounds} runs ({len(points)} points x {steps} steps"
            f" x 2 sides); {statuses.count('succeeded')} paid, {statuses.count('failed')} failed,"
            f" {statuses.count('unknown')} never started; {len(answers)} answers held; both sides"
            " agree, no msat lost"
        )
        return rounds
    finally:
        grid.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        run(Path(d), args.steps)


if __name__ == "__main__":
    main()
