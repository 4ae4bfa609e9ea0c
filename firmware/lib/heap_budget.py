# When main.py collects garbage, and the data-heap high-water mark the board reports.
#
# A collection marks the whole heap: on the emulated board that includes the loaded code (~3 M
# fuel, more than a busy step's own work), so main.py does not collect after every step but once
# the garbage piled up since the last collection could leave less free heap than one step may
# need (_RESERVE). The garbage is counted with micropython.mem_total() (bytes allocated since
# boot: a counter read), not gc.mem_free(), which walks the heap's allocation table (~1 M fuel);
# the free heap itself is measured once per collection. A build without memory statistics (an
# ESP32's, where the code is frozen in flash and a collection is cheap) collects after every
# step. Collections stay at main.py's top level either way (docs/emulated-board.md).
import gc

import micropython
from micropython import const

# more than one step allocates at most: a signature check's slice ~20 KB of short-lived
# integers (uplink.py); the data-heap high-water mark, live data included, is ~21 KB (bench_board)
_RESERVE = const(40 * 1024)
# heap blocks taken per byte mem_total() counts, at most _SLACK_NUM / _SLACK_DEN: blocks are 16
# bytes, and a buffer that grew by moving left its old blocks behind while the counter added only
# the growth. Measured in `sgrid sim` (home, PV and battery meters, 4,500 collections): 1.02
# median, 1.12 at most.
_SLACK_NUM = const(5)
_SLACK_DEN = const(4)


class HeapBudget:
    def __init__(self, board, code_ram):
        self._board = board
        self._code_ram = code_ram  # heap taken by the loaded code (frozen on a real ESP32)
        self._count = getattr(micropython, "mem_total", None)
        self.peak = 0  # data-heap high-water mark: live data + one step's allocations
        self._live = 0  # data heap in use after the last collection
        self._room = 0  # bytes that may be allocated before the next collection
        self._mark = 0  # the counter at the last collection
        self._begin = 0  # ... at the start of this step
        self._collected = True
        self._heap = gc.mem_alloc() + gc.mem_free()

    def step_begins(self):
        if self._collected:  # main.py collected after the last step: measure what it left
            self._collected = False
            used = gc.mem_alloc()
            self._live = used - self._code_ram
            self._room = (self._heap - used - _RESERVE) * _SLACK_DEN // _SLACK_NUM
            self._mark = self._count() if self._count else 0
        self._begin = self._count() if self._count else 0

    def step_ends(self):
        """True when main.py should collect before the next step."""
        if self._count is None:
            self._report(gc.mem_alloc() - self._code_ram)  # live data + this step's garbage
            self._collected = True
            return True
        now = self._count()
        self._report(self._live + now - self._begin)
        # negative once the counter (a small int) wrapped at 2**30: collect
        since = now - self._mark
        self._collected = since < 0 or since >= self._room
        return self._collected

    def failed(self):
        """A step failed (perhaps on a full heap): collect."""
        self._collected = True
        return True

    def _report(self, peak):
        if peak > self.peak:
            self.peak = peak
            self._board.report("heap_peak", peak)
