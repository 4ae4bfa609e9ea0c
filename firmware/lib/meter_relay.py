# The relay as the meter application drives it: the policy's decision each step, the reserve
# committed to flash before it closes (credit.py), the console line and event, and a signed,
# journaled relay-event record for every change (one made before the clock was set is journaled
# as soon as it is, stamped with that first known time: no change goes unrecorded).
from recorder import relay_event


class MeterRelay:
    def __init__(self, app):
        self._app = app
        self._unrecorded = None  # (relay, reason, credit) of a change not yet journaled

    def step(self, now):
        app = self._app
        b = app.board
        credit = app.credit_wh()
        app.panel.warnings(credit)
        closed, reason, changed = app.policy.decide(
            b.ticks_ms(), credit, app.metering.power_w, app.credit.window_cap(now), b.ticks_diff
        )
        if changed:
            if closed:
                app.credit.track(app.regs.import_wh, True)  # the reserve is on flash first
            b.relay.value(1 if closed else 0)  # acts at once; its record is signed after
            print("relay %s (reason %d, credit %d Wh)"
                  % ("closed" if closed else "open", reason, credit))  # fmt: skip
            app.event("relay", closed=closed, reason=reason, credit_wh=credit)
            self._unrecorded = (1 if closed else 0, reason, credit)
        self._record(now)

    def _record(self, now):
        app = self._app
        if self._unrecorded is None or not now or not app.recorder:
            return
        relay, reason, credit = self._unrecorded
        self._unrecorded = None
        app.recorder.submit(relay_event(app.key.meter_id, now, app.regs, relay, reason, credit,
                                        app.flags()))  # fmt: skip
