"""Which channels a node opens, from the topology config."""

from gateway.config_grid import TopologyConfig, TopologyNode
from gateway.grid.topology import neighbours, path_to


def _node(name: str, bus: str, nid: str) -> TopologyNode:
    return TopologyNode(name, bus, "02" + nid * 64, "127.0.0.1")


TOPO = TopologyConfig(
    nodes=(
        _node("pod", "lv0", "1"),
        _node("pv", "lv1", "3"),
        _node("home", "lv1", "2"),
        _node("far", "lv2", "4"),
        _node("bat", "lv3", "5"),
    ),  # fmt: skip
    lines=(("lv0", "lv1"), ("lv0", "lv2")),
    rebalance=(("home", "bat"),),
)


def test_electrical_neighbours_and_rebalancing_channels():
    home = {link.peer.name: (link.kind, link.we_open) for link in neighbours(TOPO, "home")}
    assert home == {"pod": ("feeder", False), "pv": ("feeder", True), "bat": ("rebalance", True)}
    far = {link.peer.name for link in neighbours(TOPO, "far")}
    assert far == {"pod"}  # lv2 hangs off lv0 only


def test_each_pair_has_exactly_one_opener():
    for a in TOPO.nodes:
        for link in neighbours(TOPO, a.name):
            back = next(x for x in neighbours(TOPO, link.peer.name) if x.peer.name == a.name)
            assert link.we_open != back.we_open


def test_paths_follow_the_channels():
    assert path_to(TOPO, "far", "pv") == ["far", "pod", "pv"]
    assert path_to(TOPO, "bat", "far") == ["bat", "home", "pod", "far"]
    assert neighbours(TOPO, "nobody") == []
