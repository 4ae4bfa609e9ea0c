# The meter application: boot banner, then the main loop. It only talks to the board through
# the HAL (`hal.Board`), so the same code runs on an ESP32 and on the emulated board.
import gc

import hal
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
    import os

    os.rename(_BOOTS_FILE + ".tmp", _BOOTS_FILE)
    return boots


def run():
    board = hal.Board()
    gc.collect()
    boots = _count_boot()
    print(
        "%s %s on board %s, boot %d, free heap %d"
        % (FIRMWARE_NAME, FIRMWARE_VERSION, board.board_id, boots, gc.mem_free())
    )
    last_pulses = -1
    last_button = 0
    while True:
        pulses = board.s0.count()
        if pulses != last_pulses:
            print("s0 pulses %d" % pulses)
            last_pulses = pulses
        button = board.button.value()
        if button and not last_button:  # a press toggles the relay (local command)
            board.relay.value(not board.relay.value())
            print("relay %s" % ("closed" if board.relay.value() else "open"))
        last_button = button
        board.sleep_ms(_LOOP_MS)
