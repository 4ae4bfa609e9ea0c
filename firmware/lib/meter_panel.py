# What the meter shows: the status dict (Modbus, button), the button's status line on the console
# (as a meter's display would show it) and edge-triggered warning events.
from fwinfo import FIRMWARE_VERSION


class MeterPanel:
    def __init__(self, app):
        self._app = app
        self._button = 0
        self._low_credit = False
        self._journal_full = False

    def status(self):
        app = self._app
        rec = app.recorder
        return {
            "fw": FIRMWARE_VERSION, "boot": app.boots, "relay": app.board.relay.value(),
            "credit_wh": app.credit_wh(), "import_wh": app.regs.import_wh,
            "export_wh": app.regs.export_wh, "journal": app.journal.status(),
            "clock_set": bool(app.board.rtc_time()), "last_token": app.last_token,
            "intervals_not_journaled": rec.dropped_full + rec.dropped_queue if rec else 0,
        }  # fmt: skip

    def button(self):
        pressed = self._app.board.button.value()
        if pressed and not self._button:
            st = self.status()
            print("status: import %d Wh, export %d Wh, power %d W, credit %d Wh, relay %s, journal %d pending"
                  % (st["import_wh"], st["export_wh"], self._app.metering.power_w, st["credit_wh"],
                     "closed" if st["relay"] else "open", st["journal"]["pending"]))  # fmt: skip
        self._button = pressed

    def warnings(self, credit):
        # low credit, journal full: the gateway and dashboards see them as status events
        app = self._app
        low = app.policy.low_credit(credit) and not app.cfg["critical_load"]
        if low != self._low_credit:
            self._low_credit = low
            app.event("low_credit", active=low, credit_wh=credit)
        full = bool(app.recorder and app.recorder.journal_full)
        if full != self._journal_full:
            self._journal_full = full
            if full:
                print("journal full: new intervals are not journaled, totals still count")
            else:
                print("journal has room again")
            app.event("journal_full", active=full)
