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
