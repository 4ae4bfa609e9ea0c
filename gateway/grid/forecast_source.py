"""A node's forecast per settlement window: `market.forecast_file`, else the flat forecast.

The file is what a forecast service (a PV or load forecaster, a person) writes for the node: one
line per window, `<window start, unix s>,<Wh>` (the Wh the node expects to import when it buys,
to export when it sells), `#` comments and a `start,wh` header allowed:

    # pv-1, day-ahead 2026-06-21, revised 09:00
    start,wh
    1782028800,412
    1782029700,455

It is read again whenever it changes (its mtime or size), so a revised forecast (intraday)
changes what the node trades for the windows still open: a producer offers more receipts when
its forecast rises, a consumer's last-resort purchase buys up to the new need. A window the file
does not list gets the flat `market.need_wh_per_hour` / `market.surplus_wh_per_hour`. A file that
cannot be read or parsed keeps the last good forecast (logged once per version of the file, with
the line that is wrong).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("gateway.grid")

MAX_WH = 10**9


class ForecastFileError(ValueError):
    pass


def parse(text: str) -> dict[int, int]:
    """{window start: Wh} of a forecast file's text; ForecastFileError names the bad line."""
    out: dict[int, int] = {}
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.replace(" ", "").lower() == "start,wh":
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) != 2:
                raise ValueError
            start, wh = int(parts[0]), int(parts[1])
        except ValueError:
            raise ForecastFileError(
                f"line {i}: expected '<start>,<wh>' (integers), got {raw!r}"
            ) from None
        if start < 0 or not 0 <= wh <= MAX_WH:
            raise ForecastFileError(f"line {i}: start must be >= 0 and wh in 0..{MAX_WH}")
        out[start] = wh
    return out


class ForecastSource:
    def __init__(self, path: Path | None, flat_wh_per_hour: int, window_s: int) -> None:
        self.path = path
        self.flat_wh_per_hour = flat_wh_per_hour
        self.window_s = window_s
        self._table: dict[int, int] = {}
        self._version: tuple[int, int] | None = None

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if self._version != (-1, -1):
                log.warning("market.forecast_file %s: %s (flat forecast meanwhile)", self.path, exc)
                self._version = (-1, -1)
            return
        version = (st.st_mtime_ns, st.st_size)
        if version == self._version:
            return
        self._version = version
        try:
            self._table = parse(self.path.read_text())
        except (OSError, UnicodeError, ForecastFileError) as exc:
            log.warning("market.forecast_file %s: %s (keeping the last good forecast)", self.path,
                        exc)  # fmt: skip
            return
        log.info("forecast: %d windows from %s", len(self._table), self.path)

    def wh(self, start: int, end: int | None = None) -> int:
        """The Wh expected in [start, end) (default: the settlement window at `start`): each
        settlement window it overlaps contributes its forecast in proportion to the overlap."""
        self._refresh()
        w = self.window_s
        end = start + w if end is None else end
        if not self._table:
            return self.flat_wh_per_hour * (end - start) // 3600
        total = 0.0
        for s in range(start // w * w, end, w):
            listed = self._table.get(s)
            per = listed if listed is not None else self.flat_wh_per_hour * w / 3600
            total += per * (min(end, s + w) - max(start, s)) / w
        return int(total + 1e-9)

    def any(self) -> bool:
        """Whether there is any forecast at all (a file, or a flat value)."""
        return self.path is not None or self.flat_wh_per_hour > 0
