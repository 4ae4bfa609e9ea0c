"""The emulated board's idle floor: at high speed a firmware sleep lasts at least the floor in
real time (the board does not spin a core), and an input still ends it at once."""

import threading
import time

from boards.emulated.host.board import BoardConfig, EmulatedBoard
from boards.emulated.host.vclock import VirtualClock
from tools.build import build


def _board(tmp_path, floor_ms):
    cfg = BoardConfig(flash_dir=tmp_path / "flash", rom_dir=build("emulated"),
                      clock=VirtualClock(speed=480), idle_floor_ms=floor_ms)  # fmt: skip
    return EmulatedBoard(cfg)


def _slept(board, ms):
    t = time.monotonic()
    board._peripherals()["sleep_ms"](ms)
    return time.monotonic() - t


def test_a_sleep_lasts_the_floor_and_an_input_wakes_it(tmp_path):
    board = _board(tmp_path, 2000.0)  # long floors, so a loaded machine's hiccups do not count
    try:
        assert _slept(board, 250) >= 2.0  # 250 virtual ms at 480x: 0.5 ms, floored to 2 s
        assert _slept(board, 0) < 1.0  # a yield stays a yield
        threading.Timer(0.05, lambda: board._on_control({"op": "pulses", "n": 3})).start()
        assert _slept(board, 250) < 1.5  # the pulses woke it long before the floor
    finally:
        board.close()


def test_without_a_floor_a_sleep_is_its_virtual_length(tmp_path):
    board = _board(tmp_path, 0.0)
    try:
        assert _slept(board, 250) < 1.0  # half a real ms (a loaded machine: a little more)
        assert _slept(board, 480_000) >= 1.0  # 480 virtual s: one real second
    finally:
        board.close()
