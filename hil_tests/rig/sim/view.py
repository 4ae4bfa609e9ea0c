"""What a person watching `sgrid sim` sees: on a terminal, a live table that fits its width and
height plus a progress bar; otherwise (a pipe, CI's log) plain log lines of at most 80 columns
(one per virtual hour, and the events). Nothing is printed twice: the live view is transient and
the summary comes once at the end.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from hil_tests.rig.sim.driver import Driver

LOG_WIDTH = 80  # a log line's width when the output is not a terminal
INDENT = "    "  # a log line's continuation, when one does not fit


def _kwh(wh: float) -> str:
    return f"{wh / 1000:.1f}"


def say(console: Console, text: str, style: str = "") -> None:
    """One message: on a terminal as rich prints it (wrapped at its width, in `style`); in a
    pipe or a log plain text (no markup, no colour codes) wrapped at 80 columns, continuations
    indented."""
    if console.is_terminal:
        console.print(text, highlight=False, markup=False, style=style or None)
        return
    width = min(LOG_WIDTH, console.width)
    for line in text.splitlines() or [""]:
        wrapped = textwrap.wrap(line, width=width, subsequent_indent=INDENT,
                                break_on_hyphens=False) or [""]  # fmt: skip
        for part in wrapped:
            console.print(part, highlight=False, markup=False, soft_wrap=True)


def _clip(text: str) -> Text:
    """One line, cut with an ellipsis at the terminal's width."""
    return Text(text, no_wrap=True, overflow="ellipsis")


class View:
    def __init__(self, console: Console, driver: Driver, t_begin: float, t_end: float) -> None:
        self.console = console
        self.driver = driver
        self.t_begin, self.t_end = t_begin, t_end
        self.events: list[str] = []
        self._live: Live | None = None
        self._last_hour = -1
        self._last_draw = 0.0
        self._wall0 = time.monotonic()
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
            self._live = Live(console=self.console, refresh_per_second=2, transient=True,
                              vertical_overflow="crop")  # fmt: skip
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def event(self, text: str) -> None:
        stamp = time.strftime("%H:%M", time.gmtime(self.driver.sg.clock.now()))
        self.events.append(f"{stamp} {text}")
        if self._live is None:
            say(self.console, f"[sim {stamp}] {text}")

    def tick(self, now: float) -> None:
        stamp = time.strftime("%H:%M", time.gmtime(now))
        self.progress.update(self._task, completed=min(now, self.t_end) - self.t_begin,
                             description=f"virtual {stamp}")  # fmt: skip
        if self._live is None:
            hour = int((now - self.t_begin) // 3600)
            if hour != self._last_hour:
                self._last_hour = hour
                say(self.console, self.line(now))
            return
        if time.monotonic() - self._last_draw > 0.5:
            self._last_draw = time.monotonic()
            self._live.update(self.render(now))

    def line(self, now: float) -> str:
        """The plain progress line (a pipe, a log), in kWh: at most 80 columns for a whole day
        at 50 nodes; an estimate of the wall time left when it fits too."""
        d = self.driver
        frac = (now - self.t_begin) / max(1.0, self.t_end - self.t_begin)
        closed = sum(1 for v in d.relay.values() if v)
        unserved = sum(t.unserved_wh for t in d.truth.values())
        text = (
            f"[sim {time.strftime('%H:%M', time.gmtime(now))}] {100 * frac:3.0f}% kWh: grid "
            f"+{_kwh(d.pod_truth.import_wh)}/-{_kwh(d.pod_truth.export_wh)} loss "
            f"{d.loss_wh / 1000:.2f} unserved {_kwh(unserved)} relays {closed}/{len(d.relay)}"
        )
        if 0.01 < frac < 1:
            left = (time.monotonic() - self._wall0) * (1 - frac) / frac
            eta = f" eta {left:.0f}s"
            if len(text) + len(eta) <= LOG_WIDTH:
                text += eta
        return text

    def render(self, now: float) -> Group:
        """The live view: the table, the last events (one line each) and the progress bar,
        together no taller than the terminal and no wider than it."""
        events = [_clip(e) for e in self.events[-3:]]
        table = self.table(now, reserve=len(events) + 1)
        return Group(table, *events, self.progress)

    def table(self, now: float, reserve: int = 4) -> Table:
        """One row per node (as many as the terminal's height leaves room for, `reserve` lines
        kept for what comes below), columns short enough for an 80-column terminal."""
        d = self.driver
        width = self.console.width
        t = Table(
            title=f"Seamless Grid sim — {time.strftime('%H:%M', time.gmtime(now))} UTC",
            box=None,
            pad_edge=False,
            expand=False,
        )
        cols = [("node", "left"), ("kind", "left"), ("W", "right"), ("in kWh", "right"),
                ("out kWh", "right"), ("relay", "left")]  # fmt: skip
        if width < 60:  # a narrow terminal: what matters most
            cols = [c for c in cols if c[0] not in ("kind", "out kWh")]
        if width >= 90:
            cols.append(("unserved", "right"))
        for col, justify in cols:
            t.add_column(col, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
        rows = list(d.sg.nodes.values())
        # title + header + the "more" row + what is reserved below + one spare line
        limit = max(1, self.console.height - 4 - reserve)
        if len(rows) > limit + 1:  # the POD, producers, EV and critical loads first, then homes
            rows.sort(key=lambda n: (n.spec.kind == "home", n.spec.kind != "pod"))
        shown = rows if len(rows) <= limit + 1 else rows[:limit]
        for n in shown:
            tr = d.truth.get(n.name)
            relay = {1: "closed", 0: "open"}.get(d.relay.get(n.name, -1), "-")
            if n.spec.kind == "pod":
                tr, relay = d.pod_truth, "grid"
            assert tr is not None
            cells = {"node": n.name, "kind": n.spec.kind, "W": f"{d.power_w.get(n.name, 0):,.0f}",
                     "in kWh": _kwh(tr.import_wh), "out kWh": _kwh(tr.export_wh), "relay": relay,
                     "unserved": _kwh(tr.unserved_wh)}  # fmt: skip
            t.add_row(*(cells[c] for c, _ in cols))
        rest = rows[len(shown) :]
        if rest:  # the rest in one row: counted and summed, not dropped
            truths = [d.truth[n.name] for n in rest if n.name in d.truth]
            closed = sum(1 for n in rest if d.relay.get(n.name) == 1)
            cells = {"node": f"… {len(rest)} more", "kind": "",
                     "W": f"{sum(d.power_w.get(n.name, 0) for n in rest):,.0f}",
                     "in kWh": _kwh(sum(x.import_wh for x in truths)),
                     "out kWh": _kwh(sum(x.export_wh for x in truths)),
                     "relay": f"{closed} closed", "unserved": _kwh(sum(x.unserved_wh for x in truths))}  # fmt: skip
            t.add_row(*(cells[c] for c, _ in cols))
        return t
