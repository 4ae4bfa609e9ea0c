"""The feeder topology file: buses, lines, where each market node is connected (pure; no pandapower).

JSON (docs/market.md §7), shared by the market's feeder check and `sgrid sim`:

    {"name": "feeder-1",
     "vn_kv": 0.4,
     "root": "b0",                         # the bus of the grid connection (POD / transformer)
     "buses": ["b0", "b1", "b2"],
     "lines": [{"id": "l1", "from": "b0", "to": "b1", "length_m": 40, "std_type": "NAYY 4x150 SE"}],
     "nodes": [{"node": "home-1", "bus": "b2", "microgrid": "mg-1"}],
     "limits": {"max_line_loading_percent": 100, "vm_min_permille": 950, "vm_max_permille": 1050}}

`std_type` is a pandapower line standard type (default "NAYY 4x150 SE"); `microgrid` defaults to
the topology's name. The network must be a tree (radial feeder) rooted at `root`: every bus is
reached from the root by exactly one path. `load_topology` raises TopologyError naming the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.market.errors import TopologyError

DEFAULT_LINE_TYPE = "NAYY 4x150 SE"


@dataclass(frozen=True)
class Line:
    id: str
    from_bus: str
    to_bus: str
    length_m: int
    std_type: str = DEFAULT_LINE_TYPE


@dataclass(frozen=True)
class Limits:
    max_line_loading_percent: int = 100
    vm_min_permille: int = 950
    vm_max_permille: int = 1050


@dataclass(frozen=True)
class Topology:
    name: str
    vn_kv: float
    root: str
    buses: tuple[str, ...]
    lines: tuple[Line, ...]
    node_bus: tuple[tuple[str, str], ...]  # (node, bus), sorted by node
    node_microgrid: tuple[tuple[str, str], ...]
    limits: Limits = field(default_factory=Limits)

    def bus_of(self, node: str) -> str | None:
        return dict(self.node_bus).get(node)

    def microgrid_of(self, node: str) -> str | None:
        return dict(self.node_microgrid).get(node)

    def tree(self) -> dict[str, tuple[str, str]]:
        """bus -> (parent bus, line id) towards the root (the root has no entry)."""
        adjacent: dict[str, list[tuple[str, str]]] = {b: [] for b in self.buses}
        for line in self.lines:
            adjacent[line.from_bus].append((line.to_bus, line.id))
            adjacent[line.to_bus].append((line.from_bus, line.id))
        parent: dict[str, tuple[str, str]] = {}
        seen = {self.root}
        stack = [self.root]
        while stack:
            bus = stack.pop()
            for other, line_id in sorted(adjacent[bus]):
                if other in seen:
                    continue
                seen.add(other)
                parent[other] = (bus, line_id)
                stack.append(other)
        return parent

    def to_json(self) -> dict[str, Any]:
        mg = dict(self.node_microgrid)
        return {
            "name": self.name,
            "vn_kv": self.vn_kv,
            "root": self.root,
            "buses": list(self.buses),
            "lines": [
                {
                    "id": ln.id,
                    "from": ln.from_bus,
                    "to": ln.to_bus,
                    "length_m": ln.length_m,
                    "std_type": ln.std_type,
                }
                for ln in self.lines
            ],
            "nodes": [{"node": n, "bus": b, "microgrid": mg[n]} for n, b in self.node_bus],
            "limits": {
                "max_line_loading_percent": self.limits.max_line_loading_percent,
                "vm_min_permille": self.limits.vm_min_permille,
                "vm_max_permille": self.limits.vm_max_permille,
            },
        }


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= 64:
        raise TopologyError(where, "must be a string of 1..64 characters")
    return v


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise TopologyError(where, f"must be an integer in {lo}..{hi}")
    return v


def parse_topology(value: Any) -> Topology:
    if not isinstance(value, dict):
        raise TopologyError("topology", "must be a JSON object")
    for key in ("name", "root", "buses", "lines", "nodes"):
        if key not in value:
            raise TopologyError(key, "is missing")
    name = _str(value["name"], "name")
    vn_kv = value.get("vn_kv", 0.4)
    if isinstance(vn_kv, bool) or not isinstance(vn_kv, int | float) or not 0 < vn_kv <= 400:
        raise TopologyError("vn_kv", "must be a voltage in kV (0..400]")
    if not isinstance(value["buses"], list) or not value["buses"]:
        raise TopologyError("buses", "must be a non-empty list of bus ids")
    buses = tuple(_str(b, f"buses[{i}]") for i, b in enumerate(value["buses"]))
    if len(set(buses)) != len(buses):
        raise TopologyError("buses", "bus ids must be unique")
    root = _str(value["root"], "root")
    if root not in buses:
        raise TopologyError("root", f"{root!r} is not a bus")
    if not isinstance(value["lines"], list):
        raise TopologyError("lines", "must be a list")
    lines = []
    for i, raw in enumerate(value["lines"]):
        where = f"lines[{i}]"
        if not isinstance(raw, dict):
            raise TopologyError(where, "must be an object")
        for key in ("id", "from", "to", "length_m"):
            if key not in raw:
                raise TopologyError(f"{where}.{key}", "is missing")
        for key in ("from", "to"):
            if raw[key] not in buses:
                raise TopologyError(f"{where}.{key}", f"{raw[key]!r} is not a bus")
        lines.append(
            Line(
                _str(raw["id"], f"{where}.id"),
                raw["from"],
                raw["to"],
                _int(raw["length_m"], f"{where}.length_m", 1, 100_000),
                _str(raw.get("std_type", DEFAULT_LINE_TYPE), f"{where}.std_type"),
            )
        )
    if len({ln.id for ln in lines}) != len(lines):
        raise TopologyError("lines", "line ids must be unique")
    if len(lines) != len(buses) - 1:
        raise TopologyError("lines", "a radial feeder has exactly one line fewer than buses")
    if not isinstance(value["nodes"], list):
        raise TopologyError("nodes", "must be a list")
    node_bus, node_mg = {}, {}
    for i, raw in enumerate(value["nodes"]):
        where = f"nodes[{i}]"
        if not isinstance(raw, dict) or "node" not in raw or "bus" not in raw:
            raise TopologyError(where, "must be an object with node and bus")
        node = _str(raw["node"], f"{where}.node")
        if node in node_bus:
            raise TopologyError(f"{where}.node", f"{node!r} is listed twice")
        if raw["bus"] not in buses:
            raise TopologyError(f"{where}.bus", f"{raw['bus']!r} is not a bus")
        node_bus[node] = raw["bus"]
        node_mg[node] = _str(raw.get("microgrid", name), f"{where}.microgrid")
    lim = value.get("limits", {})
    if not isinstance(lim, dict):
        raise TopologyError("limits", "must be an object")
    limits = Limits(
        _int(lim.get("max_line_loading_percent", 100), "limits.max_line_loading_percent", 1, 1000),
        _int(lim.get("vm_min_permille", 950), "limits.vm_min_permille", 500, 1000),
        _int(lim.get("vm_max_permille", 1050), "limits.vm_max_permille", 1000, 1500),
    )
    topo = Topology(
        name,
        float(vn_kv),
        root,
        buses,
        tuple(lines),
        tuple(sorted(node_bus.items())),
        tuple(sorted(node_mg.items())),
        limits,
    )
    if len(topo.tree()) != len(buses) - 1:
        raise TopologyError("lines", "not every bus is connected to the root")
    return topo


def load_topology(path: Path) -> Topology:
    try:
        value = json.loads(Path(path).read_text())
    except OSError as exc:
        raise TopologyError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise TopologyError(str(path), f"is not JSON: {exc}") from exc
    return parse_topology(value)


def radial(
    nodes: list[str],
    branches: int = 4,
    spacing_m: int = 30,
    std_type: str = DEFAULT_LINE_TYPE,
    name: str = "feeder",
    microgrids: int = 1,
    limits: Limits | None = None,
) -> Topology:
    """A radial LV feeder: `branches` cables from the root, one bus per node along them.

    Node i sits on branch i % branches; microgrid k holds the branches with k == branch % microgrids.
    """
    buses = ["b0"]
    lines = []
    last = ["b0"] * branches
    node_bus = []
    for i, node in enumerate(nodes):
        branch = i % branches
        bus = f"b{i + 1}"
        buses.append(bus)
        lines.append(
            {
                "id": f"l{i + 1}",
                "from": last[branch],
                "to": bus,
                "length_m": spacing_m,
                "std_type": std_type,
            }
        )
        last[branch] = bus
        node_bus.append({"node": node, "bus": bus, "microgrid": f"mg-{branch % microgrids + 1}"})
    lim = limits or Limits()
    return parse_topology(
        {
            "name": name,
            "root": "b0",
            "buses": buses,
            "lines": lines,
            "nodes": node_bus,
            "limits": {
                "max_line_loading_percent": lim.max_line_loading_percent,
                "vm_min_permille": lim.vm_min_permille,
                "vm_max_permille": lim.vm_max_permille,
            },
        }
    )


def from_grid_config(
    grid_topology: Any,
    root: str,
    length_m: int = 30,
    std_type: str = DEFAULT_LINE_TYPE,
    name: str = "feeder",
) -> Topology:
    """The feeder of a gateway's `[topology]` section (gateway.config_grid.TopologyConfig: nodes
    with a `bus`, `lines` as bus pairs), rooted at bus `root`, every line `length_m` of
    `std_type`. Raises TopologyError when those lines do not form a tree."""
    buses = sorted(
        {n.bus for n in grid_topology.nodes}
        | {b for ln in grid_topology.lines for b in ln}
        | {root}
    )
    return parse_topology(
        {
            "name": name,
            "root": root,
            "buses": buses,
            "lines": [
                {"id": f"l{i + 1}", "from": a, "to": b, "length_m": length_m, "std_type": std_type}
                for i, (a, b) in enumerate(grid_topology.lines)
            ],
            "nodes": [{"node": n.name, "bus": n.bus} for n in grid_topology.nodes],
        }
    )
