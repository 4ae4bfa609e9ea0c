"""The emulated board's console pty speaks MicroPython's REPL protocol: the real mpremote (PyPI)
works against it as against a board on USB serial, and so does the protocol byte by byte."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from hil_tests.rig.board_process import BoardProcess


def mpremote(port: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def board(tmp_path: Path):
    b = BoardProcess(tmp_path / "flash", board_id="repl-1")
    b.start()
    b.expect(r"meter ready")
    yield b
    b.stop()


def _read_until(port: serial.Serial, ending: bytes, timeout: float = 15) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(ending):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {ending!r}; got {data[-300:]!r}")
        data += port.read(1)
    return data


def test_mpremote_lists_copies_executes_and_resets_against_the_running_meter(board, tmp_path):
    port = str(board.state()["console"])
    listing = mpremote(port, "fs", "ls", "/")
    assert listing.returncode == 0, listing.stderr
    assert "key.bin" in listing.stdout and "journal/" in listing.stdout
    assert board.state()["console_mode"] == "friendly"  # the firmware was stopped by Ctrl-C

    local = tmp_path / "note.txt"
    local.write_text("written over the console\n")
    out = mpremote(
        port,
        "fs", "cp", str(local), ":note.txt",
        "+", "exec", "import os; print('cwd', os.getcwd(), 'size', os.stat('note.txt')[6])",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "cwd /flash size 25" in out.stdout
    assert (board.flash_dir / "note.txt").read_text() == "written over the console\n"

    err = mpremote(port, "exec", "1/0")
    assert err.returncode == 1 and "ZeroDivisionError" in err.stdout + err.stderr

    boots = board.state()["boots"]
    out = mpremote(port, "reset")
    assert out.returncode == 0, out.stderr
    board.expect(r"meter ready", timeout=30)  # a hard reset boots the firmware again
    assert board.state()["boots"] == boots + 1 and board.state()["console_mode"] == "app"


def test_raw_repl_raw_paste_and_soft_reset_byte_by_byte(board):
    with serial.Serial(str(board.state()["console"]), timeout=0.2) as port:
        port.write(b"\r\x03")  # interrupt the firmware
        _read_until(port, b">>> ")
        port.write(b"6*7\r")
        assert b"42" in _read_until(port, b"42\r\n>>> ")
        port.write(b"\x01")
        _read_until(port, b"raw REPL; CTRL-B to exit\r\n>")
        port.write(b"print('out')\nraise ValueError('bad')\x04")
        reply = _read_until(port, b"\x04>")
        assert reply.startswith(b"OK")
        out, err, _ = reply[2:].split(b"\x04")
        assert out.strip() == b"out" and b"ValueError: bad" in err

        # raw-paste: window size announced, one \x01 per window consumed, \x04 ends both ways
        port.write(b"\x05A\x01")
        header = port.read(5)
        assert header[:2] == b"R\x01" and header[4:5] == b"\x01"
        window = int.from_bytes(header[2:4], "little")
        code = b"x = 0\n" + b"x += 1\n" * (window // 7 * 3) + b"print('x', x)\n"
        credit = 2 * window  # the announced window plus the \x01 already sent
        sent = 0
        while sent < len(code):
            while credit == 0:
                assert port.read(1) == b"\x01"
                credit += window
            chunk = code[sent : sent + credit]
            port.write(chunk)
            sent += len(chunk)
            credit -= len(chunk)
        port.write(b"\x04")
        rest = _read_until(port, b"\x04>")
        assert rest.lstrip(b"\x01").startswith(b"\x04")
        assert b"x %d" % (window // 7 * 3) in rest

        # state persists between executions, and a soft reset (Ctrl-D) wipes it
        port.write(b"y = 5\x04")
        _read_until(port, b"\x04>")
        port.write(b"\x04")
        _read_until(port, b"soft reboot\r\n")
        _read_until(port, b"raw REPL; CTRL-B to exit\r\n>")
        port.write(b"print('y' in globals())\x04")
        assert b"False" in _read_until(port, b"\x04>")

        # Ctrl-C interrupts a running program (at its next call into the board)
        port.write(
            b"import machine, time\nwhile True:\n time.sleep_ms(10)\n machine.unique_id()\x04"
        )
        _read_until(port, b"OK")
        port.write(b"\x03")
        assert b"KeyboardInterrupt" in _read_until(port, b"\x04>")

        port.write(b"\x02")  # back to the friendly REPL
        _read_until(port, b">>> ")
    state = board.state()
    assert state["soft_resets"] == 1 and state["console_mode"] == "friendly"
