"""The grid-node sections of the gateway config: [node], [ledger], [credit], [anchor], [market]
and [topology] (docs/gateway.md, "The grid node").

A gateway with `node.enabled = true` is a Seamless Grid node (seed 000 §IV): it runs the payment
channel node in-process, opens channels along the electrical topology, turns paid receipts into
credit tokens for its meter and anchors its readings on the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config_checks import (
    Check,
    boolean,
    check_table,
    host,
    int_in,
    num_in,
    pubkey,
    string,
    url,
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
METER_RE = re.compile(r"^([0-9a-f]{32}|[A-Za-z0-9][A-Za-z0-9_-]{0,31})$")
MAX_MSAT = 2**63 - 1
ROLES = ("producer", "consumer", "prosumer", "pod")
STRATEGIES = ("manual", "consumer", "producer", "pod")


@dataclass(frozen=True)
class NodeConfig:
    enabled: bool = False
    name: str = ""  # this node's name in [topology]; "" -> gateway.site
    listen: str = "127.0.0.1"  # BOLT-8 peer port: 0.0.0.0 / a LAN address between Pis
    port: int = 9735
    control_listen: str = "127.0.0.1"  # the control API (sgrid channel / sgrid pay)
    control_port: int = 9736
    data_dir: Path = Path("node")  # node seed and channel store, under gateway.state_dir
    meter: str = ""  # label or id of the meter credited with the energy this node buys
    channel_msat: int = 0  # capacity this node funds in each channel it opens (0: opens none)
    accept_max_msat: int = 0  # most of our balance we add to a channel a peer opens to us
    base_fee_msat: int = 1000  # forwarding fee: the grid charge (seed 000)
    fee_ppm: int = 100
    cltv_delta: int = 6
    tick_s: float = 0.2


@dataclass(frozen=True)
class LedgerSection:
    url: str = ""  # comma-separated replicas
    timeout_s: float = 15.0


@dataclass(frozen=True)
class CreditConfig:
    token_expiry_s: int = 7 * 86400  # how long a meter may take to accept a token
    resend_s: float = 5.0  # re-send an unanswered token this often


@dataclass(frozen=True)
class AnchorConfig:
    enabled: bool = True  # when a ledger is configured
    interval_s: float = 3600.0
    max_batch: int = 4096  # readings per anchor (proof size grows with log2 of it)
    retry_s: float = 10.0


@dataclass(frozen=True)
class MarketConfig:
    role: str = "consumer"
    # manual: pays only what `sgrid pay` is told to, forwards every offered receipt to the POD;
    # consumer / producer / pod: gateway/market/strategies.py decides on each offered receipt
    strategy: str = "manual"
    max_price_msat_per_kwh: int = 0  # consumer: the most it pays
    need_wh_per_hour: int = 0  # consumer: the energy it expects to import (flat forecast)
    tariff_msat_per_kwh: int = 0  # pod: price of last-resort energy; producer: its price
    feed_in_msat_per_kwh: int = 0  # pod: the most it pays for a receipt forwarded to it
    surplus_wh_per_hour: int = 0  # producer: what it expects to export (flat forecast)
    horizon_s: int = 86_400  # producer: issue receipts for windows starting within this
    last_resort: bool = False  # consumer: buy from the POD what offers did not cover (topup.py)
    plan_every_s: float = 60.0  # producer: how often it issues and offers receipts
    forward_to: str = ""  # topology name of the node that gets what we do not buy (the POD)
    offer_hops: int = 3  # how far a receipt offer of ours may travel
    imbalance_price_msat_per_kwh: int = 0  # pod: price of imbalance receipts
    settle_period_s: int = 900  # pod: the settlement period (15-minute slots)
    # pod: what it pays per kWh a node's meter injected beyond what the node sold in a period
    # (0: it buys no surplus); other nodes: what they ask for it (0: they do not ask)
    surplus_price_msat_per_kwh: int = 0
    # Wh per window from a forecast service (gateway/grid/forecast_source.py), re-read when it
    # changes; windows it does not list get the flat need/surplus above. Under state_dir if relative
    forecast_file: Path | None = None


@dataclass(frozen=True)
class TopologyNode:
    name: str
    bus: str  # the feeder point the node hangs off
    node_id: str  # its channel node public key (`sgrid gateway node-id`)
    host: str
    port: int = 9735


@dataclass(frozen=True)
class TopologyConfig:
    nodes: tuple[TopologyNode, ...] = ()
    lines: tuple[tuple[str, str], ...] = ()  # feeder points joined by a line
    rebalance: tuple[tuple[str, str], ...] = ()  # extra channels between node names

    def node(self, name: str) -> TopologyNode | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass(frozen=True)
class GridConfig:
    node: NodeConfig = field(default_factory=NodeConfig)
    ledger: LedgerSection = field(default_factory=LedgerSection)
    credit: CreditConfig = field(default_factory=CreditConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    topology: TopologyConfig = field(default_factory=TopologyConfig)


def _msat(v: Any) -> str | None:
    return int_in(0, MAX_MSAT)(v)


SCHEMA: dict[str, dict[str, tuple[Check, bool]]] = {
    "node": {
        "enabled": (boolean, False),
        "name": (string(NAME_RE), False),
        "listen": (host, False),
        "port": (int_in(1, 65535), False),
        "control_listen": (host, False),
        "control_port": (int_in(1, 65535), False),
        "data_dir": (string(re.compile(r"^.+$")), False),
        "meter": (string(METER_RE), False),
        "channel_msat": (_msat, False),
        "accept_max_msat": (_msat, False),
        "base_fee_msat": (int_in(0, 10**9), False),
        "fee_ppm": (int_in(0, 1_000_000), False),
        "cltv_delta": (int_in(1, 1000), False),
        "tick_s": (num_in(0.01, 60), False),
    },
    "ledger": {"url": (string(), False), "timeout_s": (num_in(0.5, 300), False)},
    "credit": {
        "token_expiry_s": (int_in(60, 365 * 86400), False),
        "resend_s": (num_in(0.1, 3600), False),
    },
    "anchor": {
        "enabled": (boolean, False),
        "interval_s": (num_in(1, 7 * 86400), False),
        "max_batch": (int_in(1, 1 << 20), False),
        "retry_s": (num_in(0.1, 3600), False),
    },
    "market": {
        "role": (string(choices=ROLES), False),
        "strategy": (string(choices=STRATEGIES), False),
        "max_price_msat_per_kwh": (_msat, False),
        "need_wh_per_hour": (int_in(0, 10**9), False),
        "tariff_msat_per_kwh": (_msat, False),
        "feed_in_msat_per_kwh": (_msat, False),
        "surplus_wh_per_hour": (int_in(0, 10**9), False),
        "horizon_s": (int_in(60, 7 * 86_400), False),
        "plan_every_s": (num_in(0.1, 86_400), False),
        "last_resort": (boolean, False),
        "forward_to": (string(re.compile(r"^$|" + NAME_RE.pattern)), False),
        "offer_hops": (int_in(0, 8), False),
        "imbalance_price_msat_per_kwh": (_msat, False),
        "settle_period_s": (int_in(60, 86400), False),
        "surplus_price_msat_per_kwh": (int_in(0, 10**9), False),
        "forecast_file": (string(re.compile(r"^.+$")), False),
    },
}

_TOPO_NODE: dict[str, tuple[Check, bool]] = {
    "name": (string(NAME_RE), True),
    "bus": (string(NAME_RE), True),
    "node_id": (pubkey, True),
    "host": (host, True),
    "port": (int_in(1, 65535), False),
}
_PAIR: dict[str, tuple[Check, bool]] = {
    "a": (string(NAME_RE), True),
    "b": (string(NAME_RE), True),
}


def _check_urls(v: str, problems: list[str]) -> None:
    for part in v.split(","):
        error = url(part.strip())
        if error:
            problems.append(f"ledger.url: {error}")
            return


def _topology(raw: Any, problems: list[str]) -> TopologyConfig:
    if not isinstance(raw, dict):
        problems.append("topology: must be a table")
        return TopologyConfig()
    for key in raw:
        if key not in ("node", "line", "rebalance"):
            problems.append(f"topology.{key}: unknown key (expected node, line, rebalance)")
    tables: dict[str, list[dict[str, Any]]] = {}
    for kind, schema in (("node", _TOPO_NODE), ("line", _PAIR), ("rebalance", _PAIR)):
        entries = raw.get(kind, [])
        if not isinstance(entries, list):
            problems.append(f"topology.{kind}: must be an array of tables ([[topology.{kind}]])")
            entries = []
        tables[kind] = [
            check_table(f"topology.{kind}[{i}]", e, schema, problems) for i, e in enumerate(entries)
        ]
    names: set[str] = set()
    ids: set[str] = set()
    for i, n in enumerate(tables["node"]):
        if n.get("name") in names:
            problems.append(f"topology.node[{i}].name: duplicate node {n['name']!r}")
        if n.get("node_id") in ids:
            problems.append(f"topology.node[{i}].node_id: the same node id twice")
        names.add(n.get("name", ""))
        ids.add(n.get("node_id", ""))
    buses = {n.get("bus") for n in tables["node"]}
    for i, line in enumerate(tables["line"]):
        for end in ("a", "b"):
            if end in line and line[end] not in buses:
                problems.append(f"topology.line[{i}].{end}: no node hangs off {line[end]!r}")
    for i, pair in enumerate(tables["rebalance"]):
        for end in ("a", "b"):
            if end in pair and pair[end] not in names:
                problems.append(
                    f"topology.rebalance[{i}].{end}: no [[topology.node]] {pair[end]!r}"
                )
    required = {"name", "bus", "node_id", "host"}
    nodes = tuple(TopologyNode(**n) for n in tables["node"] if required <= set(n))
    return TopologyConfig(
        nodes,
        tuple((p["a"], p["b"]) for p in tables["line"] if len(p) == 2),
        tuple((p["a"], p["b"]) for p in tables["rebalance"] if len(p) == 2),
    )


def parse_grid(raw: dict[str, Any], site: str, state_dir: Path, problems: list[str]) -> GridConfig:
    """Check the grid sections of a parsed TOML document, appending every problem to `problems`."""
    s = {name: check_table(name, raw.get(name, {}), sch, problems) for name, sch in SCHEMA.items()}
    topo = _topology(raw.get("topology", {}), problems)
    node = dict(s["node"])
    node.setdefault("name", site if NAME_RE.match(site) else "")
    data_dir = Path(node.pop("data_dir", "node"))
    node["data_dir"] = data_dir if data_dir.is_absolute() else state_dir / data_dir
    if "url" in s["ledger"]:
        _check_urls(s["ledger"]["url"], problems)
    market = dict(s["market"])
    if "forecast_file" in market:
        ff = Path(market["forecast_file"])
        market["forecast_file"] = ff if ff.is_absolute() else state_dir / ff
    if node.get("enabled"):
        if not s["ledger"].get("url"):
            problems.append("ledger.url: required when node.enabled = true")
        if node.get("listen") == node.get("control_listen", "127.0.0.1") and node.get(
            "port", 9735
        ) == node.get("control_port", 9736):
            problems.append("node.control_port: must differ from node.port")
        if topo.nodes and topo.node(node["name"]) is None:
            problems.append(f"node.name: {node['name']!r} is not a [[topology.node]]")
        me = topo.node(node["name"])
        if me is not None and me.port != node.get("port", 9735):
            problems.append(
                f"node.port: {node.get('port', 9735)} but [[topology.node]] {me.name!r} "
                f"says peers reach it on port {me.port}"
            )
    forward = market.get("forward_to", "")
    if forward and topo.node(forward) is None:
        problems.append(f"market.forward_to: no [[topology.node]] {forward!r}")
    if market.get("strategy") == "consumer" and not market.get("max_price_msat_per_kwh"):
        problems.append("market.max_price_msat_per_kwh: required (> 0) for strategy consumer")
    if market.get("strategy") == "producer" and not market.get("tariff_msat_per_kwh"):
        problems.append("market.tariff_msat_per_kwh: required (> 0) for strategy producer")
    if market.get("strategy") == "pod" and not market.get("tariff_msat_per_kwh"):
        problems.append("market.tariff_msat_per_kwh: required (> 0) for strategy pod")
    if market.get("surplus_price_msat_per_kwh") and market.get("role") != "pod":
        if not node.get("meter") or not forward:
            problems.append(
                "market.surplus_price_msat_per_kwh: selling the surplus to the POD needs "
                "node.meter (the meter that exports) and market.forward_to (the POD)"
            )
    if market.get("role") == "pod" and market.get("strategy", "manual") not in ("pod", "manual"):
        problems.append("market.strategy: a pod node runs strategy 'pod' (or 'manual')")
    return GridConfig(
        node=NodeConfig(**node),
        ledger=LedgerSection(**s["ledger"]),
        credit=CreditConfig(**s["credit"]),
        anchor=AnchorConfig(**s["anchor"]),
        market=MarketConfig(**market),
        topology=topo,
    )
