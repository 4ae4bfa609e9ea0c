"""`sgrid board ...`: run emulated boards."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import click

from boards.emulated.host.board import BoardConfig, EmulatedBoard
from boards.emulated.host.vclock import VirtualClock
from boards.emulated.host.wasm import DEFAULT_HEAP


def _parse_uart(values: tuple[str, ...]) -> dict[str, str]:
    uarts = {}
    for item in values:
        name, sep, path = item.partition("=")
        if not sep or name not in ("meter", "rs485"):
            raise click.BadParameter(f"expected meter=PATH or rs485=PATH, got {item!r}")
        uarts[name] = path
    return uarts


@click.group()
def board() -> None:
    """Emulated ESP32 boards running the real firmware in real MicroPython."""


@board.command()
@click.option(
    "--flash",
    "flash_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="The board's flash directory (created if missing; delete it to erase flash).",
)
@click.option(
    "--id",
    "board_id",
    default="emu-1",
    show_default=True,
    help="Board id (also seeds its unique id).",
)
@click.option(
    "--heap",
    "heap_kb",
    default=DEFAULT_HEAP // 1024,
    show_default=True,
    type=click.IntRange(16, 4096),
    help="MicroPython heap in KB (an ESP32-WROOM-32 has ~110).",
)
@click.option(
    "--uart",
    "uarts",
    multiple=True,
    metavar="NAME=PATH",
    help="Attach UART meter|rs485 to an existing tty (one end of a pty wire). "
    "Without it the board makes its own pty and prints its path.",
)
@click.option(
    "--board-profile",
    "profile",
    default="emulated",
    show_default=True,
    help="Play this real board (a folder of boards/, e.g. esp32c3_plug): its pin map, features "
    "and calibration. Lines it lacks (a plug's S0 input) cannot be driven.",
)
@click.option(
    "--console",
    "console_path",
    type=click.Path(),
    help="Attach the console (MicroPython REPL protocol: mpremote works on it) to an existing "
    "tty. Without it the board makes its own pty and prints its path.",
)
@click.option(
    "--control", "control_path", type=click.Path(), help="Unix socket for the rig (pulses, state)."
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Virtual time: how many times faster than real time the board's clock runs.",
)
@click.option("--real-t0", type=float, default=None, help="Shared rig epoch (unix s, real time).")
@click.option("--virtual-t0", type=float, default=None, help="Virtual unix time at --real-t0.")
@click.option(
    "--no-ntp", is_flag=True, help="The network offers no time: the RTC stays unset until set."
)
@click.option(
    "--idle-floor-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1000),
    help="A firmware sleep lasts at least this many real ms (inputs and data still wake it): "
    "at high --speed the idle loop would otherwise spin a core per board.",
)
@click.option(
    "--rom",
    "rom_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="A firmware image built by `python -m tools.build --board emulated` (default: build it now).",
)
def emulate(
    flash_dir: Path,
    board_id: str,
    heap_kb: int,
    uarts: tuple[str, ...],
    profile: str,
    console_path: str | None,
    control_path: str | None,
    speed: float,
    real_t0: float | None,
    virtual_t0: float | None,
    no_ntp: bool,
    idle_floor_ms: float,
    rom_dir: Path | None,
) -> None:
    """Run one emulated board in this process until it stops (Ctrl-C, or SIGKILL for a power cut).

    The console of the firmware is this process's stdout and the console pty (printed on
    stderr as `[board] console: /dev/pts/N`), which speaks MicroPython's REPL protocol:
    `mpremote connect /dev/pts/N fs ls /` stops the firmware (Ctrl-C) as on a real board;
    `mpremote connect /dev/pts/N reset` boots it again. Board messages go to stderr.
    """
    clock = VirtualClock(
        speed=speed, real_t0=real_t0 if real_t0 is not None else time.time(), virtual_t0=virtual_t0
    )
    config = BoardConfig(
        flash_dir=flash_dir,
        board_id=board_id,
        heap_bytes=heap_kb * 1024,
        clock=clock,
        uart_paths=_parse_uart(uarts),
        control_path=control_path,
        console_path=console_path,
        profile=profile,
        ntp=not no_ntp,
        rom_dir=rom_dir,
        idle_floor_ms=idle_floor_ms,
    )
    logging.getLogger("board").setLevel(logging.INFO)
    try:
        emulated = EmulatedBoard(config)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--board-profile") from None
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        code = emulated.run()
    except KeyboardInterrupt:
        code = 130
    finally:
        emulated.close()
        sys.stdout.flush()
    # wasmtime's runtime threads may panic during interpreter teardown: leave without it.
    os._exit(code)
