"""hal.Board.reset() on the emulated board reboots the firmware (a fresh VM, the same flash)."""

import shutil

from boards.emulated.host.board import BoardConfig, EmulatedBoard
from tools.build import build

RESETTING_MAIN = """
import hal
board = hal.Board()
try:
    with open("resets") as f:
        n = int(f.read())
except OSError:
    n = 0
with open("resets", "w") as f:  # closed, as on a real board: unclosed writes may not persist
    f.write(str(n + 1))
print("boot", n)
if n < 2:
    board.reset()
print("done after", n, "resets")
"""


def test_reset_reboots_with_flash_kept_until_the_firmware_stops_resetting(tmp_path, capfd):
    rom = tmp_path / "rom"
    shutil.copytree(build("emulated"), rom)
    (rom / "main.py").write_text(RESETTING_MAIN)
    board = EmulatedBoard(BoardConfig(flash_dir=tmp_path / "flash", rom_dir=rom, max_boots=10))
    try:
        assert board.run() == 0
    finally:
        board.close()
    out = capfd.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("boot")] == [
        "boot 0",
        "boot 1",
        "boot 2",
    ]
    assert "done after 2 resets" in out
    assert board.boots == 3
    assert (tmp_path / "flash" / "resets").read_text() == "3"
