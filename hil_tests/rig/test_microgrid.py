"""The sim's default microgrid: at least 8 nodes of every kind on one radial feeder with the POD at its root."""

from __future__ import annotations

from hil_tests.rig import microgrid


def test_default_microgrid_has_every_kind_on_one_feeder():
    grid = microgrid.build()
    kinds = {n.kind for n in grid.nodes}
    assert kinds == set(microgrid.KINDS)
    assert len(grid.nodes) >= 8
    assert grid.topology.bus_of("pod") == grid.topology.root
    for n in grid.nodes:
        assert grid.topology.bus_of(n.name) in grid.topology.buses
    assert [n.name for n in grid.nodes if n.prepaid] == [
        "home-1",
        "home-2",
        "home-3",
        "home-4",
        "ev-1",
    ]
    assert grid.node("clinic-1").meter_source == "s0" and not grid.node("clinic-1").prepaid


def test_fifty_homes_make_a_feeder_of_more_than_forty_buses():
    grid = microgrid.build(homes=50)
    assert len(grid.topology.buses) > 40
    assert len(grid.names("home")) == 50


def _hops(grid: microgrid.Microgrid) -> dict[str, dict[str, int]]:
    """Channel hops between every two nodes: feeder neighbours plus the rebalancing pairs."""
    topo = grid.topology
    joined = {frozenset((ln.from_bus, ln.to_bus)) for ln in topo.lines}
    names = grid.names()
    adj: dict[str, set[str]] = {n: set() for n in names}
    for a in names:
        for b in names:
            ba, bb = topo.bus_of(a), topo.bus_of(b)
            if a != b and (ba == bb or frozenset((ba, bb)) in joined):
                adj[a].add(b)
    for a, b in grid.rebalance:
        adj[a].add(b)
        adj[b].add(a)
    out = {}
    for src in names:
        dist, queue = {src: 0}, [src]
        for n in queue:  # breadth first: the queue grows while it is walked
            for m in sorted(adj[n] - dist.keys()):
                dist[m] = dist[n] + 1
                queue.append(m)
        out[src] = dist
    return out


def test_fifty_homes_reach_the_pod_in_three_hops_and_each_other_in_six():
    """Microgrids of microgrids: along each 14-bus cable every 4th node is a hub with a channel
    to the POD (without them: 14 hops to the POD, 28 between two cables' ends)."""
    grid = microgrid.build(homes=50)
    hops = _hops(grid)
    assert max(hops["pod"].values()) <= 3
    assert max(max(d.values()) for d in hops.values()) <= 6
    assert all(a == "pod" for a, _ in grid.rebalance) and len(grid.rebalance) == 12
    assert microgrid.build().rebalance == []  # the default grid's cables are short
