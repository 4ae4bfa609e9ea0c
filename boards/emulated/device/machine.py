# `machine` on the emulated board: the WASI port's own module plus what an ESP32's machine
# offers and host tools use (mpremote's `reset` runs `machine.reset()`).
import binascii
import sys

from board_boot import host_call
from umachine import *  # noqa: F403


def reset():
    host_call("reset")
    sys.exit(3)  # the board process reboots the VM: a hard reset


def soft_reset():
    sys.exit(4)


def unique_id():
    return binascii.unhexlify(host_call("board_info")["unique_id"])
