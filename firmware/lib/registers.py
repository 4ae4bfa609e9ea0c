# Energy registers of the meter and their checkpoint on flash (docs/journal.md).
#
# Registers (pure): cumulative import/export in Wh (OBIS 1.8.0 / 2.8.0) fed with energy deltas
# in mWh (sub-Wh remainders carried, so nothing is lost to rounding), and the open interval
# aligned to wall-clock time. interval_import_wh = import_wh - import_wh at the previous close,
# so the interval deltas of consecutive readings always add up to the change of the totals.
# Checkpoint: the totals, the last-close baseline and the interval start in a small file,
# written through a temp file and an atomic rename at most every period_s (and once the reading
# of a closed interval is journaled). A close reaches the checkpoint only with its reading: until
# commit_close() the checkpoint keeps the baseline and start from before the close, so a power cut
# between closing an interval and journaling its reading closes the same interval again at boot
# (its energy lands in the next reading; the deltas still add up: docs/reading-format.md).

import binascii
import os
import struct

from sgcore.compat import const
from sgcore.reading import MEASURED_FIELDS

DEFAULT_INTERVAL_S = const(900)
DEFAULT_CHECKPOINT_S = const(60)
_FMT = ">4sIIHIHIHIHI"  # magic, gen, import Wh+mWh, export Wh+mWh, baseline (same), start
_LEN = const(36)  # struct.calcsize(_FMT), then a crc32
_MAGIC = b"SGR1"


class Interval:
    """A closed interval: what a reading reports (OBIS 1.8.0/2.8.0 and 1.7.0/2.7.0)."""

    __slots__ = MEASURED_FIELDS + ("restarted",)  # the reading's fields (sgcore.reading)


class Registers:
    def __init__(self, interval_s=DEFAULT_INTERVAL_S):
        self.interval_s = interval_s
        self.import_wh = 0
        self.export_wh = 0
        self.imp_mwh = 0  # remainders below 1 Wh
        self.exp_mwh = 0
        self.base = [0, 0, 0, 0]  # import Wh, mWh, export Wh, mWh at the previous close
        self.start = 0  # start of the open interval (0: none, the clock was never set)
        self.restarted = False  # the open interval lived through a reboot
        self.changes = 0  # energy updates since the last checkpoint
        self._uncommitted = []  # (base, start) from before each close whose reading is not journaled
        self._reset_samples()

    def _reset_samples(self):
        self.peak_w = 0
        self._v_sum = 0
        self._v_n = 0

    def add_energy(self, import_mwh, export_mwh):
        """Count energy measured since the last call (both >= 0, mWh)."""
        if import_mwh < 0 or export_mwh < 0:
            raise ValueError("energy deltas are never negative")
        if import_mwh:
            r = self.imp_mwh + import_mwh
            self.import_wh += r // 1000
            self.imp_mwh = r % 1000
        if export_mwh:
            r = self.exp_mwh + export_mwh
            self.export_wh += r // 1000
            self.exp_mwh = r % 1000
        if import_mwh or export_mwh:
            self.changes += 1

    def sample(self, power_w, voltage_dv):
        """One instantaneous sample (W: + import, - export) for peak power and mean voltage."""
        if abs(power_w) > abs(self.peak_w):
            self.peak_w = power_w
        if voltage_dv > 0:
            self._v_sum += voltage_dv
            self._v_n += 1

    def floor(self, import_wh, export_wh, closed_at=0):
        """Never below the totals of the last journaled record (after a lost checkpoint).

        closed_at: the end of the interval that record closed (an interval reading; 0 for a relay
        event, whose totals are mid-interval): that close was journaled, so the baseline and the
        open interval move past it even when the checkpoint did not see it."""
        if import_wh > self.import_wh:
            self.import_wh, self.imp_mwh = import_wh, 0
        if export_wh > self.export_wh:
            self.export_wh, self.exp_mwh = export_wh, 0
        if closed_at and closed_at > self.start:
            self.base = [import_wh, 0, export_wh, 0]
            self.start = closed_at
        elif self.start == 0 and (import_wh > self.base[0] or export_wh > self.base[2]):
            self.base = [import_wh, 0, export_wh, 0]  # no checkpoint at all: start from the record

    def tick(self, now):
        """Advance to wall-clock time `now` (unix s, 0 = unset); returns a closed Interval or None."""
        if now <= 0:
            return None  # no clock: keep counting energy, close nothing
        aligned = now - now % self.interval_s
        if self.start == 0 or now < self.start:  # first valid time, or the clock went back
            self.start = aligned
            return None
        end = self.start + self.interval_s
        if now < end:
            return None
        # a late close (the clock jumped, the loop stalled) covers the whole span, so the average
        # power of the reading is not inflated by energy from outside its window
        iv = self._close(aligned if aligned > end else end)
        self.start = aligned
        return iv

    def _close(self, end):
        b = self.base
        iv = Interval()
        iv.start = self.start
        iv.end = end
        iv.import_wh = self.import_wh
        iv.export_wh = self.export_wh
        iv.interval_import_wh = self.import_wh - b[0]
        iv.interval_export_wh = self.export_wh - b[2]
        net = (iv.interval_import_wh - iv.interval_export_wh) * 1000
        net += self.imp_mwh - b[1] - self.exp_mwh + b[3]
        iv.avg_power_w = net * 18 // (5 * (end - self.start))  # mWh over seconds -> W
        iv.peak_power_w = self.peak_w
        iv.voltage_dv = self._v_sum // self._v_n if self._v_n else 0
        iv.restarted = self.restarted
        self._uncommitted.append((self.base, self.start))
        self.base = [self.import_wh, self.imp_mwh, self.export_wh, self.exp_mwh]
        self.restarted = False
        self.changes += 1  # the new baseline must reach the checkpoint
        self._reset_samples()
        return iv

    def commit_close(self):
        """The reading of the oldest uncommitted close is journaled (or will never be): the
        checkpoint may now hold that close."""
        if self._uncommitted:
            self._uncommitted.pop(0)
            self.changes += 1

    def persisted(self):
        """(baseline, interval start) as the checkpoint may hold them."""
        return self._uncommitted[0] if self._uncommitted else (self.base, self.start)


