"""An emulated board's firmware sleep ends at once when TCP data comes (one select on the wake
line and the sockets, boards/emulated/host/board.py), and the wake line behaves as an event."""

import socket
import threading
import time

from boards.emulated.host.board import BoardConfig, EmulatedBoard
from boards.emulated.host.vclock import VirtualClock
from boards.emulated.host.waker import Waker
from tools.build import build


def test_tcp_data_ends_a_floored_sleep(tmp_path):
    cfg = BoardConfig(flash_dir=tmp_path / "flash", rom_dir=build("emulated"),
                      clock=VirtualClock(speed=480), idle_floor_ms=3000.0)  # fmt: skip
    board = EmulatedBoard(cfg)
    server = socket.create_server(("127.0.0.1", 0))
    try:
        handle = board.tcp.connect("127.0.0.1", server.getsockname()[1], 2000)
        peer, _ = server.accept()
        sleep = board._peripherals()["sleep_ms"]
        t = time.monotonic()
        sleep(250)
        assert time.monotonic() - t >= 3.0  # nothing came: the whole floor
        threading.Timer(0.05, lambda: peer.sendall(b"x")).start()
        t = time.monotonic()
        sleep(250)
        assert time.monotonic() - t < 2.0  # the byte ended it long before the floor
        assert board.tcp.read(handle, 10) == (b"x", False)
        peer.close()
    finally:
        server.close()
        board.close()


def test_the_wake_line_is_an_event():
    w = Waker()
    try:
        assert not w.is_set() and not w.wait(0.01)
        w.set()
        w.set()  # twice: still one event
        assert w.is_set() and w.wait(0)
        w.clear()
        assert not w.is_set() and not w.wait(0.01)
        threading.Timer(0.05, w.set).start()
        assert w.wait(5.0)
    finally:
        w.close()
