# When the relay may be closed: the prepaid-meter rules, as a pure state machine.
#
# decide() is called every loop with the current credit and power; it returns the state the
# relay should be in and the reason (a code journaled with every change). It never switches more
# often than min_switch_s, never closes without credit, and never opens a critical load.

from sgcore.compat import const

# reason codes, also carried in relay-event records (docs/credit-tokens.md)
R_POWER_ON = const(1)  # the power-on state: open until the rules allow closing
R_CREDIT = const(2)  # closed: credit available
R_EXHAUSTED = const(3)  # opened: credit (and emergency credit) used up
R_OVERLOAD = const(4)  # opened: power above max_power_w for max_power_hold_s
R_OVERLOAD_RETRY = const(5)  # closed again after overload_retry_s
R_CRITICAL = const(6)  # closed: critical load, never cut
R_WINDOW = const(7)  # closed: inside a paid time window
R_WINDOW_CAP = const(8)  # opened: above the window's power cap


class RelayPolicy:
    def __init__(self, cfg, closed_at_boot=False):
        self.critical = cfg["critical_load"]
        self.low_credit_wh = cfg["low_credit_wh"]
        self.emergency_wh = cfg["emergency_credit_wh"]
        self.max_power_w = cfg["max_power_w"]
        self.hold_ms = cfg["max_power_hold_s"] * 1000
        self.min_switch_ms = cfg["min_switch_s"] * 1000
        self.retry_ms = cfg["overload_retry_s"] * 1000
        self.closed = closed_at_boot
        self.reason = R_POWER_ON
        # ticks of the last switch while it still matters (None afterwards: device ticks wrap
        # every ~12 days, so an old value must not be compared again)
        self._last_switch = None
        self._over_since = None  # ticks when power first went above the limit
        self._tripped_at = None  # ticks of the overload trip

    def low_credit(self, credit_wh):
        return credit_wh <= self.low_credit_wh

    def decide(self, now_ms, credit_wh, power_w, window_cap_w=-1, diff=None):
        """Return (closed, reason, changed). window_cap_w: -1 outside a paid window, else its cap (0 = none).

        `diff(a, b)` is ticks_diff on a device (ticks wrap); plain subtraction by default.
        """
        d = diff or _sub
        if self._last_switch is not None and d(now_ms, self._last_switch) >= self.min_switch_ms:
            self._last_switch = None
        want, why = self._wanted(now_ms, credit_wh, power_w, window_cap_w, d)
        if want == self.closed:
            return self.closed, self.reason, False
        if self._last_switch is not None:
            return self.closed, self.reason, False  # protect the contacts: switch later
        self.closed = want
        self.reason = why
        self._last_switch = now_ms
        return want, why, True

    def _wanted(self, now, credit_wh, power_w, cap, d):
        if self.critical:
            return True, R_CRITICAL
        limit = self.max_power_w
        if cap > 0 and (limit == 0 or cap < limit):
            limit = cap
        if limit and power_w > limit:
            if self._over_since is None:
                self._over_since = now
            if d(now, self._over_since) >= self.hold_ms and self._tripped_at is None:
                self._tripped_at = now
        else:
            self._over_since = None
        if self._tripped_at is not None:
            if d(now, self._tripped_at) < self.retry_ms:
                return False, (R_WINDOW_CAP if cap > 0 and limit == cap else R_OVERLOAD)
            self._tripped_at = None
            self._over_since = None
            if cap >= 0 or credit_wh > -self.emergency_wh:
                return True, R_OVERLOAD_RETRY
        if cap >= 0:
            return True, R_WINDOW
        if credit_wh > -self.emergency_wh:
            return True, R_CREDIT
        return False, R_EXHAUSTED


def _sub(a, b):
    return a - b
