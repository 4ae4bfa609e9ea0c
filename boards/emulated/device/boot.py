# Boot stub of the emulated board: the ESP32's ROM + boot.py in one. It lays out the module
# search path like a flashed device (/lib first) and makes the flash directory the current
# directory, then runs the firmware's main.py unmodified.
#
# Automatic GC is switched off: this WASI MicroPython build cannot see pointers held in wasm
# locals, so a collection inside a running function may free live objects. The firmware's main
# loop collects at its top level every iteration, which is a safe point on every board
# (see docs/emulated-board.md).
import gc
import os
import sys

gc.disable()
sys.path[:] = ["/rom/lib", "/rom", ""]
os.chdir("/flash")
import main  # noqa: E402,F401
