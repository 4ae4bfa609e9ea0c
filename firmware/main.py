# Entry point of the meter firmware (runs unmodified on every board).
# The loop lives here, at module top level, so that gc.collect() runs with no application frame
# active: a safe point for every MicroPython port (see docs/emulated-board.md).
import gc

gc.collect()
heap_base = gc.mem_alloc()
import meter_app  # noqa: E402  (imports every module the application uses)

gc.collect()
app = meter_app.MeterApp(gc.mem_alloc() - heap_base)
for _ in app.boot():
    gc.collect()
while True:
    gc.collect()
    app.safe_step()
