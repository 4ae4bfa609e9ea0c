# Boot stub of the emulated board: the ESP32's ROM + boot.py in one. It lays out the module
# search path like a flashed device (/lib first), makes the flash directory the current
# directory and runs the firmware's main.py unmodified: from the flash when an image was copied
# there (`sgrid flash`, mpremote), otherwise the factory image in /rom. When the console stops
# the firmware (Ctrl-C) or asks for the raw REPL, the REPL runs here, in the same VM.
#
# Automatic GC is switched off: this WASI MicroPython build cannot see pointers held in wasm
# locals, so a collection inside a running function may free live objects. The firmware's main
# loop collects at its top level every iteration, and so does the REPL loop below: safe points
# on every board (see docs/emulated-board.md). This file's own top-level frame must stay small
# (a few statements, no try/except here): a big one would live in the heap, where main.py's
# collections would free it under our feet.
import gc
import sys

gc.disable()
sys.path[:] = ["/rom/lib"]
import board_boot  # noqa: E402

board_boot.prepare()
if board_boot.runs_firmware():
    board_boot.run_firmware()
while True:
    gc.collect()
    board_boot.serve_one()
