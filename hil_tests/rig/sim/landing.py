"""The end of a span: until the meters' last intervals are closed, stored and anchored."""

from __future__ import annotations

import time
from typing import Any

from hil_tests.rig.sim import collect
from hil_tests.rig.sim.grid import SimGrid


def journaled(sg: SimGrid) -> dict[str, list[int]]:
    """The sequence numbers each meter has in its journal now (read from its flash)."""
    from hil_tests.rig.flash_reader import journal_records

    out = {}
    for n in sg.nodes.values():
        if n.board is not None:
            out[n.name] = sorted(journal_records(n.board.flash_dir))
    return out


def wait_closed(sg: SimGrid, t_end: float, timeout: float) -> None:
    """Until every meter has signed and the gateway stored the interval that holds `t_end`, and
    two more intervals closed after the loads went quiet (a meter whose clock runs ahead has
    closed "the interval holding t_end" before the last energy came; the first interval
    closed after the span holds it, the second one any pulse the firmware took in late)."""
    from hil_tests.rig.flash_reader import journal_records

    metered = [n for n in sg.nodes.values() if n.meter_pubkey and n.board is not None]
    upto = {n.name: max(journal_records(n.board.flash_dir), default=-1) for n in metered}  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = {n.name: collect.readings(n) for n in metered}
        if all(r and r[-1]["end"] >= t_end and sum(int(x["seq"]) > upto[name] for x in r) >= 2
               for name, r in rows.items()):  # fmt: skip
            return
        time.sleep(0.5)


def wait_landed(sg: SimGrid, journaled: dict[str, list[int]], timeout: float) -> None:
    """Until every record the meters had journaled is stored by its gateway and anchored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_landed(sg.nodes[name], seqs) for name, seqs in journaled.items()):
            return
        time.sleep(0.5)


def _landed(n: Any, seqs: list[int]) -> bool:
    if not seqs:
        return True
    stored = {int(r["seq"]) for r in collect.all_records(n)}
    return set(seqs) <= stored and collect.anchored_upto(n) >= max(seqs)
