"""The feeder check (seed 002): power flow of a slot's trades with pandapower, curtailment until
feasible, and allocation of line losses to the trades.

Model: each market node is a load at its bus; a slot's scheduled net energy per node (sellers
+Wh, buyers -Wh, plus an optional untraded base) becomes a constant power
P = Wh * 3600 / slot_s over the slot. The grid connection (`root`) is the slack bus.

**Feasible** means every line's loading <= limits.max_line_loading_percent and every bus voltage
within [vm_min, vm_max]. **Curtailment rule** (docs/market.md §7), repeated until feasible:
  1. take the worst violation (largest relative excess over its limit; ties by element id);
  2. the nodes behind it are those in the subtree below an overloaded line, or on the root branch
     of a bus out of its voltage band; the side that causes it is the sellers when power flows
     towards the root (line exported through, or over-voltage), else the buyers;
  3. every one of those nodes gets a limit on that side: its traded Wh minus
     max(ceil(traded * excess), ceil(traded / 10), 1), and 0 for those that did not trade
     (so no other node behind the element takes the curtailed energy over);
  4. their orders on that side are cut to the limits (in order of id) and the book re-cleared.
If no node behind a violation trades on that side, the base flow alone is infeasible: the result
says `feasible=False` and keeps the trades (curtailing others cannot help).
**Losses**: each line's loss (res_line.pl_mw over the slot, rounded to whole Wh) is split over the
trades whose seller-to-buyer path crosses that line, in proportion to their Wh (units.split);
losses of lines no trade crosses are `unallocated_loss_wh` (the grid's, via the POD).

pandapower is imported on first use (it takes seconds); numba is not used.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.market import mechanisms
from gateway.market.book import Book, Clearing, Order, Trade
from gateway.market.errors import FeederError, TopologyError
from gateway.market.topology import Topology
from gateway.market.units import split

RECYCLE = {"bus_pq": True, "trafo": False, "gen": False}


@dataclass(frozen=True)
class Flow:
    loading_percent: tuple[tuple[str, float], ...]  # per line id, topology order
    vm_pu: tuple[tuple[str, float], ...]  # per bus id
    loss_wh: tuple[tuple[str, int], ...]  # per line id


@dataclass(frozen=True)
class Violation:
    kind: str  # "line_loading" | "vm_high" | "vm_low"
    element: str  # line id or bus id
    value: float
    limit: float

    @property
    def excess(self) -> float:
        return abs(self.value - self.limit) / abs(self.value) if self.value else 1.0


@dataclass(frozen=True)
class FeederClearing:
    clearing: Clearing
    trade_loss_wh: tuple[int, ...]  # aligned with clearing.trades
    unallocated_loss_wh: int
    feasible: bool
    power_flows: int
    curtailed: tuple[tuple[str, str, int], ...]  # (node, "sell"|"buy", Wh limit), in order
    max_loading_permille: int  # of 100 %: 1000 = fully loaded
    vm_min_permille: int
    vm_max_permille: int

    def to_json(self) -> dict[str, Any]:
        out = self.clearing.to_json()
        for t, loss in zip(out["trades"], self.trade_loss_wh, strict=True):
            t["loss_wh"] = loss
        out["feeder"] = {
            "feasible": self.feasible,
            "power_flows": self.power_flows,
            "curtailed": [{"node": n, "side": s, "limit_wh": w} for n, s, w in self.curtailed],
            "max_line_loading_permille": self.max_loading_permille,
            "vm_min_permille": self.vm_min_permille,
            "vm_max_permille": self.vm_max_permille,
            "unallocated_loss_wh": self.unallocated_loss_wh,
        }
        return out


class Feeder:
    """A pandapower network built from a Topology, reused (recycled) for every power flow."""

    def __init__(
        self, topology: Topology, net: Any = None, bus_index: Mapping[str, int] | None = None
    ) -> None:
        """Build the pandapower network of `topology`, or use `net` (a loaded pandapower network
        whose lines are `topology.lines` in the same order; `bus_index` maps bus ids to its
        indices; its own loads stay as the untraded base flow): see gateway.market.feeder_file."""
        import pandapower as pp

        self.pp = pp
        self.topology = topology
        if net is not None and bus_index is not None:
            self._bus = dict(bus_index)
        else:
            net = pp.create_empty_network(name=topology.name)
            self._bus = {
                b: pp.create_bus(net, vn_kv=topology.vn_kv, name=b) for b in topology.buses
            }
            pp.create_ext_grid(net, self._bus[topology.root], vm_pu=1.0)
            known = set(pp.available_std_types(net, "line").index)
            for i, ln in enumerate(topology.lines):
                if ln.std_type not in known:
                    raise TopologyError(
                        f"lines[{i}].std_type", f"{ln.std_type!r} is not a pandapower line type"
                    )
                pp.create_line(
                    net,
                    self._bus[ln.from_bus],
                    self._bus[ln.to_bus],
                    length_km=ln.length_m / 1000,
                    std_type=ln.std_type,
                    name=ln.id,
                )
        self.nodes = tuple(n for n, _ in topology.node_bus)
        self._load = {
            n: pp.create_load(net, self._bus[b], p_mw=0.0, name=n) for n, b in topology.node_bus
        }
        self.net = net
        self.power_flows = 0
        parent = topology.tree()
        self._root_path: dict[str, frozenset[str]] = {}
        for bus in topology.buses:
            lines, b = set(), bus
            while b in parent:
                b, line_id = parent[b]
                lines.add(line_id)
            self._root_path[bus] = frozenset(lines)
        self._below: dict[str, frozenset[str]] = {}  # line id -> nodes in the subtree below it
        child_of = {line_id: bus for bus, (_, line_id) in parent.items()}
        for line_id, child in child_of.items():
            self._below[line_id] = frozenset(
                n for n, b in topology.node_bus if child == b or self._under(b, child, parent)
            )
        self._branch: dict[str, frozenset[str]] = {}  # bus -> nodes on its root branch
        top = {b: self._top(b, parent) for b in topology.buses}
        for bus in topology.buses:
            self._branch[bus] = frozenset(n for n, b in topology.node_bus if top[b] == top[bus])

    @staticmethod
    def _under(bus: str, ancestor: str, parent: dict[str, tuple[str, str]]) -> bool:
        while bus in parent:
            bus = parent[bus][0]
            if bus == ancestor:
                return True
        return False

    def _top(self, bus: str, parent: dict[str, tuple[str, str]]) -> str:
        while bus in parent and parent[bus][0] != self.topology.root:
            bus = parent[bus][0]
        return bus

    def path(self, seller: str, buyer: str) -> frozenset[str]:
        """Line ids between two nodes' buses (a node off this feeder sits at the root)."""
        a = self._root_path.get(self.topology.bus_of(seller) or self.topology.root, frozenset())
        b = self._root_path.get(self.topology.bus_of(buyer) or self.topology.root, frozenset())
        return a ^ b

    def run(self, net_wh: Mapping[str, int], slot_s: int) -> Flow:
        """One power flow with each node's net energy (+ export) spread over the slot."""
        net = self.net
        scale = 3600 / slot_s / 1e6
        for node, idx in self._load.items():
            net.load.at[idx, "p_mw"] = -net_wh.get(node, 0) * scale
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.pp.runpp(net, numba=False, recycle=RECYCLE)
        except self.pp.LoadflowNotConverged as exc:
            raise FeederError(
                f"power flow of feeder {self.topology.name} did not converge"
            ) from exc
        self.power_flows += 1
        to_wh = slot_s / 3600 * 1e6
        lines = [ln.id for ln in self.topology.lines]
        loading = net.res_line.loading_percent.to_numpy()
        losses = net.res_line.pl_mw.to_numpy()
        vm = net.res_bus.vm_pu.to_numpy()
        return Flow(
            tuple((lid, float(loading[i])) for i, lid in enumerate(lines)),
            tuple((b, float(vm[self._bus[b]])) for b in self.topology.buses),
            tuple(
                (lid, int(math.floor(float(losses[i]) * to_wh + 0.5)))
                for i, lid in enumerate(lines)
            ),
        )

    def violations(self, flow: Flow) -> list[Violation]:
        lim = self.topology.limits
        out = [
            Violation("line_loading", lid, v, float(lim.max_line_loading_percent))
            for lid, v in flow.loading_percent
            if v > lim.max_line_loading_percent
        ]
        for bus, v in flow.vm_pu:
            if v > lim.vm_max_permille / 1000:
                out.append(Violation("vm_high", bus, v, lim.vm_max_permille / 1000))
            elif v < lim.vm_min_permille / 1000:
                out.append(Violation("vm_low", bus, v, lim.vm_min_permille / 1000))
        out.sort(key=lambda v: (-v.excess, v.element))
        return out

    def behind(self, v: Violation, net_wh: Mapping[str, int]) -> tuple[frozenset[str], str]:
        """The nodes behind a violation and the side ("sell" / "buy") that causes it."""
        if v.kind == "line_loading":
            nodes = self._below[v.element]
            exporting = sum(net_wh.get(n, 0) for n in nodes) > 0
            return nodes, "sell" if exporting else "buy"
        return self._branch[v.element], "sell" if v.kind == "vm_high" else "buy"


