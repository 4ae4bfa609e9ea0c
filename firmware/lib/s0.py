# S0 pulse input (IEC 62053-31), as on DIN-rail meters: energy from a pulse count.
#
# The board counts pulses (a hardware counter, `board.s0.count()`: cumulative since boot);
# this module turns new pulses into mWh with exact integer arithmetic: the remainder below
# one mWh is carried, so e.g. 800 imp/kWh (1.25 Wh per pulse) never drifts.
# An S0 output has no direction: the board says whether it counts import or export.

from sgcore.compat import const

DEFAULT_IMP_PER_KWH = const(1000)
_MWH_PER_KWH = const(1000000)


class S0:
    def __init__(self, counter, imp_per_kwh=DEFAULT_IMP_PER_KWH, export=False):
        if imp_per_kwh <= 0:
            raise ValueError("imp/kWh must be positive")
        self._counter = counter
        self.imp_per_kwh = imp_per_kwh
        self.export = export
        self._last = counter.count()
        self._rem = 0  # pulses * 1e6 not yet turned into mWh
        self.restarts = 0  # the counter went backwards (its hardware restarted)

    def take_energy(self):
        """(import mWh, export mWh) from the pulses since the last call."""
        count = self._counter.count()
        pulses = count - self._last
        if pulses < 0:  # the counter restarted from 0: what it shows is all new
            self.restarts += 1
            pulses = count
        self._last = count
        self._rem += pulses * _MWH_PER_KWH
        mwh = self._rem // self.imp_per_kwh
        self._rem -= mwh * self.imp_per_kwh
        return (0, mwh) if self.export else (mwh, 0)
