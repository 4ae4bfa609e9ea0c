"""Board descriptions as data: boards/<id>/board.json, read once, with the fields the tools need.

target          "mpy" (a MicroPython board) or "emulated"
march           mpy-cross -march for the image (null: portable bytecode)
esptool_chip    esptool's --chip for writing MicroPython (real boards)
firmware_offset where the MicroPython .bin goes (0x1000 on the ESP32, 0x0 on the C3)
app_bytes       size of the app partition that holds MicroPython
fs_bytes        size of the filesystem partition that holds the image and the meter's data
repl_machine    regex on sys.implementation._machine: the chip the REPL must report
hal_common      a folder of boards/ whose device/ modules this board's HAL builds on (optional)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tools.errors import BoardError

REPO = Path(__file__).resolve().parent.parent
BOARDS = REPO / "boards"
DATA_RESERVE = 256 * 1024  # journal, registers, key, config, credit: what the meter writes


@dataclass(frozen=True)
class BoardInfo:
    id: str
    name: str
    mcu: str
    march: str | None
    fs_bytes: int
    repl_machine: str
    esptool_chip: str | None = None
    firmware_offset: str | None = None
    app_bytes: int | None = None
    micropython_board: str | None = None
    hal_common: str | None = None

    @property
    def emulated(self) -> bool:
        return self.esptool_chip is None

    def machine_matches(self, machine: str) -> bool:
        return re.search(self.repl_machine, machine) is not None


def known_boards() -> list[str]:
    return sorted(p.parent.name for p in BOARDS.glob("*/board.json"))


def board_info(board: str) -> BoardInfo:
    path = BOARDS / board / "board.json"
    if not path.is_file():
        raise BoardError(f"unknown board {board!r} (known: {', '.join(known_boards())})")
    raw = json.loads(path.read_text())
    try:
        return BoardInfo(
            id=raw["id"],
            name=raw["name"],
            mcu=raw["mcu"],
            march=raw.get("march"),
            fs_bytes=int(raw["fs_bytes"]),
            repl_machine=raw["repl_machine"],
            esptool_chip=raw.get("esptool_chip"),
            firmware_offset=raw.get("firmware_offset"),
            app_bytes=raw.get("app_bytes"),
            micropython_board=raw.get("micropython_board"),
            hal_common=raw.get("hal_common"),
        )
    except KeyError as exc:
        raise BoardError(f"{path}: missing key {exc.args[0]!r}") from None
