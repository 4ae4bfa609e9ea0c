# Entry point of the meter firmware (runs unmodified on every board).
# The loop lives here, at module top level, so that gc.collect() runs with no application frame
# active: a safe point for every MicroPython port (see docs/emulated-board.md). It collects when
# a step says so (the free heap is below what one step may need, or the step failed), not after
# every step: a collection marks the whole heap, the loaded code included, and cost more than
# the step itself.
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
    if app.safe_step():
        gc.collect()
