"""`--board-profile`: the emulated board plays a real board's pin map, features and calibration;
the ESP32-C3 smart plug meters with its BL0942 and has no S0 input to drive."""

from __future__ import annotations

import json
import time

import pytest

from boards.emulated.host.bl0942_chip import BL0942Chip
from boards.emulated.host.vclock import VirtualClock
from hil_tests import REPO_ROOT as REPO
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.flash_reader import journal_records
from hil_tests.rig.wire import PtyWire
from sgcore import reading as rd

PLUG = json.loads((REPO / "boards" / "esp32c3_plug" / "board.json").read_text())


def _readings(flash) -> list[rd.Reading]:
    records = (rd.decode(r)[0] for r in journal_records(flash).values())
    return [r for r in records if r.kind == rd.KIND_READING]


def test_the_smart_plug_profile_meters_with_its_bl0942_and_refuses_s0_pulses(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text(json.dumps({"interval_s": 60, "meter_source": "bl0942"}))
    clock = VirtualClock(speed=20.0)
    with PtyWire("meter") as wire:
        chip = BL0942Chip(wire.a, lambda: (600.0, 230.0), PLUG["calibration"], clock=clock.now)
        board = BoardProcess(flash_dir=flash, board_id="plug-1", clock=clock,
                             uarts={"meter": wire.b}, extra_args=["--board-profile", "esp32c3_plug"])  # fmt: skip
        try:
            board.start(timeout=120)  # headroom for a loaded machine, not a measured figure
            board.expect("meter ready", timeout=120)
            st = board.state()
            assert st["profile"] == "esp32c3_plug"
            assert st["pins"]["relay"] == 5 and st["pins"]["meter_uart"]["rx"] == 6
            assert "s0" not in st["features"]
            with pytest.raises(RuntimeError, match="no S0 input"):
                board.pulses(10)
            deadline = time.monotonic() + 180
            while len(readings := _readings(flash)) < 3:
                assert time.monotonic() < deadline, "no readings from the plug's BL0942"
                time.sleep(0.3)
            full = readings[1:]  # the first interval started mid-way
            assert full
            # power: every sample the chip gave is 600 W, whenever the meter read it (the peak is
            # a sample; the average is the interval's energy over its length)
            assert all(abs(r.peak_power_w - 600) <= 6 for r in full), full
            # energy: the truth is what the chip had integrated when the meter read it. Each
            # reading's total is the chip's energy since the meter's first read, at a read near
            # the reading's end: on a busy host a close comes virtual seconds late (1 real s is
            # 20 virtual ones here, 3 Wh at 600 W) or after a failed read, so the energy moves
            # between intervals (none is lost or made up); 10 +- 4 Wh per interval was flaky
            answers = list(chip.answers)
            base, wh_per_count = answers[0][1], 1000 / chip.cal["bl0942_eref"]
            for r in full:
                near = [(c - base) * wh_per_count for at, c in answers if -20 <= at - r.end <= 40]
                assert any(abs(r.import_wh - wh) <= 1 for wh in near), (r, near[:3], near[-3:])
            assert readings[-1].import_wh == sum(r.interval_import_wh for r in readings)
        finally:
            board.stop()
            chip.stop()
