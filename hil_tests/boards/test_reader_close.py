"""Closing a console or UART stops its reader thread before the descriptor is closed.

A reader still running after close() reads whatever file takes the descriptor's number next:
CI saw `flash/resets` read back empty right after `board.close()` (stop 20), the console's reader
had taken the bytes. So close() returns only once the reader is gone, and every descriptor the
peripheral had is closed then.
"""

import pytest

from boards.emulated.host.console import ConsoleRepl
from boards.emulated.host.pty_uart import PtyUart
from boards.emulated.host.waker import Waker
from hil_tests.fd_audit import started_since, threads_now, tty_and_pipe_fds


@pytest.mark.parametrize("make", [lambda w: ConsoleRepl(None, w), lambda w: PtyUart("u", None, w)],
                         ids=["console", "uart"])  # fmt: skip
def test_close_returns_once_the_reader_is_gone_and_its_descriptors_are_closed(make, tmp_path):
    wake = Waker()
    threads, fds = threads_now(), tty_and_pipe_fds()
    peripheral = make(wake)
    (reader,) = started_since(threads, ("console", "uart-"))
    peripheral.close()
    assert not reader.is_alive()
    assert tty_and_pipe_fds() <= fds
    # what a stale reader would have stolen: the next file opened gets a freed number
    (tmp_path / "f").write_text("kept")
    assert (tmp_path / "f").read_text() == "kept"
    peripheral.close()  # twice is harmless
    wake.close()


def test_a_closed_wake_line_is_not_written():
    wake = Waker()
    wake.close()
    wake.set()  # would write a byte into whatever file reused the pipe's number
    assert not wake.is_set()
