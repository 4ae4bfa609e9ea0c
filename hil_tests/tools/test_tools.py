"""The tools a person uses to provision and flash meters, run as a person would."""

import json
import subprocess
import sys

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
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.flash",
            "--dry-run",
            "--port",
            "/dev/ttyUSB7",
            "--micropython",
            "mp.bin",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "esptool --chip esp32 --port /dev/ttyUSB7 erase_flash" in out.stdout
    assert "mpremote connect /dev/ttyUSB7 fs cp -r" in out.stdout
    image = flash.build("esp32_devkitc")
    assert (image / "main.py").exists() and (image / "lib" / "meter_app.mpy").exists()
    assert (image / "lib" / "hal.mpy").exists() and (image / "board.json").exists()
