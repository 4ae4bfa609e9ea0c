"""Reliability scores (seed 002): how well a participant's forecast matched its metered energy.

Rolling over the last `window` periods per node:

    score_permille = 1000 - min(1000, 1000 * sum|metered - forecast| // max(1, sum|forecast|))

A node without history scores `UNKNOWN` (500). Scores order equal-price orders (docs/market.md §4):
a higher score goes first. Integers only; nodes are kept in a dict keyed by id but every output
is sorted by node id.
"""

from __future__ import annotations

from collections import deque

UNKNOWN = 500


class Reliability:
    def __init__(self, window: int = 96) -> None:
        self.window = window
        self._history: dict[str, deque[tuple[int, int]]] = {}

    def record(self, node: str, forecast_wh: int, metered_wh: int) -> None:
        h = self._history.setdefault(node, deque(maxlen=self.window))
        h.append((forecast_wh, metered_wh))

    def score(self, node: str) -> int:
        h = self._history.get(node)
        if not h:
            return UNKNOWN
        err = sum(abs(m - f) for f, m in h)
        scale = max(1, sum(abs(f) for f, _ in h))
        return 1000 - min(1000, 1000 * err // scale)

    def scores(self) -> list[tuple[str, int]]:
        return [(n, self.score(n)) for n in sorted(self._history)]
