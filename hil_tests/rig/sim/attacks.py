"""The malicious meter: a meter's own broker account publishes forged and replayed readings.

It connects as the real meter would (its account, TLS) and publishes, on its own reading topic,
(a) a copy of a reading the gateway already stored (a replay), (b) that reading with one byte of
its energy changed (a forgery: the signature no longer matches), (c) garbage, and (d) a reading
for another meter (the ACL refuses it; were it delivered, the gateway would see a topic mismatch).
Nothing of it may reach the store: the gateway refuses each with its reason.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.node import SimNode
from sgcore import topics


def _stored_count(n: SimNode) -> int:
    con = sqlite3.connect(f"file:{n.state_dir / 'readings.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return int(con.execute("SELECT count(*) FROM readings").fetchone()[0])
    finally:
        con.close()


def _stored_record(n: SimNode, seq: int | None = None) -> tuple[int, bytes] | None:
    """(seq, record bytes) of the newest stored reading, or of `seq`."""
    con = sqlite3.connect(f"file:{n.state_dir / 'readings.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(readings)")]
        blob = next((c for c in ("record", "raw", "data") if c in cols), None)
        if blob is None:
            return None
        where, args = ("WHERE seq = ?", (seq,)) if seq is not None else ("", ())
        row = con.execute(
            f"SELECT seq, {blob} FROM readings {where} ORDER BY seq DESC LIMIT 1", args
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None
    finally:
        con.close()


def _rejected(n: SimNode) -> float:
    assert n.gateway is not None
    values = n.gateway.metrics(n.metrics_port)
    return sum(v for k, v in values.items() if k.startswith("sgrid_readings_rejected_total"))


def forge_and_replay(sg: SimGrid, n: SimNode, copies: int = 20) -> dict[str, Any]:
    before = _stored_count(n)
    newest = _stored_record(n)
    record = newest[1] if newest else None
    rejected_before = _rejected(n)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"evil-{n.meter_hex[:8]}")
    client.username_pw_set(n.meter_hex, n.broker_password)
    client.tls_set(ca_certs=str(sg.broker_dir / "ca.pem"))
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("localhost", sg.broker.port)
    client.loop_start()
    sent = 0
    try:
        connected.wait(10)
        own = topics.meter_topic(n.name, n.meter_hex, "reading")
        other = next((m for m in sg.nodes.values() if m.meter_hex and m is not n), None)
        payloads: list[tuple[str, bytes]] = [(own, b"\x00" * 167), (own, b"not a reading")]
        if record is not None:
            forged = bytearray(record)
            forged[40] ^= 0x01  # an energy field: the signature no longer covers it
            payloads += [(own, record), (own, bytes(forged))]
            if other is not None:
                payloads.append(
                    (topics.meter_topic(other.name, other.meter_hex, "reading"), record)
                )
        for _ in range(copies):
            for topic, payload in payloads:
                client.publish(topic, payload, qos=1)
                sent += 1
        time.sleep(2.0)
    finally:
        client.loop_stop()
        client.disconnect()
    after = _stored_count(n)
    rejected = _rejected(n) - rejected_before
    same = newest is not None and _stored_record(n, newest[0]) == newest
    return {"holds": same and rejected > 0, "sent": sent, "rejected": rejected,
            "stored_record_unchanged": same, "stored_before": before, "stored_after": after}  # fmt: skip
