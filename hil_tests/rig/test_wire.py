"""The rig's serial wire (PtyWire): copies both ways whatever its descriptors' numbers, never
stalls on a far end nobody reads, and its copier is gone before close() frees its descriptors."""

from __future__ import annotations

import os
import time

from hil_tests.fd_audit import descriptors_above, started_since, threads_now, tty_and_pipe_fds
from hil_tests.rig.wire import PtyWire


def read_exactly(fd: int, n: int, timeout: float = 30.0) -> bytes:
    import select

    data, deadline, lines = b"", time.monotonic() + timeout, select.poll()
    lines.register(fd, select.POLLIN)
    while len(data) < n and time.monotonic() < deadline:
        if lines.poll(100):
            data += os.read(fd, n - len(data))
    return data


def through(wire: PtyWire, payload: bytes, src: str, dst: str) -> bytes:
    a = os.open(getattr(wire, src), os.O_RDWR | os.O_NOCTTY)
    b = os.open(getattr(wire, dst), os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(a, payload)
        return read_exactly(b, len(payload))
    finally:
        os.close(a)
        os.close(b)


def test_bytes_cross_when_the_wires_descriptors_are_numbered_above_1024():
    # a 56-node sim's rig holds about 610, a larger grid's more: select() refuses them, poll() not
    with descriptors_above(1024):
        with PtyWire("high") as wire:
            assert min(wire._m_a, wire._m_b) > 1024
            assert through(wire, b"ping", "a", "b") == b"ping"
            assert through(wire, b"pong", "b", "a") == b"pong"


def test_a_far_end_nobody_reads_does_not_stall_the_other_way():
    with PtyWire("stalled") as wire:
        a = os.open(wire.a, os.O_RDWR | os.O_NOCTTY)
        try:
            for _ in range(64):  # 256 KiB towards b, where nobody reads
                os.write(a, bytes(4096))
                assert read_exactly(a, 1, timeout=0) == b""
            assert through(wire, b"still", "b", "a") == b"still"
        finally:
            os.close(a)
        assert wire.dropped > 0


def test_close_returns_once_the_copier_is_gone_and_its_descriptors_are_closed(tmp_path):
    threads, fds = threads_now(), tty_and_pipe_fds()
    wire = PtyWire("closing")
    (copier,) = started_since(threads, ("wire-",))
    wire.close()
    assert not copier.is_alive()
    assert tty_and_pipe_fds() <= fds
    (tmp_path / "f").write_text("kept")  # a copier still running would read the reused number
    assert (tmp_path / "f").read_text() == "kept"
    wire.close()  # twice is harmless
