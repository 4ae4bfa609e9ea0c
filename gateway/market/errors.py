"""The market's exceptions, under the gateway's one tree (gateway.errors.GatewayError)."""

from __future__ import annotations

from gateway.errors import GatewayError


class MarketError(GatewayError):
    """Root of every error the market raises on purpose."""


class BookError(MarketError):
    """An order book (or one order in it) is malformed; `field` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class TopologyError(MarketError):
    """A feeder topology file is malformed; `field` names the offending key."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class FeederError(MarketError):
    """The power flow of a feeder did not converge or cannot be made feasible."""


class SettlementError(MarketError):
    """Settlement inputs are inconsistent (a receipt for an unknown node, a period mismatch)."""
