"""The simulated microgrid as data: which nodes exist, what each one is, where it hangs off the
feeder, and the power profile (forecast and actual) that drives its meter.

The default microgrid (`build(homes=4)`) is a low-voltage feeder with the grid connection (POD)
at its root and, on four cables, `homes` prepaid households, one household with a critical load
(never cut, seed 002), two PV plants, a battery and an EV charger: 10 nodes. The feeder is the
market's topology format (gateway/market/topology.py), so the market's feeder check and the sim's
loss calculation use the same pandapower network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.market.topology import Topology, parse_topology, radial
from hil_tests.rig import profiles

KINDS = ("home", "critical", "pv", "battery", "ev", "pod")
# along a cable, the node on every HUB_EVERY-th bus from the POD's first neighbour also holds a
# channel straight to the POD (see rebalance_pairs)
HUB_EVERY = 4


@dataclass
class NodeSpec:
    name: str
    kind: str  # one of KINDS
    profile: profiles.Profile | None  # None: the POD (it meters the rest) and the battery
    capacity_wh: int = 0  # battery only

    @property
    def prepaid(self) -> bool:
        """Households and the EV charger draw only energy they paid for (S0 meter, relay)."""
        return self.kind in ("home", "ev")

    @property
    def meter_source(self) -> str:
        return "s0" if self.kind in ("home", "ev", "critical") else "bl0942"

    @property
    def seller(self) -> bool:
        return self.kind in ("pv", "battery")


@dataclass
class Microgrid:
    site: profiles.Site
    nodes: list[NodeSpec]
    topology: Topology
    # channels beyond the feeder's neighbours ([[topology.rebalance]]): (a, b) node names
    rebalance: list[tuple[str, str]] = field(default_factory=list)

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    @property
    def pod(self) -> NodeSpec:
        return next(n for n in self.nodes if n.kind == "pod")

    def names(self, *kinds: str) -> list[str]:
        return [n.name for n in self.nodes if not kinds or n.kind in kinds]


def build(
    homes: int = 4,
    pv: int = 2,
    batteries: int = 1,
    ev: int = 1,
    critical: int = 1,
    site: profiles.Site | None = None,
    seed: int = 1,
    cloudiness: float = 0.4,
) -> Microgrid:
    site = site or profiles.Site()
    nodes: list[NodeSpec] = []
    for i in range(homes):
        annual = 2500 + (seed * 7919 + i * 104_729) % 2500  # 2,500..5,000 kWh a year
        nodes.append(NodeSpec(f"home-{i + 1}", "home", profiles.household(site, annual, seed + i)))
    for i in range(critical):
        nodes.append(
            NodeSpec(f"clinic-{i + 1}", "critical", profiles.household(site, 6000, seed + 500 + i))
        )
    for i in range(pv):
        peak = 8000 if i == 0 else 5000
        nodes.append(
            NodeSpec(f"pv-{i + 1}", "pv", profiles.pv_plant(site, peak, cloudiness, seed + 900 + i))
        )
    for i in range(batteries):
        nodes.append(NodeSpec(f"battery-{i + 1}", "battery", None, capacity_wh=10_000))
    for i in range(ev):
        nodes.append(NodeSpec(f"ev-{i + 1}", "ev", profiles.ev_charger(seed + 700 + i)))
    feeder = radial([n.name for n in nodes], branches=4, spacing_m=35, name="sim-feeder")
    topo = feeder.to_json()
    topo["nodes"].append({"node": "pod", "bus": topo["root"], "microgrid": "mg-1"})
    nodes.append(NodeSpec("pod", "pod", None))
    topology = parse_topology(topo)
    return Microgrid(site, nodes, topology, rebalance_pairs(topology, "pod"))


def rebalance_pairs(topo: Topology, pod: str, every: int = HUB_EVERY) -> list[tuple[str, str]]:
    """The rebalancing channels of seed 000 (Fig. 2), here as microgrids of microgrids (seed
    002): each cable's buses form groups of `every`, and the node on the first bus of each
    group (depth 1 + k * every from the POD's bus; depth 1 is the POD's electrical neighbour
    already) gets a channel to the POD (the hub of its group). Every node is then at most
    every / 2 hops from such a hub, so a payment to or from the POD takes at most every / 2 + 1
    hops and one between two nodes at most every + 2; along a 14-bus cable (`--homes 50`) it
    took up to 14 hops to the POD and 28 (past the router's 20) between two cables' ends. A
    short cable (the default grid: 2-3 buses each) gets none."""
    parent = topo.tree()
    depth: dict[str, int] = {topo.root: 0}

    def depth_of(bus: str) -> int:
        if bus not in depth:
            depth[bus] = depth_of(parent[bus][0]) + 1
        return depth[bus]

    pairs = []
    for node, bus in topo.node_bus:
        d = depth_of(bus)
        if node != pod and d > 1 and (d - 1) % every == 0:
            pairs.append((pod, node))
    return pairs
