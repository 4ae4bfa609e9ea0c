"""The gateway's one exception tree. Library errors are translated into these at the boundary."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration file is unreadable or invalid; `problems` names each key and issue."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class EnrollmentError(GatewayError):
    """A meter cannot be enrolled (bad public key, conflicting id)."""


class StoreError(GatewayError):
    """The reading store cannot be opened or written."""


class SiteKeyError(GatewayError):
    """The gateway's site key file is missing, unreadable or malformed."""


class ModbusError(GatewayError):
    """Base of Modbus failures."""


class ModbusReadError(ModbusError):
    """A Modbus read failed after its retries (timeout, exception response, bad frame)."""


class RegisterMapError(ModbusError):
    """A register map table is inconsistent, or a response does not fit it."""
