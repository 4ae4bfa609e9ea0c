# The meter application: boot banner, then one bounded slice of work per step(). It only talks
# to the board through the HAL (`hal.Board`), so the same code runs on an ESP32 and on the
# emulated board.
import gc
import os

import hal
import micropython
from fwinfo import FIRMWARE_NAME, FIRMWARE_VERSION
from micropython import const

_LOOP_MS = const(250)
_BOOTS_FILE = "boots.txt"


def _count_boot():
    # A tiny persistent counter: proves the flash survives restarts and power cuts.
    try:
        with open(_BOOTS_FILE) as f:
            boots = int(f.read() or "0")
    except (OSError, ValueError):
        boots = 0
    boots += 1
    with open(_BOOTS_FILE + ".tmp", "w") as f:
        f.write(str(boots))
    os.rename(_BOOTS_FILE + ".tmp", _BOOTS_FILE)
    return boots


class MeterApp:
    def __init__(self):
        self.board = hal.Board()
        self.boots = _count_boot()
        gc.collect()
        print(
            "%s %s on board %s, boot %d, free heap %d"
            % (FIRMWARE_NAME, FIRMWARE_VERSION, self.board.board_id, self.boots, gc.mem_free())
        )
        self._last_pulses = -1
        self._last_button = 0
        self._heap_peak = 0

    def _report_heap(self):
        # The heap high-water mark, for the bench (mem_peak needs MICROPY_MEM_STATS).
        peak = micropython.mem_peak() if hasattr(micropython, "mem_peak") else 0
        if peak > self._heap_peak:
            self._heap_peak = peak
            self.board.report("heap_peak", peak)

    def step(self):
        board = self.board
        pulses = board.s0.count()
        if pulses != self._last_pulses:
            print("s0 pulses %d" % pulses)
            self._last_pulses = pulses
        button = board.button.value()
        if button and not self._last_button:  # a press toggles the relay (local command)
            board.relay.value(not board.relay.value())
            print("relay %s" % ("closed" if board.relay.value() else "open"))
        self._last_button = button
        self._report_heap()
        board.sleep_ms(_LOOP_MS)
