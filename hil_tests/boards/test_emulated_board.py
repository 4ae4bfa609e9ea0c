"""HIL: one emulated ESP32 running the real firmware image in real MicroPython, as an OS process."""

import os
import re

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
    assert 60_000 < int(free) < 110 * 1024  # an ESP32-sized heap, not the host's


def test_counts_s0_pulses_driven_by_the_rig(board):
    board.start()
    board.pulses(7)
    board.expect(r"s0 pulses 7$")
    board.pulses(5)
    board.expect(r"s0 pulses 12$")


def test_button_press_toggles_the_relay_line(board):
    board.start()
    assert board.state()["gpio"]["relay"] == 0  # off at power-on
    board.set_input("button", 1)
    board.wait_gpio("relay", 1)
    board.expect(r"relay closed")
    board.set_input("button", 0)
    board.set_input("button", 1)
    board.wait_gpio("relay", 0)


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
    for p in board.flash_dir.iterdir():
        p.unlink()
    board.start(wait_banner=False)
    board.expect(r"boot 1, free heap")
