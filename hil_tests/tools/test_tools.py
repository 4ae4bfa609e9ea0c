"""The tools a person uses to provision and flash meters, run as a person would."""

import json
import re
import subprocess
import sys

import pytest

from tools import flash, provision

PUB = "02" + "ab" * 32


def test_provision_writes_a_config_the_firmware_accepts(tmp_path):
    rc = provision.main(
        [
            "--flash",
            str(tmp_path),
            "--site",
            "demo",
            "--broker",
            "127.0.0.1:1884",
            "--issuer-pubkey",
            PUB,
            "--set",
            "interval_s=900",
            "--set",
            "critical_load=true",
        ]
    )
    assert rc == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg == {
        "site": "demo",
        "broker_host": "127.0.0.1",
        "broker_port": 1884,
        "issuer_pubkey": PUB,
        "interval_s": 900,
        "critical_load": True,
    }


def test_provision_refuses_wrong_values_naming_the_key(tmp_path, capsys):
    rc = provision.main(
        [
            "--flash",
            str(tmp_path),
            "--site",
            "demo",
            "--broker",
            "h",
            "--issuer-pubkey",
            "zz",
            "--set",
            "interval_s=5",
            "--set",
            "colour=blue",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "config.json").exists()
    assert (
        "'issuer_pubkey'" in err
        and "'interval_s' must be between 60 and 3600" in err
        and "'colour'" in err
    )


def test_flash_dry_run_builds_the_xtensa_image_and_shows_the_steps(tmp_path):
    fw = tmp_path / "ESP32_GENERIC.bin"
    fw.write_bytes(b"\xe9" + bytes(4095))
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "flash", "--board", "esp32_devkitc", "--dry-run",
         "--port", "/dev/ttyUSB7", "--micropython", str(fw)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "esptool --chip esp32 --port /dev/ttyUSB7 erase-flash" in out.stdout
    assert f"write-flash -z 0x1000 {fw}" in out.stdout
    assert "mpremote connect /dev/ttyUSB7 fs cp -r" in out.stdout
    assert "nothing was written" in out.stdout
    image = flash.build("esp32_devkitc")
    assert (image / "main.py").exists() and (image / "lib" / "meter_app.mpy").exists()
    assert (image / "lib" / "hal.mpy").exists() and (image / "board.json").exists()
    assert (image / "lib" / "esp32_hal.mpy").exists()  # the HAL parts every ESP32 board shares


def test_python_m_tools_flash_still_works(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tools.flash", "--board", "esp32_devkitc", "--port", "/dev/x",
         "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "mpremote connect /dev/x" in out.stdout


def test_flash_without_a_port_says_so_and_writes_nothing():
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "flash", "--board", "esp32_devkitc", "--port",
         "/dev/ttyUSB-missing"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "no serial port /dev/ttyUSB-missing" in out.stderr


def test_flash_refuses_a_micropython_bin_bigger_than_the_app_partition(tmp_path):
    fw = tmp_path / "huge.bin"
    with open(fw, "wb") as f:
        f.truncate(0x1F0000 + 1)
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "flash", "--board", "esp32_devkitc", "--port",
         "/dev/ttyUSB0", "--micropython", str(fw), "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "huge.bin is too big for esp32_devkitc" in out.stderr and "1984 KiB" in out.stderr


def test_build_refuses_an_image_the_board_cannot_hold_twice(monkeypatch):
    from dataclasses import replace

    from tools import build as build_mod
    from tools.errors import BuildError

    small = replace(build_mod.board_info("esp32_devkitc"), fs_bytes=300 * 1024)
    monkeypatch.setattr(build_mod, "board_info", lambda _board: small)
    root = build_mod.build("esp32_devkitc")
    with pytest.raises(BuildError, match="image too big for esp32_devkitc"):
        build_mod.check_fits("esp32_devkitc", root)


def test_sgrid_lists_the_tool_commands_with_help():
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, timeout=60
    )
    for name in ("build", "flash", "provision"):
        assert re.search(rf"^  {name} +\S", out.stdout, re.M), out.stdout
    for name in ("build", "flash", "provision"):
        sub = subprocess.run(
            [sys.executable, "-m", "gateway", name, "--help"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sub.returncode == 0 and "--board" in sub.stdout + "--board" and "Usage" in sub.stdout