def net_of(trades: tuple[Trade, ...], base_wh: Mapping[str, int]) -> dict[str, int]:
    net = dict(base_wh)
    for t in trades:
        net[t.seller] = net.get(t.seller, 0) + t.wh
        net[t.buyer] = net.get(t.buyer, 0) - t.wh
    return net


def limit_orders(orders: tuple[Order, ...], limits: Mapping[str, int]) -> tuple[Order, ...]:
    """Cut each limited node's orders (taken in id order) to its Wh limit; drop emptied ones."""
    left = dict(limits)
    cut: dict[str, int] = {}
    for o in sorted((o for o in orders if o.node in left), key=lambda o: o.id):
        cut[o.id] = min(o.wh, left[o.node])
        left[o.node] -= cut[o.id]
    out = []
    for o in orders:
        wh = cut.get(o.id, o.wh)
        if wh > 0:
            out.append(
                o
                if wh == o.wh
                else Order(o.id, o.node, wh, o.price_msat_per_kwh, o.time, o.reliability_permille)
            )
    return tuple(out)


def allocate_losses(
    feeder: Feeder, trades: tuple[Trade, ...], flow: Flow
) -> tuple[tuple[int, ...], int]:
    per_trade = [0] * len(trades)
    paths = [feeder.path(t.seller, t.buyer) for t in trades]
    unallocated = 0
    for line_id, loss in flow.loss_wh:
        users = [i for i, p in enumerate(paths) if line_id in p]
        if not users:
            unallocated += loss
            continue
        for i, share in zip(users, split(loss, [trades[i].wh for i in users]), strict=True):
            per_trade[i] += share
    return tuple(per_trade), unallocated


