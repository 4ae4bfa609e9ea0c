import tomllib
from pathlib import Path

import pytest

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from hil_tests import REPO_ROOT
from hil_tests.gateway.gateway_proc import sgrid_gateway

EXAMPLE = REPO_ROOT / "gateway" / "examples" / "gateway.toml"


def test_documented_example_config_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.site == "demo-site"
    assert cfg.devices[0].model == "sdm630" and cfg.buses[0].kind == "rtu"
    assert cfg.database == Path("/var/lib/seamless-grid/readings.sqlite3")


def test_every_problem_is_reported_with_its_key():
    raw = {
        "gateway": {"site": "Bad Site"},
        "mqtt": {"port": 70000, "colour": "red"},
        "ingest": {"max_batch": "many"},
        "modbus": {
            "bus": [{"name": "b", "kind": "rtu"}],
            "device": [{"name": "d", "bus": "nope", "model": "sdm999", "unit": 0}],
        },
        "extra": {},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    keys = {p.split(":")[0] for p in err.value.problems}
    assert keys == {
        "gateway.site",
        "mqtt.port",
        "mqtt.colour",
        "ingest.max_batch",
        "modbus.bus[0].port",
        "modbus.device[0].bus",
        "modbus.device[0].model",
        "modbus.device[0].unit",
        "extra",
    }


def test_missing_site_is_named():
    with pytest.raises(ConfigError, match=r"gateway\.site: missing"):
        parse_config({"gateway": {}})


def test_relative_state_dir_is_relative_to_the_config_file(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('[gateway]\nsite = "s1"\nstate_dir = "st"\n')
    assert load_config(p).database == tmp_path / "st" / "readings.sqlite3"


def test_check_config_cli_exits_2_and_names_the_key(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('[gateway]\nsite = "s1"\n[metrics]\nport = "x"\n')
    out = sgrid_gateway("check-config", "--config", str(p), check=False)
    assert out.returncode == 2 and "metrics.port" in out.stderr
    ok = sgrid_gateway("check-config", "--config", str(EXAMPLE), check=False)
    assert ok.returncode == 0, ok.stderr


def test_not_toml_is_a_config_error(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    assert tomllib  # the stdlib parser is what the gateway uses


def test_mqtt_tls_ca_file_is_checked_and_relative_to_the_config_file(tmp_path):
    raw = {"gateway": {"site": "s"}, "mqtt": {"tls_ca_file": "ca.pem", "password_file": "pw"}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base_dir=tmp_path)
    assert any(p.startswith("mqtt.tls_ca_file: cannot read") for p in err.value.problems)
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base_dir=tmp_path)
    assert any("holds no PEM certificate" in p for p in err.value.problems)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n...\n")
    cfg = parse_config(raw, base_dir=tmp_path)
    assert cfg.mqtt.tls_ca_file == str(tmp_path / "ca.pem")
    assert cfg.mqtt.password_file == str(tmp_path / "pw")
