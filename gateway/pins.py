"""The Pi's own pins through gpiozero: status LED, optional local relay, optional RS-485 DE/RE.

Off a Pi (and in tests) `gpio.mock = true` selects gpiozero's MockFactory, so the same code runs
and the pin states can be inspected. With `gpio.enabled = false` every method is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.config import GpioConfig

log = logging.getLogger(__name__)


class GatewayPins:
    def __init__(self, cfg: GpioConfig) -> None:
        self.cfg = cfg
        self.led: Any = None
        self.relay: Any = None
        self._de: dict[int, Any] = {}
        self._factory: Any = None
        if not cfg.enabled:
            return
        from gpiozero import LED, Device, OutputDevice

        if cfg.mock:
            from gpiozero.pins.mock import MockFactory

            self._factory = MockFactory()
            Device.pin_factory = self._factory
        if cfg.status_led is not None:
            self.led = LED(cfg.status_led)
            self.led.blink(on_time=0.1, off_time=0.9)  # blinking: not connected yet
        if cfg.local_relay is not None:
            self.relay = OutputDevice(cfg.local_relay, initial_value=False)

    def set_connected(self, connected: bool) -> None:
        """Steady LED while connected to the broker; slow blink otherwise."""
        if self.led is None:
            return
        if connected:
            self.led.on()
        else:
            self.led.blink(on_time=0.1, off_time=0.9)

    def de_pin(self, pin: int) -> Any:
        """An OutputDevice for an RS-485 driver-enable pin (shared per pin number)."""
        if not self.cfg.enabled:
            return None
        if pin not in self._de:
            from gpiozero import OutputDevice

            self._de[pin] = OutputDevice(pin, initial_value=False)
        return self._de[pin]

    def close(self) -> None:
        for dev in (self.led, self.relay, *self._de.values()):
            if dev is not None:
                dev.close()
        self._de.clear()
        self.led = self.relay = None
