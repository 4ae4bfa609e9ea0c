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
            board.start()
            board.expect("meter ready")
            st = board.state()
            assert st["profile"] == "esp32c3_plug"
            assert st["pins"]["relay"] == 5 and st["pins"]["meter_uart"]["rx"] == 6
            assert "s0" not in st["features"]
            with pytest.raises(RuntimeError, match="no S0 input"):
                board.pulses(10)
            deadline = time.monotonic() + 60
            while len(journal_records(flash)) < 3:
                assert time.monotonic() < deadline, "no readings from the plug's BL0942"
                time.sleep(0.3)
            readings = [rd.decode(r)[0] for r in journal_records(flash).values()]
            full = [r for r in readings if r.kind == rd.KIND_READING][1:]
            assert full and all(abs(r.interval_import_wh - 10) <= 4 for r in full), full
        finally:
            board.stop()
            chip.stop()
