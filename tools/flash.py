"""Put the meter firmware on a real ESP32 board.

    uv run python -m tools.flash --port /dev/ttyUSB0 --micropython ESP32_GENERIC-v1.24.bin
        # erase, write MicroPython (esptool), then copy the image (mpremote)
    uv run python -m tools.flash --port /dev/ttyUSB0           # only copy/refresh the image
    uv run python -m tools.flash --dry-run                     # print the commands

The image is built first (`tools.build --board esp32_devkitc`: .mpy for xtensawin). For a frozen
build instead, see boards/esp32_devkitc/manifest.py.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from tools.build import build


def commands(port: str, image: Path, micropython_bin: Path | None) -> list[list[str]]:
    py = sys.executable
    cmds: list[list[str]] = []
    if micropython_bin is not None:
        cmds.append([py, "-m", "esptool", "--chip", "esp32", "--port", port, "erase_flash"])
        cmds.append([py, "-m", "esptool", "--chip", "esp32", "--port", port, "--baud", "460800",
                     "write_flash", "-z", "0x1000", str(micropython_bin)])  # fmt: skip
    cmds.append([py, "-m", "mpremote", "connect", port, "fs", "cp", "-r", f"{image}/.", ":"])
    cmds.append([py, "-m", "mpremote", "connect", port, "reset"])
    return cmds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", default="/dev/ttyUSB0", help="the board's serial port")
    ap.add_argument("--micropython", type=Path, help="a MicroPython ESP32 .bin to write first")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    image = build("esp32_devkitc")
    for cmd in commands(args.port, image, args.micropython):
        print("$ " + shlex.join(cmd))
        if not args.dry_run:
            rc = subprocess.call(cmd)
            if rc != 0:
                print(f"flash: step failed with exit code {rc}", file=sys.stderr)
                return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
