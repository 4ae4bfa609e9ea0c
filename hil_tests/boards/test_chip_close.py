"""The emulated BL0942 chip serves on descriptors numbered above 1024 (a 56-node sim's rig holds
about 610, a larger grid's more; pyserial's read() uses select(), which refuses them) and its thread is gone before
stop() closes the port (a thread still serving would read whatever file takes the number next)."""

from __future__ import annotations

import os
import select
import time
import tty

from boards.emulated.host.bl0942_chip import BL0942Chip, checksum
from hil_tests.fd_audit import descriptors_above, started_since, threads_now, tty_and_pipe_fds


def answer(master: int, timeout: float = 30.0) -> bytes:
    os.write(master, b"\x58\xaa")
    data, deadline, lines = b"", time.monotonic() + timeout, select.poll()
    lines.register(master, select.POLLIN)
    while len(data) < 23 and time.monotonic() < deadline:
        if lines.poll(100):
            data += os.read(master, 23 - len(data))
    return data


def test_the_chip_answers_on_descriptors_numbered_above_1024():
    with descriptors_above(1024):
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            with BL0942Chip(os.ttyname(slave), lambda: (1000.0, 230.0)) as chip:
                assert chip._serial.fileno() > 1024
                frame = answer(master)
            assert len(frame) == 23 and frame[22] == checksum(frame[:22])
        finally:
            os.close(master)
            os.close(slave)


def test_stop_returns_once_the_chip_thread_is_gone_and_its_port_is_closed(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        threads, fds = threads_now(), tty_and_pipe_fds()
        chip = BL0942Chip(os.ttyname(slave), lambda: (1000.0, 230.0))
        (poller,) = started_since(threads, ("bl0942-chip",))
        chip.stop()
        assert not poller.is_alive()
        assert tty_and_pipe_fds() <= fds
        (tmp_path / "f").write_text("kept")
        assert (tmp_path / "f").read_text() == "kept"
        chip.stop()  # twice is harmless
    finally:
        os.close(master)
        os.close(slave)
