"""What a node expects and holds per delivery window: the inputs of a strategy (pure data).

A window is [start, end) in unix seconds (15-minute slots or hours). Energy is signed Wh from
the node's point of view: `net_wh > 0` is surplus the node expects to export (sell),
`net_wh < 0` is energy it expects to import (buy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

SLOT_S = 900  # seed 002: 15-minute slots
HOUR_S = 3600  # seed 000/003: hourly windows


@dataclass(frozen=True, slots=True, order=True)
class Window:
    start: int
    end: int

    def __post_init__(self) -> None:
        if type(self.start) is not int or type(self.end) is not int or self.end <= self.start:
            raise ValueError("a window is two integer unix times with start < end")


def windows(start: int, count: int, length_s: int = SLOT_S) -> tuple[Window, ...]:
    """`count` consecutive windows of `length_s` seconds from `start`."""
    return tuple(Window(start + i * length_s, start + (i + 1) * length_s) for i in range(count))


@dataclass(frozen=True)
class Forecast:
    """Expected net energy per window (Wh, + export / - import), in window order."""

    node: str
    points: tuple[tuple[Window, int], ...]

    @classmethod
    def of(cls, node: str, points: Iterable[tuple[Window, int]]) -> Forecast:
        return cls(node, tuple(sorted(points)))

    def net_wh(self, window: Window) -> int:
        for w, wh in self.points:
            if w == window:
                return wh
        return 0


@dataclass
class Position:
    """What a node already holds in one window: receipts it issued that were paid (sold) or are
    still open (offered), and receipts it paid (bought). All Wh."""

    sold_wh: int = 0
    offered_wh: int = 0
    bought_wh: int = 0

    @property
    def net_wh(self) -> int:
        return self.sold_wh - self.bought_wh


@dataclass
class NodeState:
    """The node's market state the agent needs: its id, positions per window, battery level."""

    node: str
    positions: dict[Window, Position] = field(default_factory=dict)
    battery_wh: int = 0  # stored energy now (battery nodes)

    def position(self, window: Window) -> Position:
        return self.positions.setdefault(window, Position())
