"""What the sim reads back from the running system after (and during) a day: each node's stored
signed readings, its credit book, its anchors, its channels, and the ledger's view. Read-only:
SQLite files opened with `mode=ro`, the node's control API, the ledger's HTTP API.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gateway.ledger.client import LedgerClient
from hil_tests.rig.sim.grid import SimGrid, SimNode


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


def readings(n: SimNode) -> list[sqlite3.Row]:
    """The node's own meter's stored readings (kind 1), in sequence order."""
    if not n.meter_pubkey:
        return []
    from sgcore.reading import meter_id_from_pubkey

    return _rows(n.state_dir / "readings.sqlite3",
                 "SELECT * FROM readings WHERE meter_id = ? AND kind = 1 ORDER BY seq",
                 (meter_id_from_pubkey(n.meter_pubkey),))  # fmt: skip


def all_records(n: SimNode) -> list[sqlite3.Row]:
    if not n.meter_pubkey:
        return []
    from sgcore.reading import meter_id_from_pubkey

    return _rows(n.state_dir / "readings.sqlite3",
                 "SELECT seq, kind FROM readings WHERE meter_id = ? ORDER BY seq",
                 (meter_id_from_pubkey(n.meter_pubkey),))  # fmt: skip


def credit(n: SimNode) -> list[sqlite3.Row]:
    return _rows(n.state_dir / "tokens.sqlite3", "SELECT * FROM credit ORDER BY created_at")


def invoices(n: SimNode) -> list[dict[str, Any]]:
    """The receipts the node's channel node issued (its invoice store: amount, paid, expiry)."""
    import json

    db = n.state_dir / "node" / "channels.sqlite"
    return [json.loads(r["doc"]) for r in _rows(db, "SELECT doc FROM invoices")]


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
    for n in sg.nodes.values():
        try:
            listed = n.api("/channels")
        except Exception:  # noqa: BLE001 - a node that is down shows no channels
            continue
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


def balances(sg: SimGrid) -> dict[str, int]:
    """Each node's ledger balance (its deposit minus what it locked in channels, plus closes)."""
    client = LedgerClient(sg.ledger_urls, retries=3)
    out = {}
    for n in sg.nodes.values():
        try:
            out[n.name] = int(client.balance(n.node_id))
        except Exception:  # noqa: BLE001 - reported as missing
            pass
    return out


def ledger_channels(sg: SimGrid, ids: list[str]) -> dict[str, dict[str, Any]]:
    client = LedgerClient(sg.ledger_urls, retries=3)
    out = {}
    for cid in ids:
        try:
            out[cid] = client.channel(cid)
        except Exception:  # noqa: BLE001 - not a ledger channel id
            pass
    return out


def local_msat(sg: SimGrid) -> dict[str, int]:
    """What each node holds on its side of its open channels now."""
    return sg.local_msat()


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
