"""What a person watching `sgrid sim` sees: on a terminal, a live table that fits its width plus a
progress bar; otherwise (a pipe, CI's log) one plain line per virtual hour. Nothing is printed
twice: the live view is transient and the summary comes once at the end.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hil_tests.rig.sim.driver import Driver


def _kwh(wh: float) -> str:
    return f"{wh / 1000:.1f}"


class View:
    def __init__(self, console: Console, driver: Driver, t_begin: float, t_end: float) -> None:
        self.console = console
        self.driver = driver
        self.t_begin, self.t_end = t_begin, t_end
        self.events: list[str] = []
        self._live: Live | None = None
        self._last_hour = -1
        self._last_draw = 0.0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
            console=console,
            expand=True,
        )
        self._task = self.progress.add_task("day", total=max(1.0, t_end - t_begin))

    def __enter__(self) -> View:
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def event(self, text: str) -> None:
        stamp = time.strftime("%H:%M", time.gmtime(self.driver.sg.clock.now()))
        self.events.append(f"{stamp} {text}")
        if self._live is None:
            self.console.print(f"[sim {stamp}] {text}", highlight=False)

    def tick(self, now: float) -> None:
        stamp = time.strftime("%H:%M", time.gmtime(now))
        self.progress.update(self._task, completed=min(now, self.t_end) - self.t_begin,
                             description=f"virtual {stamp}")  # fmt: skip
        if self._live is None:
            hour = int((now - self.t_begin) // 3600)
            if hour != self._last_hour:
                self._last_hour = hour
                self.console.print(self._line(now), highlight=False)
            return
        if time.monotonic() - self._last_draw > 0.5:
            self._last_draw = time.monotonic()
            self._live.update(Group(self.table(now), self.progress))

    def _line(self, now: float) -> str:
        d = self.driver
        pct = 100 * (now - self.t_begin) / max(1.0, self.t_end - self.t_begin)
        closed = sum(1 for v in d.relay.values() if v)
        return (
            f"[sim {time.strftime('%H:%M', time.gmtime(now))}] {pct:3.0f}% | grid in "
            f"{_kwh(d.pod_truth.import_wh)} out {_kwh(d.pod_truth.export_wh)} kWh | losses "
            f"{d.loss_wh:.0f} Wh | relays closed {closed}/{len(d.relay)} | "
            f"unserved {_kwh(sum(t.unserved_wh for t in d.truth.values()))} kWh"
        )

    def table(self, now: float) -> Table:
        """One row per node, columns short enough for an 80-column terminal."""
        d = self.driver
        width = self.console.width
        t = Table(
            title=f"Seamless Grid sim — {time.strftime('%H:%M', time.gmtime(now))} UTC",
            box=None,
            pad_edge=False,
            expand=False,
        )
        for col, justify in (("node", "left"), ("kind", "left"), ("W", "right"),
                             ("in kWh", "right"), ("out kWh", "right"), ("relay", "left")):  # fmt: skip
            t.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        if width >= 90:
            t.add_column("unserved", justify="right", no_wrap=True)
        rows = list(d.sg.nodes.values())
        limit = max(5, self.console.height - 8)
        for n in rows[:limit]:
            tr = d.truth.get(n.name)
            relay = {1: "closed", 0: "open"}.get(d.relay.get(n.name, -1), "-")
            if n.spec.kind == "pod":
                tr, relay = d.pod_truth, "grid"
            assert tr is not None
            cells = [n.name, n.spec.kind, f"{d.power_w.get(n.name, 0):,.0f}", _kwh(tr.import_wh),
                     _kwh(tr.export_wh), relay]  # fmt: skip
            if width >= 90:
                cells.append(_kwh(tr.unserved_wh))
            t.add_row(*cells)
        if len(rows) > limit:
            t.add_row(f"… {len(rows) - limit} more", "", "", "", "", "")
        for e in self.events[-3:]:
            t.caption = (t.caption + "\n" if t.caption else "") + e
        return t
