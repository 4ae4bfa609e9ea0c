"""CI variant of hil_tests/bench/bench_firmware.py: tiny n, no torture; it must run and print."""

from __future__ import annotations

import pytest

from hil_tests.bench import bench_firmware


def test_bench_firmware_runs_and_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    bench_firmware.main(["--n", "2", "--kills", "0"])
    out = capsys.readouterr().out
    for name in bench_firmware.OPS:
        assert name in out
    assert "flash writes per day" in out
    row = next(line for line in out.splitlines() if line.startswith("journal append"))
    fuel = int(row.split()[-4].replace(",", ""))
    assert fuel > 0
