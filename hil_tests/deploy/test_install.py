"""deploy/install.sh puts the gateway on a Debian/Raspberry Pi OS root: staged into a temporary
root (DESTDIR-style, offline from uv's cache), its unit passes `systemd-analyze verify` there,
and the installed `sgrid gateway run` serves a real mosquitto."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from hil_tests import REPO_ROOT
from hil_tests.gateway.gateway_proc import GatewayProcess
from hil_tests.rig.broker import Broker, free_port, mosquitto_available

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("deploy.test_install")

UNIT = "seamless-grid-gateway.service"
HOST_UNITS = Path("/usr/lib/systemd/system")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pi-root")
    out = subprocess.run(
        [str(REPO_ROOT / "deploy" / "install.sh"), "--destdir", str(root), "--offline"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "staged in" in out.stdout
    return root


def test_the_install_lays_out_venv_config_unit_user_and_broker_config(root):
    sgrid = root / "opt/seamless-grid/venv/bin/sgrid"
    assert sgrid.is_file() and sgrid.stat().st_mode & stat.S_IXUSR
    cfg = root / "etc/sgrid/gateway.toml"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/sgrid").stat().st_mode) == 0o750
    assert (root / "usr/lib/systemd/system" / UNIT).is_file()
    sysusers = (root / "usr/lib/sysusers.d/seamless-grid.conf").read_text()
    assert re.search(r"^u sgrid ", sysusers, re.M) and "m sgrid dialout" in sysusers
    assert (root / "etc/mosquitto/conf.d/seamless-grid.conf").is_file()
    out = subprocess.run([str(sgrid), "--help"], capture_output=True, text=True, timeout=60)
    assert "gateway" in out.stdout and "sim" not in out.stdout.split("Commands:")[1]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_analyze_verifies_the_installed_unit_in_that_root(root):
    # the root of a Debian system: its own units (targets, ...) next to ours
    units = root / "usr/lib/systemd/system"
    for src in HOST_UNITS.iterdir():
        dst = units / src.name
        if not dst.exists() and not src.is_dir():
            shutil.copy(src, dst, follow_symlinks=False)
    out = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", UNIT],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Unknown key" not in out.stderr and "not executable" not in out.stderr


@pytest.mark.needs("mosquitto", mosquitto_available())
def test_the_installed_gateway_runs_against_a_real_broker(root, tmp_path):
    broker = Broker(tmp_path / "broker").start()
    sgrid = root / "opt/seamless-grid/venv/bin/sgrid"
    text = (root / "etc/sgrid/gateway.toml").read_text()
    text = text.replace('site = "demo-site"', 'site = "installed"')
    text = re.sub(r'state_dir = "[^"]*"', f'state_dir = "{tmp_path / "state"}"', text)
    text = re.sub(r"(\[mqtt\][^\[]*?)port = 1883", rf"\g<1>port = {broker.port}", text, flags=re.S)
    text = re.sub(
        r"(\[metrics\][^\[]*?)port = 9108", rf"\g<1>port = {free_port()}", text, flags=re.S
    )
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(text)
    check = subprocess.run([str(sgrid), "gateway", "check-config", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    gw = GatewayProcess(cfg, broker, "installed", command=[str(sgrid), "gateway"])
    try:
        gw.wait_online(timeout=60)  # READY=1 over sd_notify, then "online" on the broker
    finally:
        assert gw.terminate() == 0, gw.log()
        broker.stop()
