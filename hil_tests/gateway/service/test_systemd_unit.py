import shutil
import subprocess

import pytest

from hil_tests import REPO_ROOT

UNIT = REPO_ROOT / "deploy" / "systemd" / "seamless-grid-gateway.service"


def _directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_unit_is_a_watched_notify_service_with_a_dedicated_user():
    d = _directives()
    assert d["Service.Type"] == ["notify"]
    assert int(d["Service.WatchdogSec"][0]) > 0
    assert d["Service.Restart"] == ["on-failure"]
    assert d["Service.User"] == ["sgrid"]
    assert set(d["Service.SupplementaryGroups"][0].split()) == {"dialout", "gpio"}
    assert d["Service.StateDirectory"] == ["seamless-grid"]
    assert d["Service.ExecStart"] == [
        "/opt/seamless-grid/venv/bin/sgrid gateway run --config /etc/sgrid/gateway.toml"
    ]
    assert d["Service.ConfigurationDirectory"] == ["sgrid"]
    assert d["Install.WantedBy"] == ["multi-user.target"]


def test_unit_is_sandboxed():
    d = _directives()
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
        "RestrictSUIDSGID",
    ):
        assert d[f"Service.{key}"] == ["yes"], key
    assert d["Service.ProtectSystem"] == ["strict"]
    assert d["Service.DevicePolicy"] == ["closed"]
    assert d["Service.CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_finds_no_syntax_error():
    out = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
    syntax = [
        line for line in out.stderr.splitlines() if "Unknown key" in line or "Invalid" in line
    ]
    assert syntax == []
