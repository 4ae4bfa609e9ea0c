# Entry point of the meter firmware (runs unmodified on every board).
# The loop lives here, at module top level, so that gc.collect() runs with no application frame
# active: a safe point for every MicroPython port (see docs/emulated-board.md).
import gc

import ota_boot

gc.collect()
heap_base = gc.mem_alloc()
meter_app = ota_boot.load_app()  # the A/B image that boots (docs/ota.md), with all its modules

gc.collect()
app = meter_app.MeterApp(gc.mem_alloc() - heap_base)
for _ in app.boot():
    gc.collect()
while True:
    gc.collect()
    app.safe_step()