def clear_feasible(
    feeder: Feeder,
    book: Book,
    mechanism: str = "pay-as-clear",
    cap_msat_per_kwh: int | None = None,
    base_wh: Mapping[str, int] | None = None,
    max_rounds: int = 50,
    clear: Callable[[Book], Clearing] | None = None,
) -> FeederClearing:
    """Clear `book`, check the feeder, curtail and re-clear until feasible (rule: module doc).

    `clear` replaces the one-mechanism clearing (e.g. the three-level slot clearing)."""
    if clear is None:

        def clear(b: Book) -> Clearing:
            return mechanisms.clear(b, mechanism, cap_msat_per_kwh)

    slot_s = book.end - book.start
    base = dict(base_wh or {})
    limits: dict[str, dict[str, int]] = {"sell": {}, "buy": {}}
    curtailed: list[tuple[str, str, int]] = []
    feasible = False
    flows_before = feeder.power_flows
    for _ in range(max_rounds):
        limited = Book(
            book.start,
            book.end,
            limit_orders(book.offers, limits["sell"]),
            limit_orders(book.bids, limits["buy"]),
        )
        clearing = clear(limited)
        net = net_of(clearing.trades, base)
        flow = feeder.run(net, slot_s)
        found = feeder.violations(flow)
        if not found:
            feasible = True
            break
        worst = found[0]
        nodes, side = feeder.behind(worst, net)
        traded: dict[str, int] = {}
        for t in clearing.trades:
            who = t.seller if side == "sell" else t.buyer
            if who in nodes:
                traded[who] = traded.get(who, 0) + t.wh
        if not traded:
            break  # the base flow alone violates: curtailing trades cannot fix it
        for node in sorted(nodes):
            have = traded.get(node, 0)
            cut = max(math.ceil(have * worst.excess), math.ceil(have / 10), 1) if have else 0
            if node in limits[side] and limits[side][node] <= have - cut:
                continue
            limits[side][node] = have - cut
            if have:
                curtailed.append((node, side, have - cut))
    else:
        raise FeederError(f"feeder {feeder.topology.name}: not feasible after {max_rounds} rounds")
    losses, unallocated = allocate_losses(feeder, clearing.trades, flow)
    loading = max((v for _, v in flow.loading_percent), default=0.0)
    vms = [v for _, v in flow.vm_pu]
    return FeederClearing(
        clearing,
        losses,
        unallocated,
        feasible,
        feeder.power_flows - flows_before,
        tuple(curtailed),
        int(round(loading * 10)),
        int(round(min(vms) * 1000)),
        int(round(max(vms) * 1000)),
    )
