"""Put the meter firmware on a board: MicroPython with esptool (optional), then the image with
mpremote, then a reset.

    sgrid flash --board esp32_devkitc --port /dev/ttyUSB0 --micropython ESP32_GENERIC-v1.27.bin
    sgrid flash --board esp32c3_plug --port /dev/ttyACM0        # only copy/refresh the image
    sgrid flash --board emulated --port /dev/pts/7               # an emulated board's console
    sgrid flash --board esp32_devkitc --port /dev/ttyUSB0 --dry-run   # print the steps only
    (`python -m tools.flash ...` is the same command)

Before writing anything it checks the port exists, the chip on it is the board's (esptool's
chip id for MicroPython, the REPL's sys.implementation._machine for the image) and that the
MicroPython .bin fits the app partition and the image fits the filesystem twice (A/B updates).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.boards import BoardInfo, board_info
from tools.build import build, check_fits
from tools.errors import FlashError
from tools.mpremote_run import board_machine, check_port, copy_image_cmd

_CHIP_RE = re.compile(r"(?:Chip is|Chip type:|Detecting chip type\.\.\.)\s*(ESP32[-\w]*)")


@dataclass(frozen=True)
class Step:
    what: str
    cmd: list[str]


def plan(info: BoardInfo, port: str, image: Path, micropython_bin: Path | None) -> list[Step]:
    py = sys.executable
    steps: list[Step] = []
    if micropython_bin is not None:
        assert info.esptool_chip and info.firmware_offset
        esptool = [py, "-m", "esptool", "--chip", info.esptool_chip, "--port", port]
        steps.append(Step("erase the flash", [*esptool, "erase-flash"]))
        steps.append(Step("write MicroPython", [*esptool, "--baud", "460800", "write-flash",
                                                 "-z", info.firmware_offset, str(micropython_bin)]))  # fmt: skip
    steps.append(Step("copy the image and reset", copy_image_cmd(port, image)))
    return steps


def check_micropython_bin(info: BoardInfo, micropython_bin: Path) -> None:
    if info.emulated:
        raise FlashError(
            f"{info.id} runs MicroPython in the board process: there is no MicroPython .bin to "
            "write (drop --micropython)"
        )
    if not micropython_bin.is_file():
        raise FlashError(f"--micropython: no such file {micropython_bin}")
    size = micropython_bin.stat().st_size
    if info.app_bytes is not None and size > info.app_bytes:
        raise FlashError(
            f"{micropython_bin.name} is too big for {info.id}: {size / 1024:.0f} KiB, the app "
            f"partition holds {info.app_bytes / 1024:.0f} KiB"
        )


def esptool_chip(port: str) -> str:
    """The chip esptool finds on `port` (e.g. ESP32, ESP32-C3)."""
    proc = subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "auto", "--port", port, "chip-id"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    m = _CHIP_RE.search(proc.stdout + proc.stderr)
    if m is None:
        raise FlashError(
            f"esptool found no ESP chip on {port} (hold BOOT while pressing EN to enter the "
            f"bootloader?): {(proc.stdout + proc.stderr).strip()[-300:]}"
        )
    return m.group(1)


def check_chip_esptool(info: BoardInfo, port: str) -> None:
    found = esptool_chip(port).replace("-", "").lower()
    if found != (info.esptool_chip or "").lower():
        raise FlashError(
            f"wrong chip on {port}: esptool found {found.upper()}, board {info.id} is "
            f"{info.mcu} (choose the board with --board)"
        )


def check_chip_repl(info: BoardInfo, port: str) -> None:
    machine = board_machine(port)
    if not info.machine_matches(machine):
        raise FlashError(
            f"wrong chip on {port}: its MicroPython runs on {machine!r}, board {info.id} needs "
            f"{info.mcu} (choose the board with --board)"
        )


def flash(
    board: str,
    port: str,
    micropython_bin: Path | None = None,
    dry_run: bool = False,
    echo=print,  # noqa: ANN001
) -> int:
    """Build, check and flash; returns the image size in bytes. Raises ToolError subclasses."""
    info = board_info(board)
    if micropython_bin is not None:
        check_micropython_bin(info, micropython_bin)
    image = build(board)
    size = check_fits(board, image)
    echo(f"image for {board}: {size / 1024:.1f} KiB in {image}")
    steps = plan(info, port, image, micropython_bin)
    if dry_run:
        for step in steps:
            echo(f"# {step.what}\n$ {shlex.join(step.cmd)}")
        echo("dry run: nothing was written")
        return size
    check_port(port)
    if micropython_bin is not None:
        check_chip_esptool(info, port)
    for step in steps:
        if step.cmd[2] == "mpremote":
            check_chip_repl(info, port)  # after MicroPython is on it: the REPL answers
        echo(f"# {step.what}\n$ {shlex.join(step.cmd)}")
        rc = subprocess.call(step.cmd)
        if rc != 0:
            raise FlashError(f"{step.what} failed (exit code {rc})")
    echo(f"flashed {board} on {port}")
    return size


def main(argv: list[str] | None = None) -> int:
    from tools.cli import flash_cmd, run_standalone

    return run_standalone(flash_cmd, argv, "python -m tools.flash")


if __name__ == "__main__":
    raise SystemExit(main())
