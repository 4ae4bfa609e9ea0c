"""The per-slot energy balance of one feeder (issue 13 §5), from the meters' counters.

A meter signs its cumulative import and export (whole Wh) in every reading. The reading that
closes the interval ending at a slot boundary B (its meter-clock stamp) holds the counters as
they were when the meter closed it, at a rig time tau the rig does not see directly but bounds:

* from above by when the rig read the close on the meter's console (`hi`: the firmware prints
  "interval a..B closed" after it took the counters);
* from below by B less how far the meter's clock may have been ahead of the rig's (`lo`): a
  meter closes the interval once its clock reaches B, and its clock is never ahead of the rig's
  by more than AHEAD_S (the gateway's time and clock commands carry the gateway's time when sent,
  the board's RTC truncates to whole seconds), except where the rig itself put it ahead (the
  `clock-drift` fault), which the caller declares; for a BL0942 meter also by when the chip's
  flow reached the count's value (its count is the chip's at its last good read, which may come
  before the close when reads time out on a loaded machine).

What flowed through the meter between B and tau is then at most what the rig's physics moved
through it (|Wh|, each driver step taken whole) in [min(B, lo), max(B, hi)]: that is the
boundary's attribution bound. The POD's energy and the line losses are booked by the rig's
steps, so a window of slots [Ba, Bb] balances as

    POD(window) = sum_meters (counter(Bb) - counter(Ba)) + losses(window)

within: RESOLUTION_WH per meter (a difference of two whole-Wh counters driven by whole-Wh
pulses), CHIP_ERROR of what the BL0942 meters counted in the window, the attribution bounds of
its two boundaries, and (one-sided, the POD saw more) the documented bound of what a power cut
inside the window cost a meter's count.

A boundary is a cut where every meter has such a sample placed within TIGHT_S; a boundary that
is not (a meter closed late over several slots, its clock was ahead, the close was not seen)
is no cut: its two slots are judged together as one merged window. A slot outside any window
(no cut before or after it: a meter's readings are missing) is not judged, with the reason.
Pure functions of the collected data.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

PERIOD_S = 900
RESOLUTION_WH = 1.0  # per meter and window: a difference of whole-Wh counters, whole-Wh pulses
CHIP_ERROR = 0.01  # the BL0942 meters: the emulated chip's count is read, quantised and booked
AHEAD_S = 2.0  # how far a meter's clock may run ahead of the rig's (commands, whole seconds)
TIGHT_S = 300.0  # a boundary is a cut when each meter's count is placed within this (virtual s)
# a BL0942 meter's count (whole Wh of the chip's whole CF counts, remainders carried) is the
# chip's integrated energy at its last good read within this much (1 Wh + a count, and margin)
CHIP_COUNT_WH = 2.0


@dataclass(frozen=True)
class Sample:
    """A meter's counters at a slot boundary: the reading that closed the interval ending at
    `boundary` (meter clock), taken at a rig time in [lo, hi] (hi None: the close was not seen)."""

    boundary: int
    lo: float
    hi: float | None
    net_wh: int  # cumulative import - export
    moved_wh: int  # cumulative import + export


@dataclass(frozen=True)
class Allowance:
    """Energy that flowed through the POD where `meter` could not count it (a power cut at rig
    time `t` costs at most `wh`, docs/journal.md)."""

    meter: str
    t: float
    wh: float


Step = tuple[float, float, float]  # (t booked, |Wh| moved until t, when its pulses were sent)


class Flow:
    """What moved through one meter, step by step, as the rig's physics drove it, and how the
    meter counts it: `continuous` (a BL0942 chip integrates its load, constant within a step)
    or in pulses (S0: a step's pulses are sent at its end, until `done`)."""

    def __init__(self, steps: list[Step], continuous: bool) -> None:
        self.steps = steps
        self.continuous = continuous
        self.ts = [t for t, _, _ in steps]
        self.ms = [m for _, m, _ in steps]
        self.lag = max((d - t for t, _, d in steps), default=0.0)

    def time_of(self, moved_wh: float) -> float | None:
        """When the cumulative |Wh| through the meter reached `moved_wh` (pro rata within the
        step), None if it never did."""
        ms = self.ms
        k = bisect_left(ms, moved_wh)
        if k >= len(ms):
            return None
        prev_t, prev_m = (self.ts[k - 1], ms[k - 1]) if k else (self.ts[0], 0.0)
        span = ms[k] - prev_m
        return prev_t + (self.ts[k] - prev_t) * ((moved_wh - prev_m) / span if span else 1.0)

    def _wh(self, k: int) -> float:
        return self.steps[k][1] - (self.steps[k - 1][1] if k else 0.0)

    def bound(self, b: float, lo: float, hi: float) -> float:
        """The most the meter's count taken at some rig time in [lo, hi] can differ from what
        the rig booked until boundary b (each step at its end): for a chip, what it integrated
        between the last step end t_j <= b and the count's moment, i.e. over [min(t_j, lo),
        max(t_j, hi)], pro rata of each step; for pulses, the steps booked after b whose pulses
        may have arrived by hi, and those booked by b whose pulses may have arrived after lo."""
        ts, n = self.ts, len(self.steps)
        if not n:
            return 0.0
        if self.continuous:
            j = bisect_right(ts, b) - 1
            t_j = ts[j] if j >= 0 else b
            x, y = min(t_j, lo), max(t_j, hi)
            total = 0.0
            for k in range(max(0, bisect_left(ts, x)), n):
                prev = ts[k - 1] if k else ts[k]
                if prev >= y:
                    break
                if ts[k] == prev:  # a zero-length booking (or the first step): whole if inside
                    total += self._wh(k) if x <= prev <= y else 0.0
                    continue
                part = max(0.0, min(ts[k], y) - max(prev, x)) / (ts[k] - prev)
                total += self._wh(k) * part
            return total
        total = 0.0
        for k in range(bisect_right(ts, min(b, lo - self.lag)), n):
            t, _, done = self.steps[k]
            if t > hi:
                break
            if t > b or done > lo:
                total += self._wh(k)
        return total


@dataclass(frozen=True)
class Count:
    """A meter's counters at a boundary: an estimate, the bound of its error (Wh), how."""

    net_wh: float
    moved_wh: float
    bound_wh: float
    how: str  # "closed": a reading closed at it; "bracketed": between two readings
    placed_s: float = 0.0  # the width of the time window the count is placed in


def count_at(samples: list[Sample], b: int, flow: Flow) -> Count | str:
    """The meter's count at boundary `b` as the rig books it (steps ending by b), or why it is
    not known tightly.

    * A reading closed at b and the rig placed that close within TIGHT_S: its counters, wrong
      by at most what moved through the meter in the steps overlapping [min(b, lo), max(b, hi)].
    * Else the readings taken surely before (hi <= b) and surely after (lo >= b): the counters
      are monotonic, so the import at b lies between theirs and so does the export; the midpoint
      is wrong by at most half of what moved between them, plus the steps overlapping b. Tight
      when nothing moved between them (the meter was idle) or they lie within TIGHT_S."""
    at_b = [x for x in samples if x.boundary == b]  # a clock set back closes a stamp again
    placed = [x for x in at_b if x.hi is not None and x.lo <= x.hi]
    s = min(placed, key=lambda x: max(x.hi or 0.0, b) - min(x.lo, b), default=None)
    s = s or (at_b[0] if at_b else None)
    placed_s = None  # how wide the close's placement was, if it was placed
    if s is not None and s.hi is not None and s.lo <= s.hi:
        s_lo = s.lo
        if flow.continuous:  # the chip's count at its last good read, maybe before the close
            reached = flow.time_of(s.moved_wh - CHIP_COUNT_WH)
            s_lo = min(s_lo, reached) if reached is not None else s_lo
        # tight by the close's placement in time; a chip read before the close (found from
        # its value: a lag when power is high, maybe long when it is low) widens the bound only
        lo, hi = min(s.lo, b), max(s.hi, b)
        placed_s = hi - lo
        if hi - lo <= TIGHT_S:
            return Count(s.net_wh, s.moved_wh, flow.bound(b, s_lo, s.hi), "closed", hi - lo)
    before = [x for x in samples if x.hi is not None and x.hi <= b]
    after = [x for x in samples if x.lo >= b]
    if not before or not after:
        why = "the close was not seen on its console" if s is not None and s.hi is None else (
            "no stored reading closes at or after it" if not after else
            "no stored reading closes at or before it")  # fmt: skip
        return why
    x = max(before, key=lambda r: r.hi or 0.0)
    y = min(after, key=lambda r: r.lo)
    moved = y.moved_wh - x.moved_wh
    assert x.hi is not None
    if moved > 0 and (y.hi is None or y.hi - x.lo > TIGHT_S):
        if placed_s is not None:
            return f"its close is placed within {placed_s:.0f} s only (> {TIGHT_S:.0f})"
        if s is not None:
            return "its clock was ahead of the rig's more than the rig could place"
        return f"no reading closes at it and {moved} Wh moved between the readings around it"
    return Count((x.net_wh + y.net_wh) / 2, (x.moved_wh + y.moved_wh) / 2,
                 moved / 2 + flow.bound(b, b, b), "bracketed", (y.hi or y.lo) - x.lo)  # fmt: skip


def slot_energy_balance(
    samples: dict[str, list[Sample]],
    steps: dict[str, list[Step]],
    chip_meters: set[str],
    pod_periods: dict[int, float],
    loss_periods: dict[int, float],
    allowances: list[Allowance] | None = None,
) -> dict[str, Any]:
    """Judge every slot of `pod_periods` (the POD's energy per slot, + import; the span) in
    windows between cuts, merged where a boundary is not one (see the module's doc). Before and
    after the span nothing flows: a window may reach out of it to its nearest cut."""
    allowances = allowances or []
    if not pod_periods or not samples:
        return {"holds": False, "slots": len(pod_periods), "slots_judged": 0,
                "not_judged": [{"slot": None, "reason": "no meters or no POD energy"}]}  # fmt: skip
    first, last = min(pod_periods), max(pod_periods)
    slots = list(range(first, last + PERIOD_S, PERIOD_S))
    bounds = [x.boundary for ss in samples.values() for x in ss]
    lo_b = min([first, *bounds]) // PERIOD_S * PERIOD_S
    hi_b = max([last + PERIOD_S, *bounds])
    why: dict[int, str] = {}  # boundary -> why it is not a cut (the first meter's reason)
    counts: dict[int, dict[str, Count]] = {}
    flows = {n: Flow(steps.get(n, []), n in chip_meters) for n in samples}
    ordered = {n: sorted(ss, key=lambda x: x.lo) for n, ss in sorted(samples.items())}
    for b in range(lo_b, hi_b + 1, PERIOD_S):
        got = {n: count_at(ss, b, flows[n]) for n, ss in ordered.items()}
        bad = [f"{n}: {c}" for n, c in got.items() if isinstance(c, str)]
        if bad:
            why[b] = bad[0]
        else:
            counts[b] = {n: c for n, c in got.items() if isinstance(c, Count)}
    # the windows that hold a slot of the span: from the last cut at or before it to the next
    cuts = sorted(counts)
    inner = [c for c in cuts if first <= c <= last + PERIOD_S]
    before = [c for c in cuts if c < first]
    after = [c for c in cuts if c > last + PERIOD_S]
    use = ([before[-1]] if before and (not inner or inner[0] > first) else []) + inner + (
        [after[0]] if after and (not inner or inner[-1] < last + PERIOD_S) else [])  # fmt: skip

    windows: list[dict[str, Any]] = []
    worst: dict[str, Any] | None = None
    for a, b in zip(use, use[1:], strict=False):
        ca, cb = counts[a], counts[b]
        inside = range(a, b, PERIOD_S)
        pod = sum(pod_periods.get(p, 0.0) for p in inside)
        losses = sum(loss_periods.get(p, 0.0) for p in inside)
        metered = sum(cb[n].net_wh - ca[n].net_wh for n in samples)
        chip = sum(cb[n].moved_wh - ca[n].moved_wh for n in samples if n in chip_meters)
        edges = sum(ca[n].bound_wh + cb[n].bound_wh for n in samples)
        cut_off = sum(x.wh for x in allowances if _within(x, a, b))
        tol = RESOLUTION_WH * len(samples) + CHIP_ERROR * chip + edges
        gap = pod - metered - losses
        ok = -tol <= gap <= tol + cut_off
        w = {"start": a, "slots": len(inside), "pod_wh": round(pod, 1),
             "metered_wh": round(metered, 1), "losses_wh": round(losses, 2),
             "gap_wh": round(gap, 1), "tolerance_wh": round(tol, 1),
             "attribution_wh": round(edges, 1), "power_cut_wh": round(cut_off, 1),
             "bracketed": sum(c.how == "bracketed" for c in (*ca.values(), *cb.values())),
             "holds": ok}  # fmt: skip
        windows.append(w)
        excess = (gap - tol - cut_off) if gap > 0 else (-gap - tol)
        if worst is None or excess > worst["excess"]:
            worst = {**w, "excess": excess}
    judged = {p for w in windows for p in range(w["start"], w["start"] + w["slots"] * PERIOD_S,
                                                 PERIOD_S)}  # fmt: skip
    not_judged = []
    for p in slots:  # outside every window: before the first cut or after the last one
        if p not in judged:
            edge = p if not use or p < use[0] else p + PERIOD_S
            while edge not in why and lo_b <= edge <= hi_b:
                edge += -PERIOD_S if not use or p < use[0] else PERIOD_S
            not_judged.append({"slot": p, "reason": why.get(edge, "no cut")})
    failing = sum(not w["holds"] for w in windows)
    span_windows = [w for w in windows if w["slots"] > 1]
    return {
        "holds": bool(judged) and failing == 0,
        "slots": len(slots),
        "slots_judged": len(judged & set(slots)),
        "windows": len(windows),
        "single_slot_windows": len(windows) - len(span_windows),
        "merged_windows": len(span_windows),
        "slots_in_merged_windows": sum(w["slots"] for w in span_windows),
        "bracketed_counts": sum(w["bracketed"] for w in windows),
        "widest_placement_s": round(
            max(
                (c.placed_s for b in use for c in counts[b].values() if c.how == "closed"),
                default=0.0,
            ),
            1,
        ),  # fmt: skip
        "failing_windows": failing,
        "worst_window": None if worst is None else worst["start"],
        "worst_window_slots": None if worst is None else worst["slots"],
        "worst_gap_wh": None if worst is None else worst["gap_wh"],
        "worst_tolerance_wh": None if worst is None else worst["tolerance_wh"],
        "not_cut": [
            {"boundary": b, "reason": r}
            for b, r in sorted(why.items())
            if first <= b <= last + PERIOD_S
        ][:20],  # fmt: skip
        "not_judged": not_judged[:20],
        "per_window": [[w["start"], w["slots"], w["gap_wh"], w["tolerance_wh"]] for w in windows],
    }


def _within(x: Allowance, a: int, b: int) -> bool:
    """The cut may have fallen between the meter's counts at a and b (each placed within
    TIGHT_S of its boundary, or bracketed by readings as close)."""
    return a - TIGHT_S <= x.t <= b + TIGHT_S
