"""main.py collects garbage when heap_budget says so (firmware/lib/heap_budget.py): not after
every step, never so late that a step meets a full heap, and after a failed step."""

from hil_tests.firmware.conftest import json_lines, run_mpy

LOOP = """
import gc, json, micropython
from heap_budget import HeapBudget

class Board:
    reports = {}
    def report(self, key, value):
        self.reports[key] = value

board = Board()
keep = []
def step(i):
    # a busy step: ~%(garbage)d bytes of garbage (a signature slice's integers) and, now and
    # then, a little live data
    junk = [bytearray(%(garbage)d // 8) for _ in range(8)]
    if i %% 50 == 0:
        keep.append(bytearray(64))
    return len(junk)

gc.collect()
budget = HeapBudget(board, gc.mem_alloc())
budget._count = %(count)s
collections = low = 0
for i in range(%(steps)d):
    budget.step_begins()
    step(i)
    if gc.mem_free() < 16 * 1024:
        low += 1
    if budget.step_ends():
        gc.collect()
        collections += 1
failed = budget.failed()
print("J " + json.dumps({"collections": collections, "low": low, "failed": failed,
                         "peak": board.reports.get("heap_peak", 0)}))
"""


def _run(garbage: int, steps: int = 400, count: str = "budget._count") -> dict:
    out = run_mpy(LOOP % {"garbage": garbage, "steps": steps, "count": count})
    return json_lines(out)[0]


def test_garbage_of_several_steps_is_collected_at_once_and_never_fills_the_heap():
    small = _run(garbage=2000)
    big = _run(garbage=20000)
    # 110 KB of heap less a 40 KB reserve: ~25 steps of 2 KB garbage per collection, ~2 of 20 KB
    assert 400 // 40 <= small["collections"] <= 400 // 15, small
    assert 400 // 4 <= big["collections"] < 400, big
    assert small["low"] == 0 and big["low"] == 0  # a step always found its reserve
    # the high-water mark: live data + one step's garbage, not the garbage piled up
    assert 20000 < big["peak"] < 20000 + 16 * 1024, big
    assert small["failed"] is True and big["failed"] is True


def test_a_build_without_memory_statistics_collects_after_every_step():
    plain = _run(garbage=2000, steps=50, count="None")
    assert plain["collections"] == 50
