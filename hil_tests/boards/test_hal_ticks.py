"""Two calls the emulated HAL mostly answers without the board process (boards/emulated/device/
hal.py). ticks_ms: the board's virtual clock, read a few times a second and counted on from the
VM's own clock in between; it must never run ahead of the board's clock, never go back, and keep
up with it. watchdog_feed: sent at most every eighth of the timeout (100 ms)."""

import json

from boards.emulated.host.board import BoardConfig, EmulatedBoard
from boards.emulated.host.vclock import VirtualClock
from tools.build import build

SCRIPT = """
import hal, json, time
b = hal.Board()
first = last = b.ticks_ms()
ahead = back = n = 0
lag = 0
t_end = time.ticks_add(time.ticks_ms(), 1200)
while time.ticks_diff(t_end, time.ticks_ms()) > 0:
    t = b.ticks_ms()
    h = hal._call("ticks_ms")  # the board's clock, read after ours
    ahead += t > h
    back += t < last
    lag = max(lag, h - t)
    last = t
    n += 1
    if n % 50 == 0:
        gc.collect()
print("J " + json.dumps({"n": n, "ahead": ahead, "back": back, "span": last - first, "lag": lag}))
"""


def test_ticks_are_counted_in_the_vm_and_never_run_ahead_of_the_board(tmp_path):
    clock = VirtualClock(speed=480)
    board = EmulatedBoard(
        BoardConfig(flash_dir=tmp_path / "flash", rom_dir=build("emulated"), clock=clock)
    )
    reads = []
    real_ticks = clock.ticks_ms
    clock.ticks_ms = lambda: reads.append(1) or real_ticks()  # type: ignore[method-assign]
    try:
        out = board.run_script(SCRIPT)
    finally:
        board.close()
    assert out.exit_code == 0, out.stderr
    r = json.loads(next(x[2:] for x in out.stdout.splitlines() if x.startswith("J ")))
    assert r["n"] > 20, r
    assert r["ahead"] == 0 and r["back"] == 0, r
    # 1.2 real s at 480x: ~576 virtual s went by, and the HAL saw them (a loaded machine may
    # stretch the loop, never shrink it)
    assert r["span"] >= 500_000, r
    # the HAL read the board's clock a few times a second, not once per ticks_ms()
    assert len(reads) - r["n"] < r["n"] / 4, (len(reads), r)


FEEDS = """
import hal
b = hal.Board()
b.watchdog_start(30000)
for i in range(3000):
    b.watchdog_feed()
    if i % 100 == 0:
        gc.collect()
print("fed")
"""


def test_watchdog_feeds_in_quick_succession_are_not_all_sent(tmp_path):
    board = EmulatedBoard(BoardConfig(flash_dir=tmp_path / "flash", rom_dir=build("emulated")))
    sent = []
    real_feed = board._wdt_feed
    board._wdt_feed = lambda arg: sent.append(1) or real_feed(arg)  # type: ignore[method-assign]
    try:
        out = board.run_script(FEEDS)
    finally:
        board.close()
    assert out.exit_code == 0 and "fed" in out.stdout, out.stderr
    # 3000 feeds in a tight loop take well under a second: a feed is sent at most every 100 ms
    assert 1 <= len(sent) < 3000 / 10, len(sent)
