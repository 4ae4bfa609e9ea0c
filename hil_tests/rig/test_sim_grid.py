"""The sim's bring-up on the smallest grid (a household and the POD): its phases are timed, and a
gateway whose channel-node port is taken says so and comes up once the port is free (at 25
nodes such a gateway used to sit there without a channel node and without a word)."""

import socket
import threading

import pytest

from hil_tests.rig import microgrid, profiles
from hil_tests.rig.broker import mosquitto_available
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.market_config import market_config

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="needs mosquitto")


@pytest.mark.timeout(600)
def test_a_taken_node_port_is_logged_and_the_node_comes_up_once_it_is_free(tmp_path):
    site = profiles.Site()
    grid = microgrid.build(homes=1, pv=0, batteries=0, ev=0, critical=0, site=site)
    sg = SimGrid(grid, tmp_path / "sim", speed=60)
    for n in grid.nodes:
        sg.node_market[n.name] = market_config(n, profiles.day_start(site), False, 60)
    pod = sg.nodes["pod"]
    taken = socket.create_server(("127.0.0.1", pod.port))  # somebody else listens there
    said = threading.Event()

    def free_once_said() -> None:
        while not said.wait(0.1):
            if pod.gateway is not None and "node.port: the channel node cannot listen" in (
                pod.gateway.log()
            ):
                said.set()
        taken.close()

    watcher = threading.Thread(target=free_once_said, daemon=True)
    watcher.start()
    try:
        sg.start()
        assert said.is_set()
        assert set(sg.open_channels()) == sg.expected_channels() != set()
        assert list(sg.phases)[-2:] == ["channels along the feeder", "meters ready"]
        assert all(v >= 0 for v in sg.phases.values()) and len(sg.phases) == 5
        ports = [p for n in sg.nodes.values() for p in (n.port, n.control_port, n.metrics_port)]
        assert len(set(ports + [sg.broker.port])) == len(ports) + 1
    finally:
        said.set()
        taken.close()
        sg.stop()
