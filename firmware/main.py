# Entry point of the meter firmware (runs unmodified on every board).
# The loop lives here, at module top level, so that gc.collect() runs with no application frame
# active: a safe point for every MicroPython port (see docs/emulated-board.md).
import gc

import meter_app

gc.collect()
app = meter_app.MeterApp()
for _ in app.boot():
    gc.collect()
while True:
    gc.collect()
    app.step()
