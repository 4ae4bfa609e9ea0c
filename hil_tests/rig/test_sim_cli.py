"""The README's main job, `sgrid sim`, runs end to end (short) and reports what it promises."""

import subprocess
import sys

import pytest

from hil_tests.rig.broker import mosquitto_available


@pytest.mark.needs("mosquitto", mosquitto_available())
def test_sgrid_sim_runs_a_short_day_and_draws_the_readings(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "sim",
            "--homes",
            "1",
            "--minutes",
            "12",
            "--speed",
            "120",
            "--interval",
            "60",
            "--workdir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "home-1: bought 500 Wh" in out.stdout
    assert (tmp_path / "run" / "readings.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "gateway" / "state" / "readings.sqlite3").exists()


def test_sgrid_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    for cmd in ("board", "sim", "gateway", "ledger", "channel", "invoice", "pay"):
        assert f"  {cmd}" in out.stdout, cmd
