# Boot stub of the emulated board: the ESP32's ROM + boot.py in one. It lays out the module
# search path like a flashed device (/lib first) and makes the flash directory the current
# directory, then runs the firmware's main.py unmodified.
import os
import sys

sys.path[:] = ["/rom/lib", "/rom", "/board", ""]
os.chdir("/flash")
import main  # noqa: E402,F401
