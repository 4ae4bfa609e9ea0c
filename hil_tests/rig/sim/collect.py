"""What the sim reads back from the running system after (and during) a day: each node's stored
signed readings, its credit book, its anchors, its channels, and the ledger's view. Read-only:
SQLite files opened with `mode=ro`, the node's control API, the ledger's HTTP API.
"""

from __future__ import annotations

import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.ledger.client import LedgerClient
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.node import ASK_WORKERS, SimNode, close_client
from hil_tests.rig.sim.slot_balance import AHEAD_S, Sample
from hil_tests.rig.stored_readings import stored_rows
from sgcore.reading import KIND_READING, meter_id_from_pubkey


def _rows(db: Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # the table does not exist (yet)
        return []
    finally:
        con.close()


def readings(n: SimNode) -> list[dict[str, Any]]:
    """The node's own meter's stored readings (kind 1), in sequence order."""
    if not n.meter_pubkey:
        return []
    return stored_rows(n.state_dir / "readings.sqlite3", meter_id_from_pubkey(n.meter_pubkey),
                       KIND_READING)  # fmt: skip


def all_records(n: SimNode) -> list[dict[str, Any]]:
    if not n.meter_pubkey:
        return []
    return stored_rows(n.state_dir / "readings.sqlite3", meter_id_from_pubkey(n.meter_pubkey))


def credit(n: SimNode) -> list[sqlite3.Row]:
    return _rows(n.state_dir / "tokens.sqlite3", "SELECT * FROM credit ORDER BY created_at")


def invoices(n: SimNode) -> list[dict[str, Any]]:
    """The receipts the node's channel node issued (its invoice store: amount, paid, expiry)."""
    db = n.state_dir / "node" / "channels.sqlite"
    return [json.loads(r["doc"]) for r in _rows(db, "SELECT doc FROM invoices")]


def payments(n: SimNode) -> list[dict[str, Any]]:
    """The payments the node's channel node made (its payment store: amount, fee, status)."""
    db = n.state_dir / "node" / "channels.sqlite"
    return [json.loads(r["doc"]) for r in _rows(db, "SELECT doc FROM payments")]


def anchors(n: SimNode) -> dict[str, int]:
    rows = _rows(n.state_dir / "anchors.sqlite3",
                 "SELECT status, count(*) AS batches, sum(count) AS readings FROM batches "
                 "GROUP BY status")  # fmt: skip
    out = {"committed_batches": 0, "committed_readings": 0, "pending_batches": 0}
    for r in rows:
        if r["status"] == "committed":
            out["committed_batches"] = r["batches"]
            out["committed_readings"] = r["readings"] or 0
        else:
            out["pending_batches"] += r["batches"]
    return out


def channels(sg: SimGrid) -> list[dict[str, Any]]:
    """Every channel as both ends see it: {a, b, channel_id, state, capacity, a_msat, b_msat}."""
    by_id = {n.node_id: n.name for n in sg.nodes.values()}
    seen: dict[str, dict[str, Any]] = {}
    for name, listed in sg.ask_all("/channels").items():
        if isinstance(listed, Exception):
            continue  # a node that is down (or does not answer) shows no channels
        n = sg.nodes[name]
        for ch in listed:
            cid = ch.get("channel_id") or ch.get("id") or f"{n.name}-{ch['peer']}"
            peer = by_id.get(ch["peer"], ch["peer"][:12])
            entry = seen.setdefault(cid, {"channel_id": cid, "capacity_msat": ch["capacity_msat"]})
            entry.setdefault("ends", {})[n.name] = {
                "peer": peer, "state": ch["state"], "local_msat": ch["local_msat"],
                "remote_msat": ch["remote_msat"], "in_flight_msat": ch.get("in_flight_msat", 0),
                "settling": bool(ch.get("unsettled_updates") or ch.get("htlcs")),
            }  # fmt: skip
    return list(seen.values())


def channel_ids(sg: SimGrid) -> set[str]:
    """Every channel any node ever had: the ids its channel store holds (read-only, so a node
    too loaded to answer its control API in time still counts) and those the rig saw listed."""
    out = set(sg.channel_ids)
    for n in sg.nodes.values():
        rows = _rows(n.state_dir / "node" / "channels.sqlite", "SELECT id FROM channels")
        out |= {bytes(r["id"]).hex() for r in rows}
    return out


def ledger_channel_ids(sg: SimGrid) -> set[str]:
    """Every channel the ledger funded (a channel's id is its funding tx's id), from the first
    replica's block store (read-only): a channel funded while its nodes were still writing it to
    their own stores is in neither yet (56 nodes: one such channel's capacity went uncounted)."""
    from gateway.ledger.txs import Tx

    out = set()
    for row in _rows(sg.workdir / "ledger-0" / "ledger.sqlite", "SELECT txs FROM blocks"):
        for t in json.loads(row["txs"]):
            if t.get("body", {}).get("kind") == "channel_fund":
                out.add(Tx(t["body"], t.get("sigs", {})).id)
    return out


def balances(sg: SimGrid) -> dict[str, int]:
    """Each node's ledger balance (its deposit minus what it locked in channels, plus closes)."""
    client = LedgerClient(sg.ledger_urls, timeout=sg.api_timeout(), retries=3)
    out = {}
    try:
        for n in sg.nodes.values():
            try:
                out[n.name] = int(client.balance(n.node_id))
            except Exception:  # noqa: BLE001 - reported as missing
                pass
    finally:
        close_client(client)
    return out


def ledger_channels(sg: SimGrid, ids: list[str]) -> dict[str, dict[str, Any]]:
    client = LedgerClient(sg.ledger_urls, timeout=sg.api_timeout(), retries=3)
    out = {}
    try:
        for cid in ids:
            try:
                out[cid] = client.channel(cid)
            except Exception:  # noqa: BLE001 - not a ledger channel id
                pass
    finally:
        close_client(client)
    return out


def anchored_upto(n: SimNode) -> int:
    """The newest seq of the node's meter inside a committed anchor batch (-1: none)."""
    if not n.meter_pubkey:
        return -1
    from sgcore.reading import meter_id_from_pubkey

    rows = _rows(n.state_dir / "anchors.sqlite3",
                 "SELECT max(r.seq_last) AS upto FROM ranges r JOIN batches b USING (batch_id) "
                 "WHERE b.status = 'committed' AND r.meter_id = ?",
                 (meter_id_from_pubkey(n.meter_pubkey),))  # fmt: skip
    return int(rows[0]["upto"]) if rows and rows[0]["upto"] is not None else -1


_TOKEN_TAKEN = re.compile(r"token (\d+) accepted: credit")


def tokens_taken(n: SimNode) -> set[int]:
    """The ids of the tokens the node's meter accepted (its console), this boot and earlier."""
    return {int(m.group(1)) for line, _ in _console(n) if (m := _TOKEN_TAKEN.search(line))}


_RELAY_OPEN = re.compile(r"relay open \(reason 3, credit (-?\d+) Wh\)")


def meter_credit_view(n: SimNode) -> dict[str, int]:
    """The meter's own view of its credit: that of its last signed reading, the lowest at which
    it opened its relay for exhausted credit (its console), how often it did."""
    rows = readings(n)
    opened = [int(m.group(1)) for line, _ in _console(n) if (m := _RELAY_OPEN.search(line))]
    out = {"exhausted_openings": len(opened)}
    if rows:
        out["last_reading_credit_wh"] = int(rows[-1]["credit_wh"])
    if opened:
        out["lowest_opening_credit_wh"] = min(opened)
    return out


_CLOSED = re.compile(r"interval (\d+)\.\.(\d+) closed")
_CLOCK_SET = re.compile(r"clock set (?:by the gateway|from network time): (\d+)")


@dataclass(frozen=True)
class ClockSet:
    """The meter's clock was set (its console says so, or the rig shifted it): at a rig time in
    [earliest, latest]; `line`: the console index it is at."""

    line: int
    earliest: float
    latest: float


def _console(n: SimNode) -> list[tuple[str, float]]:
    b = n.board
    return list(zip(list(b.console), list(b.console_at), strict=False)) if b is not None else []


def clock_sets(n: SimNode, drifts: list[tuple[int, float, float]]) -> list[ClockSet]:
    """Every setting of the meter's clock: the console's "clock set ..: X" lines (the value X is
    never ahead of the rig's time at setting: the gateway's time when it sent the command, or
    network time, so the setting happened at X or later, and before the line was read) and the
    rig's own shifts (`drifts`: (console lines then, rig time, seconds))."""
    out = [ClockSet(i, float(m.group(1)) - AHEAD_S, t) for i, (line, t) in enumerate(_console(n))
           if (m := _CLOCK_SET.search(line))]  # fmt: skip
    out += [ClockSet(first, t, t) for first, t, _ in drifts]
    return sorted(out, key=lambda c: c.line)


def counter_samples(
    n: SimNode,
    drifts: list[tuple[int, float, float]] | None = None,
    offsets: list[tuple[float, float]] | None = None,
) -> list[Sample]:
    """The node's meter's counters at each interval close it signed (slot_balance.Sample), taken
    at a rig time tau in [lo, hi]: hi when the rig read the close on the console (it is printed
    after the counters were taken); lo from the meter's clock, which reached the stamp B at the
    close: tau >= B - (its clock - the rig's). That offset is the one the rig sampled (`offsets`:
    (rig time, offset), every slot) after the clock's last setting before the close and before
    the next one, within 1 s (whole seconds); without such a sample, the clock was at most
    AHEAD_S ahead (its settings never put it ahead), or a rig's `drifts` shift ahead."""
    console = _console(n)
    sets = clock_sets(n, drifts or [])
    offsets = sorted(offsets or [])
    rows = readings(n)
    closes = _match_closes(rows, console)
    out = []
    for r, got in zip(rows, closes, strict=True):
        end = int(r["end"])
        lo = end - AHEAD_S
        if got is not None:
            last = max((c for c in sets if c.line <= got[1]), key=lambda c: c.line, default=None)
            nxt = min((c for c in sets if c.line > got[1]), key=lambda c: c.line, default=None)
            if last is not None and any(last.line == f for f, _, _ in drifts or []):
                lo = end - AHEAD_S - max(s for f, _, s in drifts or [] if f == last.line)
            after = last.latest if last is not None else float("-inf")
            before = nxt.earliest if nxt is not None else float("inf")
            known = [off for t, off in offsets if after < t < before]
            if known and max(known) - min(known) <= 1.0:
                lo = max(lo, end - max(known) - 1.0)
        out.append(Sample(end, lo, got[0] if got else None,
                          int(r["import_wh"]) - int(r["export_wh"]),
                          int(r["import_wh"]) + int(r["export_wh"])))  # fmt: skip
    return out


def _match_closes(
    rows: list[sqlite3.Row], console: list[tuple[str, float]]
) -> list[tuple[float, int] | None]:
    """For each stored reading (in seq order), the console line of the close it holds: (when
    the rig read it, its index), None if not seen. Lines and readings come in the same order;
    a stamp may come twice (a clock set back closes the same stamps again), and one close may
    have more lines (a power cut before its journaling closes the interval again at boot: the
    reading holds the last close; of lines the same, the latest one is taken, the safe side)."""
    lines = [(i, int(m.group(2)), t) for i, (line, t) in enumerate(console)
             if (m := _CLOSED.search(line))]  # fmt: skip
    out: list[tuple[float, int] | None] = []
    p = 0
    for k, r in enumerate(rows):
        end = int(r["end"])
        nxt = int(rows[k + 1]["end"]) if k + 1 < len(rows) else None
        first = next((j for j in range(p, len(lines)) if lines[j][1] == end), None)
        if first is None:
            out.append(None)
            continue
        last = first
        for j in range(first + 1, len(lines)):
            if nxt is not None and lines[j][1] == nxt:
                break
            if lines[j][1] == end:
                last = j
        out.append((lines[last][2], lines[last][0]))
        p = last + 1
    return out


def clock_offsets(sg: SimGrid) -> dict[str, tuple[float, float]]:
    """Each running meter's (rig time, its clock minus the rig's; < 0: the meter is behind);
    the boards asked at once (at most ASK_WORKERS in flight)."""

    def offset(n: SimNode) -> tuple[float, float] | None:
        if n.board is None or not n.board.alive():
            return None
        try:
            st = n.board.state()
        except Exception:  # noqa: BLE001 - a board being reset
            return None
        if not st.get("rtc"):
            return None
        now = float(st["virtual_now"])  # type: ignore[arg-type]
        return (now, float(st["rtc"]) - now)  # type: ignore[arg-type]

    boards = [n for n in sg.nodes.values() if n.board is not None]
    if not boards:
        return {}
    with ThreadPoolExecutor(min(ASK_WORKERS, len(boards)), thread_name_prefix="rtc") as pool:
        got = dict(zip((n.name for n in boards), pool.map(offset, boards), strict=True))
    return {name: v for name, v in got.items() if v is not None}


def console_caught_up(sg: SimGrid) -> None:
    """Until the rig has read every stored reading's close line off its meter's console."""
    _console_caught_up([n for n in sg.nodes.values() if n.meter_pubkey and n.spec.kind != "pod"])


def _console_caught_up(nodes: list[SimNode], timeout: float = 10.0) -> None:
    """Until the rig has read the close line of every reading the gateways stored (the gateway
    may store a reading before the rig's console reader took in the line printed before it was
    signed), or `timeout` (real s): a close still unseen then is reported as such."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(None not in _match_closes(readings(n), _console(n)) for n in nodes):
            return
        time.sleep(0.2)


def slot_balance_inputs(
    sg: SimGrid, driver: Any, faults: Any, offsets: list[dict[str, tuple[float, float]]]
) -> dict[str, Any]:
    """The arguments of invariants.slot_energy_balance from what the day recorded: each meter's
    counter samples, the driver's steps per node, the BL0942 meters, the POD's energy and the
    line losses per slot, what power cuts may have cost (`offsets`: the clock samples)."""
    drifts = getattr(faults, "clock_drifts", {})
    meters = {k: n for k, n in sg.nodes.items() if n.meter_pubkey and n.spec.kind != "pod"}
    seen = {k: [o[k] for o in offsets if k in o] for k in meters}
    _console_caught_up(list(meters.values()))
    return {
        "samples": {k: counter_samples(n, drifts.get(k), seen[k]) for k, n in meters.items()},
        "steps": {k: driver.truth[k].steps for k in meters},
        "chip_meters": {k for k, n in meters.items() if n.spec.meter_source == "bl0942"},
        "pod_periods": {int(p): wh for p, wh in driver.pod_truth.period_wh.items()},
        "loss_periods": dict(driver.loss_period),
        "allowances": faults.allowances() if hasattr(faults, "allowances") else [],
    }
