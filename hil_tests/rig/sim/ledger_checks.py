"""What the ledger says at the end of a run: the inclusion proofs of a few readings, the
balances and channels read at one height, `sgrid ledger verify`, the replicas' agreement."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from hil_tests.rig.sim import collect
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.node import SGRID, close_client


def check_proofs(sg: SimGrid, per_meter: int = 3) -> tuple[int, int]:
    """`sgrid gateway proof` for a few readings of each meter (first, middle, last anchored), each
    checked offline with `sgrid ledger verify-proof`: the same commands, invoked in-process (two
    interpreter start-ups per proof cost minutes on a loaded 2-core machine)."""
    from click.testing import CliRunner

    from gateway.cli import main as sgrid_main

    runner = CliRunner()
    checked = ok = 0
    for n in sg.nodes.values():
        upto = collect.anchored_upto(n)
        if upto < 0:
            continue
        for seq in sorted({0, upto // 2, upto})[:per_meter]:
            proof = n.dir / f"proof-{seq}.json"
            got = runner.invoke(sgrid_main, ["gateway", "proof", "--config", str(n.config),
                                             "--meter", n.name, "--seq", str(seq)])  # fmt: skip
            checked += 1
            if got.exit_code != 0:
                continue
            proof.write_text(got.stdout)
            ver = runner.invoke(sgrid_main, ["ledger", "verify-proof", str(proof),
                                             "--validator", sg.validator])  # fmt: skip
            ok += ver.exit_code == 0
    return checked, ok


def locked_on_ledger(channels: dict[str, dict[str, Any]]) -> int:
    """What the ledger holds locked in `channels` (id -> the ledger's view): open or closing
    ones whole, settled ones their pending HTLC outputs (as the ledger counts it,
    gateway/ledger/state.py)."""
    total = 0
    for ch in channels.values():
        if ch.get("status") in ("open", "closing"):
            total += int(ch.get("capacity_msat", 0))
        elif ch.get("status") == "settled":
            total += sum(int(h["amount_msat"]) for h in ch.get("htlcs", [])
                         if h.get("outcome") == "pending")  # fmt: skip
    return total


_MOVES_MONEY = re.compile(r"channel_|deposit|withdraw")  # the ledger's kinds that move money


def ledger_money(
    sg: SimGrid, ids: set[str], tries: int = 5
) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, Any]]:
    """Every node's ledger balance and what the channels hold, read at one height of the chain:
    the nodes keep closing and opening channels while the rig reads (a close between reading
    the balances and the channel took its capacity out of both), so the reading is repeated
    until no block with a transaction was sealed during it (`ledger_quiet`: how many tries)."""
    from gateway.ledger.client import LedgerClient

    client = LedgerClient(sg.ledger_urls, timeout=sg.api_timeout(), retries=3)
    try:
        for attempt in range(1, tries + 1):
            h0 = int(client.info()["height"])
            balances = collect.balances(sg)
            channels = collect.ledger_channels(sg, sorted(ids | collect.ledger_channel_ids(sg)))
            h1 = int(client.info()["height"])
            moved = sum(1 for h in range(h0 + 1, h1 + 1) for tx in client.block(h)["txs"]
                        if _MOVES_MONEY.match(str(tx.get("body", {}).get("kind"))))  # fmt: skip
            if not moved:
                return balances, channels, {"read_at_height": h1, "reads": attempt}
    finally:
        close_client(client)
    return balances, channels, {"read_at_height": None, "reads": tries, "txs_during_read": moved}


def ledger_verify(sg: SimGrid) -> tuple[bool, str]:
    """`sgrid ledger verify` on every replica's own copy of the chain (one, or three on etcd)."""
    ok, out, passed = True, "", 0
    replicas = len(sg.ledger_procs)
    for i in range(replicas):
        cfg = sg.workdir / f"ledger-{i}" / "ledger.toml"
        got = subprocess.run([*SGRID, "ledger", "verify", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        ok = ok and got.returncode == 0
        passed += got.returncode == 0
        out += f"ledger-{i}: {got.stdout}{got.stderr}\n"
    if replicas > 1:  # the report keeps the last line
        out += f"{passed} of {replicas} replicas verify\n"
    return ok, out


def replicas_agree(sg: SimGrid, timeout: float = 60.0) -> dict[str, Any]:
    """Replicated mode: every replica holds the same chain. The tips move on (blocks keep being
    cut), so the replicas are compared at the lowest height all of them have reached, which must
    be at least the height the first replica had at the start (they all caught up)."""
    from gateway.ledger.client import LedgerClient

    clients = [LedgerClient(u, retries=3) for u in sg.ledger_urls]
    try:
        target = int(clients[0].info()["height"])
        deadline = time.monotonic() + timeout
        while True:
            heights = [int(c.info()["height"]) for c in clients]
            if min(heights) >= target or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        h = min(heights)
        hashes = [str(c.block(h)["hash"]) for c in clients]
    finally:
        for c in clients:
            c._drop(c.urls[0])
    return {"holds": h >= target and len(set(hashes)) == 1, "replicas": len(clients),
            "height": h, "heights": heights, "hashes_at_height": hashes}  # fmt: skip
