import json

import pytest

from gateway.market import mechanisms
from gateway.market.book import Book, Order
from gateway.market.errors import TopologyError
from gateway.market.feeder import Feeder, clear_feasible
from gateway.market.topology import from_grid_config, load_topology, parse_topology, radial

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("gateway.market.test_feeder")

NODES = [f"n{i:02d}" for i in range(50)]


@pytest.fixture(scope="module")
def feeder():
    return Feeder(radial(NODES, branches=4, spacing_m=40, std_type="NAYY 4x50 SE"))


def _book(sell_wh, buy_wh):
    offers = tuple(
        Order(f"o{i}", n, sell_wh, 100_000 + i, 0) for i, n in enumerate(NODES) if i % 3 == 0
    )
    bids = tuple(Order(f"b{i}", n, buy_wh, 200_000 - i, 0) for i, n in enumerate(NODES) if i % 3)
    return Book(0, 900, offers, bids)


def test_a_feasible_slot_keeps_every_trade_and_gets_its_losses(feeder):
    book = _book(3000, 1500)
    r = clear_feasible(feeder, book)
    assert r.feasible and r.curtailed == ()
    assert r.clearing.to_json() == mechanisms.clear(book, "pay-as-clear").to_json()
    flows = feeder.net.res_line
    total_loss = sum(round(pl * 1e6 * 900 / 3600) for pl in flows.pl_mw)
    assert sum(r.trade_loss_wh) + r.unallocated_loss_wh == total_loss > 0
    assert r.max_loading_permille <= 1000


def test_an_overloaded_feeder_is_curtailed_until_feasible_and_rechecked(feeder):
    book = _book(15_000, 9000)
    unchecked = mechanisms.clear(book, "pay-as-clear")
    r = clear_feasible(feeder, book)
    assert r.feasible and r.curtailed and r.power_flows > 1
    assert sum(t.wh for t in r.clearing.trades) < sum(t.wh for t in unchecked.trades)
    assert r.max_loading_permille <= 1000
    assert 950 <= r.vm_min_permille and r.vm_max_permille <= 1050
    # the published result is the power flow of exactly the returned trades
    again = feeder.run({n: 0 for n in NODES} | _net(r.clearing.trades), 900)
    assert not feeder.violations(again)
    assert clear_feasible(feeder, book).to_json() == r.to_json()


def _net(trades):
    out = {}
    for t in trades:
        out[t.seller] = out.get(t.seller, 0) + t.wh
        out[t.buyer] = out.get(t.buyer, 0) - t.wh
    return out


def test_topology_file_round_trips_and_names_bad_keys(tmp_path):
    topo = radial(NODES[:6], branches=2, microgrids=2)
    path = tmp_path / "feeder.json"
    path.write_text(json.dumps(topo.to_json()))
    assert load_topology(path) == topo
    bad = topo.to_json()
    bad["lines"][1]["to"] = "nowhere"
    with pytest.raises(TopologyError, match=r"lines\[1\]\.to"):
        parse_topology(bad)
    bad = topo.to_json()
    bad["nodes"][0]["bus"] = "b99"
    with pytest.raises(TopologyError, match=r"nodes\[0\]\.bus"):
        parse_topology(bad)
    bad = topo.to_json()
    bad["lines"][0]["from"], bad["lines"][0]["to"] = "b3", "b5"  # a loop; b1, b3, b5 cut off
    with pytest.raises(TopologyError, match="lines"):
        parse_topology(bad)


def test_the_feeder_of_a_gateway_topology_section():
    from gateway.config_grid import TopologyConfig, TopologyNode

    cfg = TopologyConfig(
        nodes=(
            TopologyNode("pod", "t0", "02" + "11" * 32, "127.0.0.1"),
            TopologyNode("pv-1", "p1", "02" + "22" * 32, "127.0.0.1"),
            TopologyNode("home-1", "p2", "02" + "33" * 32, "127.0.0.1"),
        ),
        lines=(("t0", "p1"), ("p1", "p2")),
    )
    topo = from_grid_config(cfg, root="t0", length_m=50)
    assert topo.bus_of("home-1") == "p2" and topo.tree()["p2"] == ("p1", "l2")
    with pytest.raises(TopologyError, match="lines"):
        from_grid_config(TopologyConfig(nodes=cfg.nodes, lines=(("t0", "p1"),)), root="t0")


def test_a_pandapower_network_file_is_a_feeder(tmp_path):
    import pandapower as pp
    import pandapower.networks as pn

    from gateway.market.feeder_file import load_pandapower

    net = pn.create_kerber_dorfnetz()  # a real German village LV grid: 116 buses, 57 houses
    pp.to_json(net, str(tmp_path / "dorf.json"))
    houses = [net.bus.at[int(b), "name"] for b in net.load.bus][:50]
    nodes = {f"n{i:02d}": bus for i, bus in enumerate(houses)}
    f = load_pandapower(tmp_path / "dorf.json", nodes)
    assert len(f.topology.buses) >= 40 and f.topology.root == "main_busbar"
    offers = tuple(
        Order(f"o{i}", n, 3000, 100_000 + i, 0) for i, n in enumerate(nodes) if i % 3 == 0
    )
    bids = tuple(Order(f"b{i}", n, 1500, 200_000 - i, 0) for i, n in enumerate(nodes) if i % 3)
    r = clear_feasible(f, Book(0, 900, offers, bids))
    assert r.feasible and sum(r.trade_loss_wh) > 0
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TopologyError):
        load_pandapower(tmp_path / "bad.json", nodes)
