"""The grid-node config sections and `check-config` refusing whatever `run` would refuse."""

from __future__ import annotations

import pytest

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from gateway.ln.node.keys import load_or_create
from hil_tests.gateway.gateway_proc import sgrid_gateway

NODE = {"enabled": True, "name": "home", "port": 9735}
TOPO = {
    "node": [
        {"name": "home", "bus": "lv1", "node_id": "02" + "11" * 32, "host": "10.0.0.2"},
        {"name": "pod", "bus": "lv0", "node_id": "03" + "22" * 32, "host": "10.0.0.1"},
    ],
    "line": [{"a": "lv0", "b": "lv1"}],
}


def _problems(raw: dict) -> set[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    return {p.split(":")[0] for p in err.value.problems}


def test_values_that_run_would_crash_on_are_refused_by_key():
    raw = {"gateway": {"site": "s1"}, "mqtt": {"host": ""}, "metrics": {"port": 0}}
    assert _problems(raw) == {"mqtt.host", "metrics.port"}


def test_grid_sections_are_checked_with_their_keys():
    raw = {
        "gateway": {"site": "home"},
        "node": {**NODE, "listen": "", "control_port": 9735, "channel_msat": -1},
        "market": {"strategy": "consumer", "forward_to": "nobody"},
        "topology": {
            "node": [*TOPO["node"], {"name": "x", "bus": "lv9", "node_id": "04", "host": "h"}],
            "line": [{"a": "lv0", "b": "lv7"}],
            "rebalance": [{"a": "home", "b": "ghost"}],
        },
    }
    assert _problems(raw) == {
        "ledger.url",
        "node.listen",
        "node.channel_msat",
        "market.forward_to",
        "market.max_price_msat_per_kwh",
        "topology.node[2].node_id",
        "topology.line[0].b",
        "topology.rebalance[0].b",
    }


def test_a_valid_grid_node_config_parses(tmp_path):
    raw = {
        "gateway": {"site": "home", "state_dir": str(tmp_path)},
        "node": {**NODE, "listen": "0.0.0.0", "meter": "kitchen"},
        "ledger": {"url": "http://10.0.0.1:8720,http://10.0.0.3:8720"},
        "market": {"strategy": "consumer", "max_price_msat_per_kwh": 10, "forward_to": "pod"},
        "topology": TOPO,
    }
    cfg = parse_config(raw)
    assert cfg.grid.node.listen == "0.0.0.0" and cfg.grid.node.data_dir == tmp_path / "node"
    assert [n.name for n in cfg.grid.topology.nodes] == ["home", "pod"]


def test_check_config_refuses_a_topology_that_names_another_key(tmp_path):
    state = tmp_path / "state"
    real = load_or_create(state / "node").node_id.hex()
    p = tmp_path / "g.toml"
    p.write_text(
        '[gateway]\nsite = "home"\nstate_dir = "state"\n'
        '[node]\nenabled = true\nname = "home"\n[ledger]\nurl = "http://127.0.0.1:8720"\n'
        '[[topology.node]]\nname = "home"\nbus = "lv1"\nnode_id = "02' + "11" * 32 + '"\n'
        'host = "127.0.0.1"\n'
    )
    res = sgrid_gateway("check-config", "--config", str(p), check=False)
    assert res.returncode == 2 and "topology.node 'home'.node_id" in res.stderr
    assert real[:16] in res.stderr
    assert load_config(p).grid.node.name == "home"  # the schema itself is fine
    p.write_text(p.read_text().replace("02" + "11" * 32, real))
    res = sgrid_gateway("check-config", "--config", str(p), check=False)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("name", ["producer", "consumer", "pod"])
def test_the_documented_grid_configs_are_valid_and_in_the_docs(name, repo_root):
    root = repo_root
    path = root / "gateway" / "examples" / "grid" / f"{name}.toml"
    cfg = load_config(path)
    assert cfg.grid.node.enabled and cfg.grid.node.listen == "0.0.0.0"
    assert {n.name for n in cfg.grid.topology.nodes} == {"pv-1", "home-1", "pod"}
    assert path.read_text() in (root / "docs" / "gateway.md").read_text()


def test_check_config_refuses_an_unreadable_password_file_and_state_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = tmp_path / "g.toml"
    p.write_text(
        f'[gateway]\nsite = "s1"\nstate_dir = "{blocker}/state"\n'
        f'[mqtt]\nusername = "gw"\npassword_file = "{tmp_path}/missing"\n'
    )
    res = sgrid_gateway("check-config", "--config", str(p), check=False)
    assert res.returncode == 2
    assert "mqtt.password_file:" in res.stderr and "gateway.state_dir:" in res.stderr


def test_selling_the_surplus_needs_a_meter_and_the_pod():
    base = {"gateway": {"site": "home"}, "node": NODE, "ledger": {"url": "http://10.0.0.1:8720"},
            "topology": TOPO}  # fmt: skip
    assert _problems({**base, "market": {"surplus_price_msat_per_kwh": 400_000}}) == {
        "market.surplus_price_msat_per_kwh"
    }
    assert _problems({**base, "market": {"surplus_price_msat_per_kwh": -1}}) == {
        "market.surplus_price_msat_per_kwh"
    }
    ok = {**base, "node": {**NODE, "meter": "pv"},
          "market": {"surplus_price_msat_per_kwh": 400_000, "forward_to": "pod"}}  # fmt: skip
    assert parse_config(ok).grid.market.surplus_price_msat_per_kwh == 400_000
