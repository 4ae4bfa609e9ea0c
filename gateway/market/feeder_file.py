"""A feeder from a pandapower network file (pandapower's JSON, `pandapower.to_json`).

    feeder = load_pandapower(Path("dorfnetz.json"), {"home-1": "loadbus_1_1", ...})

The radial LV part is taken from the transformer's low-voltage bus (or the external grid's bus
when there is no transformer) along the network's lines; every line must belong to it. Bus and
line ids are their pandapower names (or `bus<index>` / `line<index>` when unnamed or not unique).
The network's own loads and generators stay in it as the untraded base flow; each market node
gets a load of its own at its bus. Line lengths are rounded to whole metres for the topology
(the power flow uses the network's own values).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.market.errors import TopologyError
from gateway.market.feeder import Feeder
from gateway.market.topology import Limits, parse_topology


def _names(table: Any, prefix: str) -> dict[int, str]:
    raw = {int(i): table.at[i, "name"] for i in table.index}
    counts: dict[str, int] = {}
    for v in raw.values():
        if isinstance(v, str) and v:
            counts[v] = counts.get(v, 0) + 1
    return {
        i: v if isinstance(v, str) and v and counts[v] == 1 and len(v) <= 64 else f"{prefix}{i}"
        for i, v in raw.items()
    }


def load_pandapower(path: Path, nodes: Mapping[str, str], limits: Limits | None = None) -> Feeder:
    """The feeder of the pandapower network in `path`, market nodes at `nodes[node] = bus id`."""
    import pandapower as pp

    try:
        net = pp.from_json(str(path))
    except Exception as exc:  # pandapower raises bare exceptions for unreadable files
        raise TopologyError(str(path), f"not a pandapower network file: {exc}") from exc
    bus_name = _names(net.bus, "bus")
    if len(net.trafo):
        root = int(net.trafo.lv_bus.iloc[0])
    elif len(net.ext_grid):
        root = int(net.ext_grid.bus.iloc[0])
    else:
        raise TopologyError(str(path), "has neither a transformer nor an external grid")
    line_name = _names(net.line, "line")
    lines = [
        {
            "id": line_name[int(i)],
            "from": bus_name[int(net.line.at[i, "from_bus"])],
            "to": bus_name[int(net.line.at[i, "to_bus"])],
            "length_m": max(1, round(float(net.line.at[i, "length_km"]) * 1000)),
            "std_type": str(net.line.at[i, "std_type"] or "")[:64] or "custom",
        }
        for i in net.line.index
    ]
    used = {bus_name[root]} | {ln["from"] for ln in lines} | {ln["to"] for ln in lines}
    lim = limits or Limits()
    topo = parse_topology(
        {
            "name": str(net.name or Path(path).stem)[:64] or "feeder",
            "vn_kv": float(net.bus.at[root, "vn_kv"]),
            "root": bus_name[root],
            "buses": sorted(used),
            "lines": lines,
            "nodes": [{"node": n, "bus": b} for n, b in sorted(nodes.items())],
            "limits": {
                "max_line_loading_percent": lim.max_line_loading_percent,
                "vm_min_permille": lim.vm_min_permille,
                "vm_max_permille": lim.vm_max_permille,
            },
        }
    )
    index = {name: i for i, name in bus_name.items() if name in used}
    return Feeder(topo, net=net, bus_index=index)
