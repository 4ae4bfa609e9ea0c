"""HIL: one emulated ESP32 running the real firmware image in real MicroPython, as an OS process."""

import json
import os
import re
import shutil
import time

import pytest

from hil_tests.rig.board_process import BoardProcess


@pytest.fixture
def board(tmp_path):
    b = BoardProcess(flash_dir=tmp_path / "flash", board_id="emu-hil")
    yield b
    b.stop()


def test_boots_and_prints_banner_with_version_board_and_heap(board):
    board.start(wait_banner=False)
    m = board.expect(r"seamless-grid-meter (\S+) on board (\S+), boot (\d+), free heap (\d+)")
    version, board_id, boot, free = m.groups()
    assert version == "0.1.0" and board_id == "emu-hil" and boot == "1"
    st = board.state()
    # an ESP32-sized data heap (plus the heap this build spends on code an ESP32 keeps frozen)
    assert st["heap_bytes"] == 110 * 1024
    assert 50_000 < int(free) <= st["heap_bytes"] + st["code_ram"]


def _press(board):
    # released, then pressed (again if the meter missed it): the step that sees the press
    # counts the pulses given before it, then prints the status line
    return int(board.status().group(1))


def test_firmware_counts_s0_pulses_driven_by_the_rig(board):
    board.start()
    board.expect(r"meter ready")
    board.pulses(7)  # 1000 imp/kWh: one pulse is one Wh
    assert _press(board) == 7
    board.pulses(5)
    assert _press(board) == 12


def test_relay_stays_open_without_credit_and_closes_for_a_critical_load(board):
    board.start()
    board.expect(r"meter ready")
    time.sleep(0.5)
    assert board.state()["gpio"]["relay"] == 0  # prepaid: never on without credit
    board.stop()
    (board.flash_dir / "config.json").write_text(json.dumps({"critical_load": True}))
    board.start()
    board.wait_gpio("relay", 1)  # a critical load is never cut off
    board.expect(r"relay closed \(reason 6")


def test_power_cut_keeps_flash_files_intact(board):
    board.start()
    flash = board.flash_dir
    (flash / "keep.bin").write_bytes(os.urandom(4096))
    before = (flash / "keep.bin").read_bytes()
    board.power_cut()
    assert not board.alive()
    board.start(wait_banner=False)
    m = board.expect(r"on board \S+, boot (\d+)")
    assert m.group(1) == "2"  # the boot counter on flash survived the cut
    assert (flash / "keep.bin").read_bytes() == before
    assert re.fullmatch(r"\d+", (flash / "boots.txt").read_text())


def test_erasing_flash_starts_from_scratch(board, tmp_path):
    board.start()
    board.stop()
    shutil.rmtree(board.flash_dir)  # erase flash
    board.start(wait_banner=False)
    board.expect(r"boot 1, free heap")


WDT_SCRIPT = """
import hal, time
b = hal.Board()
b.watchdog_start(300)
for _ in range(20):  # fed: runs on
    b.sleep_ms(50)
    b.watchdog_feed()
print("fed loop done")
%s
print("never reached")
"""


@pytest.mark.parametrize(
    "stuck",
    ["while True:\n    pass", "while True:\n    b.sleep_ms(50)"],
    ids=["busy loop without host calls", "loop that never feeds"],
)
def test_the_emulated_watchdog_resets_a_stuck_loop(tmp_path, stuck):
    from boards.emulated.host.board import RESET_EXIT, BoardConfig, EmulatedBoard

    board = EmulatedBoard(BoardConfig(flash_dir=tmp_path))
    try:
        out = board.run_script(WDT_SCRIPT % stuck)
        assert out.exit_code == RESET_EXIT
        assert board.watchdog_resets == 1
        assert "never reached" not in out.stdout
    finally:
        board.close()
