# The meter's live values as the Modbus slave serves them (register map: sgcore/modbus_map.py), and
# the policy for the few writable registers. Modbus is unauthenticated: nothing written here may
# move energy or money.
import config
from fwinfo import FIRMWARE_VERSION
from modbus_pdu import EX_ILLEGAL_VALUE

from sgcore import modbus_map


class MeterRegisters:
    def __init__(self, app):
        self._app = app
        self._fw = modbus_map.version_values(FIRMWARE_VERSION)

    def get(self, name):
        app = self._app
        if name == "import_wh":
            return app.regs.import_wh
        if name == "export_wh":
            return app.regs.export_wh
        if name == "power_w":
            return app.metering.power_w
        if name == "voltage_dv":
            return app.metering.voltage_dv
        if name == "current_ma":
            return app.metering.current_ma
        if name == "relay":
            return app.board.relay.value()
        if name == "credit_wh":
            return app.credit_wh()
        if name == "seq":
            return max(app.journal.last_seq(), 0)
        if name == "flags":
            return app.flags()
        if name == "meter_id":
            return app.key.meter_id if app.key else b""
        if name == "public_key":
            return app.key.pubkey if app.key else b""
        return self._fw.get(name, 0)

    def on_write(self, name, value, commit=True):
        if name == "unit_id":
            # persisted first, so the meter keeps its bus address after a power cut; the slave
            # switches to it after its reply
            if not commit:
                return 0
            try:
                config.save_key("modbus_unit", value)
            except OSError:
                return EX_ILLEGAL_VALUE
            return 0
        # relay: a write may only confirm what the relay rules decide
        return 0 if value == self._app.board.relay.value() else EX_ILLEGAL_VALUE