class Checkpoint:
    """The registers on flash. Bounded wear: save() at most every period_s while energy flows."""

    def __init__(self, path, period_s=DEFAULT_CHECKPOINT_S, ticks_diff=None, log=print):
        self.path = path
        self.period_ms = period_s * 1000
        self._diff = ticks_diff or (lambda a, b: a - b)
        self._log = log
        self._last_ms = None
        self.gen = 0
        self.writes = 0  # checkpoint files written since boot

    def load(self, regs):
        """Restore regs from the newest intact file; False when there is none."""
        best = None
        for name in (self.path, self.path + ".tmp"):
            got = self._read(name)
            if got is not None and (best is None or got[1] > best[1]):
                best = got
        if best is None:
            return False
        f = best
        self.gen = f[1]
        regs.import_wh, regs.imp_mwh, regs.export_wh, regs.exp_mwh = f[2], f[3], f[4], f[5]
        regs.base = [f[6], f[7], f[8], f[9]]
        regs.start = f[10]
        regs.restarted = True
        regs.changes = 0
        return True

    def maybe_save(self, regs, now_ms, force=False):
        """Save when forced (an interval closed) or when energy changed and period_s passed."""
        if not regs.changes:
            return False
        if (
            not force
            and self._last_ms is not None
            and self._diff(now_ms, self._last_ms) < self.period_ms
        ):
            return False
        self.save(regs)
        self._last_ms = now_ms
        return True

    def save(self, regs):
        self.gen += 1
        b, start = regs.persisted()
        data = struct.pack(
            _FMT, _MAGIC, self.gen, regs.import_wh, regs.imp_mwh, regs.export_wh, regs.exp_mwh,
            b[0], b[1], b[2], b[3], start,
        )  # fmt: skip
        with open(self.path + ".tmp", "wb") as f:
            f.write(data)
            f.write(struct.pack(">I", binascii.crc32(data)))
            f.flush()
        try:
            os.rename(self.path + ".tmp", self.path)
        except OSError:  # no rename over a file here: the .tmp is read at boot too
            os.remove(self.path)
            os.rename(self.path + ".tmp", self.path)
        self.writes += 1
        regs.changes = 0

    def _read(self, name):
        try:
            with open(name, "rb") as f:
                data = f.read(_LEN + 5)
        except OSError:
            return None
        if len(data) != _LEN + 4 or data[0:4] != _MAGIC:
            self._log("registers: ignoring damaged checkpoint " + name)
            return None
        if struct.unpack_from(">I", data, _LEN)[0] != binascii.crc32(data[0:_LEN]):
            self._log("registers: ignoring damaged checkpoint " + name)
            return None
        return struct.unpack_from(_FMT, data, 0)
