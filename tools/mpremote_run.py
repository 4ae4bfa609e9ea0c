"""Talk to a board's REPL through the real mpremote (a subprocess, as a person would run it).

Used by `sgrid flash` (copy the image), `sgrid provision --port` (write the config, read the
meter's public key back) and the chip check before either writes anything.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tools.errors import FlashError

MPREMOTE_TIMEOUT_S = 120


def mpremote_cmd(port: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "mpremote", "connect", port, *args]


def check_port(port: str) -> None:
    """FlashError unless `port` is a character device (a serial port or a pty)."""
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        raise FlashError(
            f"no serial port {port}: is the board plugged in? (look for /dev/ttyUSB* or "
            "/dev/ttyACM*; an emulated board prints its console pty on start)"
        ) from None
    if not stat.S_ISCHR(mode):
        raise FlashError(f"{port} is not a serial port")


def run_mpremote(port: str, *args: str, what: str) -> str:
    """Run mpremote on `port`; its stdout, or FlashError naming the step that failed."""
    try:
        proc = subprocess.run(
            mpremote_cmd(port, *args), capture_output=True, text=True, timeout=MPREMOTE_TIMEOUT_S
        )
    except FileNotFoundError:
        raise FlashError("mpremote is not installed (pip install mpremote)") from None
    except subprocess.TimeoutExpired:
        raise FlashError(f"{what}: the board on {port} did not answer within "
                         f"{MPREMOTE_TIMEOUT_S} s") from None  # fmt: skip
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-600:]
        raise FlashError(f"{what} failed on {port} (mpremote exit {proc.returncode}): {detail}")
    return proc.stdout


def board_machine(port: str) -> str:
    """What the board's MicroPython says it runs on (sys.implementation._machine)."""
    out = run_mpremote(
        port, "exec", "import sys; print('MACHINE', sys.implementation._machine)", what="chip check"
    )
    for line in out.splitlines():
        if line.startswith("MACHINE "):
            return line[len("MACHINE ") :].strip()
    raise FlashError(f"chip check: the board on {port} did not report its machine: {out[-200:]!r}")


def copy_image_cmd(port: str, image: Path) -> list[str]:
    return mpremote_cmd(port, "fs", "cp", "-r", f"{image}/.", ":", "+", "reset")
