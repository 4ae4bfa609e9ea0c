"""The HAL surface: what every board's device-side `hal.Board` must expose.

The firmware talks to hardware only through these names; `hil_tests/boards/test_hal_surface.py`
checks every board folder against this list, so a board cannot drift from the others.
"""

from __future__ import annotations

# Attributes set on the Board instance (or class).
ATTRIBUTES: tuple[str, ...] = (
    "board_id",  # str
    "flash_root",  # directory for the firmware's data files
    "calibration",  # dict from board.json: metering constants
    "relay",  # output: .value(v=None), .on(), .off()  (1 = closed, energy flows)
    "led",  # output
    "rs485_de",  # output: RS-485 driver enable (1 = transmit)
    "button",  # input: .value() (1 = pressed)
    "s0",  # pulse counter: .count() -> pulses since boot
    "meter_uart",  # UART to the metering chip: write/read/readinto/any
    "rs485_uart",  # UART of the Modbus RTU bus
)

# Methods of Board.
METHODS: tuple[str, ...] = (
    "ticks_ms",
    "ticks_add",
    "ticks_diff",
    "sleep_ms",
    "rtc_time",  # unix seconds, 0 while unset
    "rtc_set",
    "ntp_time",  # network time in unix seconds, 0 when unavailable
    "random_bytes",
    "network_connect",
    "network_up",
    "tcp_connect",  # -> stream: write, readinto (None = no data yet, 0 = closed), close
    "unique_id",
    "report",  # hand a figure (peak heap, ...) to the bench; no-op on hardware
    "reset",
    "watchdog_start",  # (timeout_ms): the hardware watchdog resets the board unless fed
    "watchdog_feed",  # once per main-loop step
)
