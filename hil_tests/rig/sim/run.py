"""One simulated day (or `hours` of one): bring the grid up, run the physics with a scenario's
faults, let the last readings, tokens and anchors land, then collect what the system recorded,
check the invariants and build the report's data.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from hil_tests.rig import microgrid, profiles
from hil_tests.rig.sim import collect, invariants, money
from hil_tests.rig.sim.driver import PERIOD_S, Driver, run_until
from hil_tests.rig.sim.forecasts import (
    BIAS,
    DAY_AHEAD_SIGMA,
    INTRADAY_SIGMA,
    REVISE_AHEAD_S,
    REVISE_EVERY_S,
    Forecaster,
)
from hil_tests.rig.sim.grid import IDLE_FLOOR_MS, SGRID, SimGrid, close_client
from hil_tests.rig.sim.scenarios import Faults
from hil_tests.rig.sim.view import View, say

TARIFF = 300_000  # msat per kWh: the POD's last-resort price (0.30 per kWh, 1 sat = 1 cent)
FEED_IN = 80_000  # msat per kWh: what the POD pays for a receipt nobody else bought
IMBALANCE = TARIFF  # msat per kWh: one imbalance price for every period (docs/market.md)
PV_PRICE = 150_000  # msat per kWh: the PV plants' price, below the tariff (seed 004)
EMERGENCY_WH = 0
LATENCY_S = 0.1  # real seconds an emulated meter may take to see a pulse or a chip's new load


# What a node costs (cores), measured with `sgrid sim` on this machine: its board's idle steps,
# BOARD_WAKE_CORES per wake-up a second (a board wakes once per idle floor, grid.IDLE_FLOOR_MS per
# 10 boards), its gateway's own loops, NODE_FIXED_CORES, and what comes per virtual time and so
# scales with the speed (the board's signatures, acks, tokens and checkpoints, the gateway's
# market rounds and payments): CORES_PER_SPEED per x. The default grid at 720x (boards/emulated
# since its host-call and GC work): 161 CPU-s for its 9 boards and 42 for its 10 gateways over a
# 165 s run, ~0.13 and ~0.028 cores each; an idle board at 480x, 0.022 cores with its readings
# (its 20 ms idle floor; 40 ms saved nothing measurable); gateways at 180x: 0.016 cores each.
BOARD_WAKE_CORES = 0.0004
NODE_FIXED_CORES = 0.012
CORES_PER_SPEED = 0.0002
MAX_AUTO_SPEED = 720.0
# the default grid (9 boards) at 720x asks this many cores per core of the machine: its full day
# in about 3 minutes, every invariant holding, with headroom on a loaded machine
DEMAND_PER_CORE = 0.85
# ... but a bigger grid's gateways forward each other's payments (up to 6 hops at 56 nodes), and
# a payment waits for a core at every hop: beyond the default grid the nodes are left less,
# down to BIG_GRID_DEMAND_PER_CORE from BIG_GRID_BOARDS boards on. `--homes 50` (55 boards) at
# 75x (its boards then asking 1.25 per core): 7 of 51 prepaid loads served, payments 10-30 real
# s; at 30x: 241 of 244 payments succeeded, most households served
BIG_GRID_DEMAND_PER_CORE = 0.6
BIG_GRID_BOARDS = 24


def demand_per_core(boards: int) -> float:
    """The cores per core of the machine the nodes may ask (see DEMAND_PER_CORE): 0.85 up to
    the default grid's 9 boards, falling linearly to 0.6 at 24 boards and beyond."""
    over = min(1.0, max(0.0, (boards - 9) / (BIG_GRID_BOARDS - 9)))
    return DEMAND_PER_CORE - (DEMAND_PER_CORE - BIG_GRID_DEMAND_PER_CORE) * over


def board_cores(boards: int, speed: float) -> float:
    """What one of `boards` emulated meters and its gateway cost at `speed` (cores; the model
    above)."""
    wakes = 1000 / (IDLE_FLOOR_MS * max(1.0, boards / 10))
    return BOARD_WAKE_CORES * wakes + NODE_FIXED_CORES + CORES_PER_SPEED * speed


def auto_speed(boards: int, cores: int | None = None) -> float:
    """The clock's speed for `boards` emulated meters when none is given: 720x, or less, so that
    the nodes ask no more of the machine than the default grid does at 720x, and less on a
    bigger grid (demand_per_core; beyond it a meter's reaction, a token's path and a payment's
    hops stretch into virtual minutes). On 2 cores: 720x up to 9 boards (the default grid),
    145x for 24, 40x for 49 (bench_sim's 50 nodes), 30x for 55 (`--homes 50`); a multiple of 5,
    at least 5."""
    boards = max(1, boards)
    budget = demand_per_core(boards) * (cores or os.cpu_count() or 1) / boards
    fits = (budget - board_cores(boards, 0.0)) / CORES_PER_SPEED
    return float(max(5, min(MAX_AUTO_SPEED, int(fits) // 5 * 5)))


@dataclass
class SimOptions:
    homes: int = 4
    hours: float = 24.0
    speed: float = 480.0
    interval_s: int = 900
    start_hour: float = 0.0
    date: str = "2026-06-21"
    scenario: str = "normal"
    ledger: str = "embedded"
    seed: int = 1
    workdir: Path = Path("run/sim")
    pv: int = 2
    batteries: int = 1
    ev: int = 1
    critical: int = 1
    cloudiness: float = 0.4


def market_config(
    n: microgrid.NodeSpec, t_begin: float, unpaid: bool, speed: float, forecast: Path | None = None
) -> str:
    """The [market] lines of a node: its strategy, its forecast file (hil_tests/rig/sim/forecasts.py)
    and, for windows the file does not list, a flat forecast from its profile."""
    every = max(0.1, min(5.0, 120 / speed))  # a market round every ~2 virtual minutes
    day = (t_begin, t_begin + 86400)
    ff = f'forecast_file = "{forecast}"\n' if forecast is not None else ""
    if n.kind in ("home", "ev", "critical"):
        if unpaid or n.profile is None:
            return 'strategy = "manual"\n'
        need = max(1, round(n.profile.forecast_wh(*day) / 24))
        return (f'strategy = "consumer"\nmax_price_msat_per_kwh = {TARIFF}\n'
                f'need_wh_per_hour = {need}\nforward_to = "pod"\nplan_every_s = {every}\n'
                f"last_resort = true\n{ff}")  # fmt: skip
    if n.kind in ("pv", "battery"):
        if n.profile is not None:
            daylight = max(1.0, profiles.daylight_hours(n.profile))
            surplus = max(1, round(-n.profile.forecast_wh(*day) / daylight))
        else:
            surplus = n.capacity_wh // 6  # a battery sells its evening discharge
        return (f'strategy = "producer"\ntariff_msat_per_kwh = {PV_PRICE}\n'
                f'surplus_wh_per_hour = {surplus}\nforward_to = "pod"\nplan_every_s = {every}\n'
                f"horizon_s = 3600\nsurplus_price_msat_per_kwh = {FEED_IN}\n{ff}")  # fmt: skip
    if n.kind == "pod":
        return (f'strategy = "pod"\ntariff_msat_per_kwh = {TARIFF}\n'
                f"feed_in_msat_per_kwh = {FEED_IN}\nimbalance_price_msat_per_kwh = {TARIFF}\n"
                f"surplus_price_msat_per_kwh = {FEED_IN}\n")  # fmt: skip
    return ""


def run(opts: SimOptions, console: Console, on_up: Any = None) -> dict[str, Any]:
    """`on_up(grid)` (benchmarks: sample the processes) is called once the grid is up."""
    site = profiles.Site(date=opts.date)
    say(console, f"building the microgrid: {opts.homes} homes, {opts.pv} PV, {opts.batteries} "
                 f"battery, {opts.ev} EV, {opts.critical} critical, the POD")  # fmt: skip
    grid = microgrid.build(homes=opts.homes, pv=opts.pv, batteries=opts.batteries, ev=opts.ev,
                           critical=opts.critical, site=site, seed=opts.seed,
                           cloudiness=opts.cloudiness)  # fmt: skip
    t_begin = profiles.day_start(site) + opts.start_hour * 3600
    sg = SimGrid(grid, opts.workdir, speed=opts.speed, ledger=opts.ledger,
                 interval_s=opts.interval_s)  # fmt: skip
    unpaid = "home-1" if opts.scenario == "unpaid-draw" else ""
    # the forecast service: day-ahead now, revised every virtual hour (forecasts.py); it covers
    # the span even if the day starts a little later than planned (a slow bring-up)
    forecaster = Forecaster(grid.nodes, opts.workdir, t_begin,
                            t_begin + opts.hours * 3600 + 7200, opts.seed)  # fmt: skip
    forecaster.write()
    for n in grid.nodes:
        ff = forecaster.path(n.name) if n.name in forecaster.day_ahead else None
        sg.node_market[n.name] = market_config(n, t_begin, n.name == unpaid, opts.speed, ff)
    # virtual time runs while the grid comes up: start the timeline so that the day begins about
    # when the bring-up is done (the driver waits for t_begin if the bring-up was quicker)
    # (over: the rig waits for t_begin, idle; under: the day starts at the next slot). The default
    # grid (10 nodes) came up in 11.8 s under load 19-43; 8 + 2 s per node had it wait 16 s.
    est_bringup_s = 4 + 1.0 * len(grid.nodes)
    sg.clock.virtual_t0 = t_begin - est_bringup_s * opts.speed
    result: dict[str, Any] = {"scenario": opts.scenario, "options": _jsonable(opts)}
    feeder = _Background(lambda: _feeder(grid))  # pandapower takes seconds to import
    wall0 = time.monotonic()
    try:
        with console.status("bringing the grid up") as status:
            sg.start(progress=lambda what: status.update(f"bringing the grid up: {what}"))
        result["bringup_s"] = round(time.monotonic() - wall0, 1)
        result["bringup_phases_s"] = dict(sg.phases)
        say(console, f"grid up in {result['bringup_s']} s: {len(sg.nodes)} nodes, "
                     f"{sg.channels_up} channels, {len(sg.ledger_urls)} ledger "
                     f"node(s) ({opts.ledger})")  # fmt: skip
        if on_up is not None:
            on_up(sg)
        driver = Driver(sg)
        feeder.join()
        driver.adopt_feeder(feeder.value)
        # the day starts at t_begin, or at the next period boundary when the bring-up took longer
        t_begin = max(t_begin, (sg.clock.now() // PERIOD_S + 1) * PERIOD_S)
        while sg.clock.now() < t_begin:
            time.sleep(0.02)
        driver.begin()
        t_start = sg.clock.now()
        t_end = t_start + opts.hours * 3600
        forecaster.cover(t_start, t_end + 7200)
        forecaster.write()
        with View(console, driver, t_start, t_end) as view:
            faults = Faults(
                sg, opts.scenario, t_start, t_end, view.event, seed=opts.seed, driver=driver
            )
            # the samplers ask every node over HTTP and every board over its socket: in a thread
            # of their own, or a loaded machine makes each driver step last many virtual minutes
            sampler = _Every(900, _InBackground(sg.sample_channels))
            revise = _Every(REVISE_EVERY_S, forecaster.revise)
            lags: list[dict[str, tuple[float, float]]] = []  # each meter's clock offset, every slot
            lag_sampler = _Every(
                PERIOD_S, _InBackground(lambda now: lags.append(collect.clock_offsets(sg)))
            )

            def tick(now: float) -> None:
                for each in (faults.tick, view.tick, sampler, revise, lag_sampler):
                    each(now)

            run_until(driver, t_end, tick=tick)
        if console.is_terminal:  # the live view was transient; a log has them already
            for e in view.events:
                say(console, f"  {e}")
        result["run_s"] = round(time.monotonic() - wall0 - result["bringup_s"], 1)
        after = _Phases()  # where the time after the span goes (the bench prints it)
        with console.status("letting the last readings, tokens and anchors land"):
            driver.settle()
            faults.join()  # a fault still running at the end (a gateway coming back) lands first
            after.mark("faults")
            _wait_closed(sg, t_end, timeout=120.0 + 2 * len(sg.nodes))
            after.mark("last intervals closed")
            journaled = _journaled(sg)
            _wait_landed(sg, journaled, timeout=120.0 + 2 * len(sg.nodes) + sg.anchor_interval_s)
            after.mark("stored and anchored")
        result.update(_results(sg, driver, faults, t_start, t_end, journaled, lags, after))
        result["market"] = _market(sg, forecaster, t_start, t_end)
        after.mark("market")
        result["after_phases_s"] = after.phases
        m = result["market"]
        say(console, f"market: {m['receipts']} receipts paid, {m['intraday_bought']} bought and "
                     f"{m['intraday_sold']} sold intraday (beyond the day-ahead forecast), "
                     f"{m['imbalance_receipts']} imbalance receipts; {m['forecast_revisions']} "
                     "forecast revisions")  # fmt: skip
    finally:
        _save_consoles(sg)
        with console.status("stopping the grid"):
            sg.stop()
    result["wall_s"] = round(time.monotonic() - wall0, 1)
    return result


def _save_consoles(sg: SimGrid) -> None:
    """Each meter's firmware console next to its gateway's log (what a person debugs with)."""
    for n in sg.nodes.values():
        if n.board is not None:
            try:
                (n.dir / "meter" / "console.log").write_text("\n".join(n.board.console) + "\n")
            except OSError:
                pass


def _market(sg: SimGrid, fc: Forecaster, t0: float, t1: float) -> dict[str, Any]:
    """What was traded: receipts paid, and those bought or sold intraday, i.e. beyond what the
    day-ahead forecast of their window asked for (only a revised forecast trades them).

    Bought: each consumer's paid receipts of a window in payment order; those paid once the
    window's day-ahead need was covered are intraday. Sold: each PV plant's paid receipts of a
    window (its channel node's invoices: a receipt expires when its window starts, and sells
    amount / PV_PRICE); those beyond the window's day-ahead surplus are intraday."""
    bought: dict[tuple[str, int], list[Any]] = {}  # (buyer, window) -> its paid receipts
    receipts = imbalance = 0
    for n in sg.nodes.values():
        for c in collect.credit(n):
            if c["status"] != "accepted" or c["issuer_node"] == n.name:
                continue
            receipts += 1
            if c["created_at"] >= c["window_end"]:
                imbalance += 1  # a period that was over: the imbalance settled with the POD
                continue
            bought.setdefault((n.name, int(c["window_start"])), []).append(c)
    intraday_bought = 0
    for (name, start), paid in bought.items():
        plan = fc.day_ahead.get(name, {}).get(start)
        total = 0
        for c in sorted(paid, key=lambda c: c["created_at"]):
            intraday_bought += plan is not None and total >= plan
            total += int(c["wh"])
    intraday_sold = sold = 0
    for n in sg.nodes.values():
        if n.spec.kind != "pv":
            continue
        per: dict[int, list[int]] = {}
        for inv in collect.invoices(n):
            if inv.get("paid") and t0 <= inv.get("expires", 0) <= t1 + PERIOD_S:
                start = int(inv["expires"]) // PERIOD_S * PERIOD_S
                per.setdefault(start, []).append(int(inv["amount"]) * 1000 // PV_PRICE)
        for start, lots in per.items():
            sold += len(lots)
            plan = fc.day_ahead.get(n.name, {}).get(start, 0)
            total = 0
            for wh in sorted(lots, reverse=True):
                intraday_sold += total >= plan
                total += wh
    return {"receipts": receipts, "pv_receipts_sold": sold, "intraday_bought": intraday_bought,
            "intraday_sold": intraday_sold, "imbalance_receipts": imbalance,
            "forecast_revisions": fc.revisions,
            "forecast": {"bias": BIAS, "day_ahead_sigma": DAY_AHEAD_SIGMA,
                         "intraday_sigma": INTRADAY_SIGMA, "revise_every_s": REVISE_EVERY_S,
                         "revise_ahead_s": REVISE_AHEAD_S}}  # fmt: skip


def _feeder(grid: microgrid.Microgrid) -> Any:
    from gateway.market.feeder import Feeder

    return Feeder(grid.topology)


class _Phases:
    """Wall seconds of consecutive steps: `mark(name)` ends the step called `name`."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._t = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._t, 1)
        self._t = now


class _Background(threading.Thread):
    def __init__(self, fn: Any) -> None:
        super().__init__(daemon=True)
        self.fn, self.value, self.error = fn, None, None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn()
        except Exception as exc:  # noqa: BLE001 - reported when joined
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


class _InBackground:
    """Calls `fn(now)` on a thread of its own; a call while the last one still runs is skipped."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.thread: threading.Thread | None = None

    def __call__(self, now: float) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self.fn, args=(now,), daemon=True)
            self.thread.start()


class _Every:
    """Calls `fn(now)` at most once per `seconds` of virtual time."""

    def __init__(self, seconds: float, fn: Any) -> None:
        self.seconds, self.fn, self.last = seconds, fn, -1e18

    def __call__(self, now: float) -> None:
        if now - self.last >= self.seconds:
            self.last = now
            self.fn(now)


def _jsonable(opts: SimOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()}


def _last_period_end(t_end: float) -> int:
    return int(t_end // PERIOD_S * PERIOD_S)


def _journaled(sg: SimGrid) -> dict[str, list[int]]:
    """The sequence numbers each meter has in its journal now (read from its flash)."""
    from hil_tests.rig.flash_reader import journal_records

    out = {}
    for n in sg.nodes.values():
        if n.board is not None:
            out[n.name] = sorted(journal_records(n.board.flash_dir))
    return out


def _wait_closed(sg: SimGrid, t_end: float, timeout: float) -> None:
    """Until every meter has signed and the gateway stored the interval that holds `t_end`, and
    two more intervals closed after the loads went quiet (a meter whose clock runs ahead has
    closed "the interval holding t_end" before the last energy came; the first interval
    closed after the span holds it, the second one any pulse the firmware took in late)."""
    from hil_tests.rig.flash_reader import journal_records

    metered = [n for n in sg.nodes.values() if n.meter_pubkey and n.board is not None]
    upto = {n.name: max(journal_records(n.board.flash_dir), default=-1) for n in metered}  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = {n.name: collect.readings(n) for n in metered}
        if all(r and r[-1]["end"] >= t_end and sum(int(x["seq"]) > upto[name] for x in r) >= 2
               for name, r in rows.items()):  # fmt: skip
            return
        time.sleep(0.5)


def _wait_landed(sg: SimGrid, journaled: dict[str, list[int]], timeout: float) -> None:
    """Until every record the meters had journaled is stored by its gateway and anchored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_landed(sg.nodes[name], seqs) for name, seqs in journaled.items()):
            return
        time.sleep(0.5)


def _landed(n: Any, seqs: list[int]) -> bool:
    if not seqs:
        return True
    stored = {int(r["seq"]) for r in collect.all_records(n)}
    return set(seqs) <= stored and collect.anchored_upto(n) >= max(seqs)


# the scenario checks that ask a running meter (a power-cut meter booted again and runs; a
# drifted clock corrected): with one of them the meters run until the grid stops
BOARD_CHECKS = {"power_cuts", "clock_drift"}


def _results(
    sg: SimGrid,
    driver: Driver,
    faults: Faults,
    t0: float,
    t1: float,
    journaled: dict[str, list[int]],
    lags: list[dict[str, tuple[float, float]]],
    after: _Phases | None = None,
) -> dict[str, Any]:
    mark = after.mark if after is not None else (lambda name: None)
    lag_end = _clock_lag(sg)  # the meters' clocks, asked while they run
    if not BOARD_CHECKS & faults.checks.keys():
        # nothing below needs a running meter (every close line read off the consoles, which
        # stay in memory): 55 boards idling at 75x asked ~2.4 of the 2 cores while the checks
        # of a --homes 50 run took 7 minutes
        collect.console_caught_up(sg)
        sg.stop_boards()
        mark("meters stopped")
    nodes: dict[str, dict[str, Any]] = {}
    node_periods: dict[str, dict[int, int]] = {}
    power: dict[str, list[list[float]]] = {}
    per_meter: dict[str, dict[str, Any]] = {}
    paid_wh: dict[str, int] = {}
    metered_prepaid: dict[str, int] = {}
    for name, n in sg.nodes.items():
        rows = collect.readings(n)
        truth = driver.truth[name] if n.spec.kind != "pod" else driver.pod_truth
        # nothing flowed before t0 (no load, no pulses): every reading counts, also those a meter
        # whose clock lags the rig's booked to an interval before t0
        inside = rows
        imp = sum(r["interval_import_wh"] for r in inside)
        exp = sum(r["interval_export_wh"] for r in inside)
        credit = collect.credit(n)
        # paid and taken: the gateway's book says accepted, or the meter's console does already
        # (its ack may still be on its way: 50 loaded gateways marked tokens accepted minutes
        # after their meters had taken them)
        took = collect.tokens_taken(n)
        accepted = [c for c in credit if c["status"] == "accepted"
                    or (c["status"] == "issued" and c["token_id"] in took)]  # fmt: skip
        paid_msat = sum(int(c["amount_msat"]) for c in accepted)
        nodes[name] = {
            "kind": n.spec.kind,
            "import_wh": imp if n.meter_pubkey else round(truth.import_wh),
            "export_wh": exp if n.meter_pubkey else round(truth.export_wh),
            "truth_import_wh": round(truth.import_wh),
            "truth_export_wh": round(truth.export_wh),
            "unserved_wh": round(truth.unserved_wh),
            "paid_msat": paid_msat,  # the credit its meter took; earned_msat etc.: money.py
            "credit_bought_wh": sum(int(c["wh"]) for c in accepted),
            "readings": len(rows),
        }
        if n.meter_pubkey:
            node_periods[name] = {
                int(r["start"]): int(r["interval_import_wh"]) - int(r["interval_export_wh"])
                for r in rows
                if r["end"] - r["start"] == PERIOD_S
            }
            power[name] = [[float(r["start"]), float(r["avg_power_w"])] for r in rows]
            recs = collect.all_records(n)
            seqs = [int(r["seq"]) for r in recs]
            per_meter[name] = {
                "seqs": seqs,
                "journaled_upto": max(journaled.get(name, [-1]), default=-1),
                "stored": len(recs),
                "anchored_upto": collect.anchored_upto(n),
                "journaled_not_stored": len(set(journaled.get(name, [])) - set(seqs)),
            }
        if n.spec.prepaid:
            paid_wh[name] = nodes[name]["credit_bought_wh"]
            metered_prepaid[name] = nodes[name]["import_wh"]
    mark("readings and credit collected")
    proofs_checked, proofs_ok = _check_proofs(sg)
    mark("proofs")
    chans = _quiet_channels(sg)
    balances, ledger_chans, ledger_quiet = _ledger_money(
        sg, collect.channel_ids(sg) | {c["channel_id"] for c in chans}
    )  # the channel ids are read again at each try (collect.ledger_channel_ids)
    locked = _locked_on_ledger(ledger_chans)
    per_node_money, money_summary = money.node_money(
        {name: sg.deposit_msat(name) for name in sg.nodes}, balances, ledger_chans,
        {c["channel_id"]: c.get("ends", {}) for c in chans},
        {n.node_id: name for name, n in sg.nodes.items()},
        {name: collect.invoices(n) for name, n in sg.nodes.items()},
        {name: collect.payments(n) for name, n in sg.nodes.items()},
    )  # fmt: skip
    for name, figures in per_node_money.items():
        nodes[name].update(figures)
    mark("channels and balances")
    verify_ok, verify_out = _ledger_verify(sg)
    mark("ledger verify")
    pod_periods = {int(p): wh for p, wh in driver.pod_truth.period_wh.items()}
    lag = max([lag_end, *(abs(v[1]) for o in lags for v in o.values())])
    for v in nodes.values():
        v["metering_error_wh"] = (v["import_wh"] - v["export_wh"]) - (
            v["truth_import_wh"] - v["truth_export_wh"]
        )
    inv = {
        "energy_balance": invariants.energy_balance(
            {k: v["import_wh"] - v["export_wh"] for k, v in nodes.items() if v["kind"] != "pod"
             and sg.nodes[k].meter_pubkey},
            driver.pod_truth.import_wh - driver.pod_truth.export_wh, driver.loss_wh,
            sum(v["import_wh"] + v["export_wh"] for k, v in nodes.items()
                if sg.nodes[k].spec.meter_source == "bl0942" and v["kind"] != "pod"),
            node_periods, pod_periods, dict(driver.loss_period),
            sum(faults.unmetered().values())),
        "slot_energy_balance": invariants.slot_energy_balance(
            **collect.slot_balance_inputs(sg, driver, faults, lags)),
        "prepaid_within_credit": invariants.prepaid_within_credit(
            metered_prepaid, paid_wh, EMERGENCY_WH, 0,
            {k: collect.meter_credit_view(sg.nodes[k]) for k in metered_prepaid},
            {k: driver.truth[k].largest_step_wh() for k in metered_prepaid}),
        "readings_stored_once": invariants.readings_once(per_meter),
        "readings_anchored": invariants.anchored(per_meter, proofs_checked, proofs_ok),
        "channel_capacity_conserved": invariants.channels_conserved(chans),
        "ledger_supply_constant": invariants.supply_constant(
            sum(sg.deposit_msat(name) for name in sg.nodes), balances, locked, len(sg.nodes))
            | ledger_quiet,
        "ledger_verifies": invariants.ledger_verifies(verify_ok, verify_out),
    }  # fmt: skip
    critical = {n: t.relay_open_s for n, t in driver.truth.items()
                if sg.nodes[n].spec.kind == "critical"}  # fmt: skip
    if any(node.spec.kind == "critical" for node in sg.nodes.values()):  # --critical 0: n/a
        inv["critical_load_never_cut"] = invariants.critical_never_cut(critical)
    mark("invariants")
    statements = _statements(sg, t0, t1)
    mark("settlement")
    if statements:
        inv["settlement_sums_to_zero"] = invariants.settlement_zero(statements)
    if len(sg.ledger_urls) > 1:
        inv["ledger_replicas_agree"] = _replicas_agree(sg)
    for name, check in faults.checks.items():
        inv[name] = check() if callable(check) else check
    slots = _slots(sg, t0, t1)
    return {
        "span": {"start": t0, "end": t1},
        "nodes": nodes,
        "power": power,
        "slots": slots,
        "channels": {f"{a}>{b}": pts for (a, b), pts in sg.channel_history.items()},
        "imbalances": _imbalances(statements),
        "settlement": statements,
        "invariants": inv,
        "money": money_summary,
        "service": _service(nodes),
        "losses_wh": round(driver.loss_wh, 1),
        "meter_clock_lag_s": round(lag, 1),  # the largest seen during the day (every slot)
        "meter_clock_lag_end_s": round(lag_end, 1),
        "driver": {
            "steps": driver.steps,
            "longest_step_s": round(driver.longest_step_s, 1),
            "longest_step_real_s": round(driver.longest_step_real_s, 2),
        },  # fmt: skip
    }


def _service(nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How the prepaid loads (households, EV) were served: how many bought credit, how many
    drew energy through their relay, and what their loads wanted but did not get."""
    prepaid = {k: v for k, v in nodes.items() if v["kind"] in ("home", "ev")}
    return {
        "prepaid": len(prepaid),
        "bought_credit": sum(1 for v in prepaid.values() if v["credit_bought_wh"] > 0),
        "got_delivery": sum(1 for v in prepaid.values() if v["import_wh"] > 0),
        "credit_bought_wh": sum(v["credit_bought_wh"] for v in prepaid.values()),
        "delivered_wh": sum(v["import_wh"] for v in prepaid.values()),
        "unserved_wh": sum(v["unserved_wh"] for v in prepaid.values()),
    }


def _clock_lag(sg: SimGrid) -> float:
    """The largest distance (virtual s) between a meter's clock and the rig's: a meter sets its
    clock from the gateway's signed time command, late by the message's transit (at 240x, a
    tenth of a real second is 24 virtual seconds), so it closes its intervals that much late."""
    return max([0.0, *(abs(v[1]) for v in collect.clock_offsets(sg).values())])


def _check_proofs(sg: SimGrid, per_meter: int = 3) -> tuple[int, int]:
    """`sgrid gateway proof` for a few readings of each meter (first, middle, last anchored), each
    checked offline with `sgrid ledger verify-proof`: the same commands, invoked in-process (two
    interpreter start-ups per proof cost minutes on a loaded 2-core machine)."""
    from click.testing import CliRunner

    from gateway.cli import main as sgrid_main

    runner = CliRunner()
    checked = ok = 0
    for n in sg.nodes.values():
        upto = collect.anchored_upto(n)
        if upto < 0:
            continue
        for seq in sorted({0, upto // 2, upto})[:per_meter]:
            proof = n.dir / f"proof-{seq}.json"
            got = runner.invoke(sgrid_main, ["gateway", "proof", "--config", str(n.config),
                                             "--meter", n.name, "--seq", str(seq)])  # fmt: skip
            checked += 1
            if got.exit_code != 0:
                continue
            proof.write_text(got.stdout)
            ver = runner.invoke(sgrid_main, ["ledger", "verify-proof", str(proof),
                                             "--validator", sg.validator])  # fmt: skip
            ok += ver.exit_code == 0
    return checked, ok


def _quiet_channels(sg: SimGrid, tries: int = 10) -> list[dict[str, Any]]:
    """The channels as both ends see them, read again (up to `tries` times) while a payment the
    market is still making leaves the two ends' snapshots apart; a real break persists."""
    chans = collect.channels(sg)
    for _ in range(tries - 1):
        if invariants.channels_conserved(chans)["holds"]:
            break
        time.sleep(0.5)
        chans = collect.channels(sg)
    return chans


def _locked_on_ledger(channels: dict[str, dict[str, Any]]) -> int:
    """What the ledger holds locked in `channels` (id -> the ledger's view): open or closing
    ones whole, settled ones their pending HTLC outputs (as the ledger counts it,
    gateway/ledger/state.py)."""
    total = 0
    for ch in channels.values():
        if ch.get("status") in ("open", "closing"):
            total += int(ch.get("capacity_msat", 0))
        elif ch.get("status") == "settled":
            total += sum(int(h["amount_msat"]) for h in ch.get("htlcs", [])
                         if h.get("outcome") == "pending")  # fmt: skip
    return total


_MOVES_MONEY = re.compile(r"channel_|deposit|withdraw")  # the ledger's kinds that move money


def _ledger_money(
    sg: SimGrid, ids: set[str], tries: int = 5
) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, Any]]:
    """Every node's ledger balance and what the channels hold, read at one height of the chain:
    the nodes keep closing and opening channels while the rig reads (a close between reading
    the balances and the channel took its capacity out of both), so the reading is repeated
    until no block with a transaction was sealed during it (`ledger_quiet`: how many tries)."""
    from gateway.ledger.client import LedgerClient

    client = LedgerClient(sg.ledger_urls, timeout=sg.api_timeout(), retries=3)
    try:
        for attempt in range(1, tries + 1):
            h0 = int(client.info()["height"])
            balances = collect.balances(sg)
            channels = collect.ledger_channels(sg, sorted(ids | collect.ledger_channel_ids(sg)))
            h1 = int(client.info()["height"])
            moved = sum(1 for h in range(h0 + 1, h1 + 1) for tx in client.block(h)["txs"]
                        if _MOVES_MONEY.match(str(tx.get("body", {}).get("kind"))))  # fmt: skip
            if not moved:
                return balances, channels, {"read_at_height": h1, "reads": attempt}
    finally:
        close_client(client)
    return balances, channels, {"read_at_height": None, "reads": tries, "txs_during_read": moved}


def _ledger_verify(sg: SimGrid) -> tuple[bool, str]:
    """`sgrid ledger verify` on every replica's own copy of the chain (one, or three on etcd)."""
    ok, out, passed = True, "", 0
    replicas = len(sg.ledger_procs)
    for i in range(replicas):
        cfg = sg.workdir / f"ledger-{i}" / "ledger.toml"
        got = subprocess.run([*SGRID, "ledger", "verify", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        ok = ok and got.returncode == 0
        passed += got.returncode == 0
        out += f"ledger-{i}: {got.stdout}{got.stderr}\n"
    if replicas > 1:  # the report keeps the last line
        out += f"{passed} of {replicas} replicas verify\n"
    return ok, out


def _replicas_agree(sg: SimGrid, timeout: float = 60.0) -> dict[str, Any]:
    """Replicated mode: every replica holds the same chain. The tips move on (blocks keep being
    cut), so the replicas are compared at the lowest height all of them have reached, which must
    be at least the height the first replica had at the start (they all caught up)."""
    from gateway.ledger.client import LedgerClient

    clients = [LedgerClient(u, retries=3) for u in sg.ledger_urls]
    try:
        target = int(clients[0].info()["height"])
        deadline = time.monotonic() + timeout
        while True:
            heights = [int(c.info()["height"]) for c in clients]
            if min(heights) >= target or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        h = min(heights)
        hashes = [str(c.block(h)["hash"]) for c in clients]
    finally:
        for c in clients:
            c._drop(c.urls[0])
    return {"holds": h >= target and len(set(hashes)) == 1, "replicas": len(clients),
            "height": h, "heights": heights, "hashes_at_height": hashes}  # fmt: skip


def _statements(sg: SimGrid, t0: float, t1: float) -> list[dict[str, Any]]:
    """Settlement at delivery, per 15-minute period (gateway/market/settlement.py, the market's
    engine): every receipt a node paid (its credit book: producers' receipts, the POD's
    last-resort and imbalance receipts) against the signed readings its gateway stored, the
    imbalance priced at the POD's imbalance price. One statement per node and period."""
    from gateway.ingest.store import ReadingStore
    from gateway.market.forecast import Window
    from gateway.market.readings import metered_periods
    from gateway.market.settlement import Contract, settle_period

    first = int(t0 // PERIOD_S * PERIOD_S)
    periods = [Window(s, s + PERIOD_S) for s in range(first, int(t1), PERIOD_S)]
    metered: list[dict[str, Any]] = [{} for _ in periods]
    contracts: list[tuple[int, int, Contract]] = []  # (window start, end, what was paid)
    for n in sg.nodes.values():
        if n.meter_pubkey:
            from sgcore.reading import meter_id_from_pubkey

            store = ReadingStore(n.state_dir / "readings.sqlite3")
            try:
                got = metered_periods(
                    store, {n.name: meter_id_from_pubkey(n.meter_pubkey)}, periods
                )
            finally:
                store.close()
            for i, m in enumerate(got):
                metered[i].update(m)
        for c in collect.credit(n):
            if c["status"] == "accepted" and c["issuer_node"] != n.name:
                paid = Contract(c["issuer_node"], n.name, int(c["wh"]), int(c["amount_msat"]),
                                int(c["amount_msat"]))  # fmt: skip
                contracts.append((int(c["window_start"]), int(c["window_end"]), paid))
    out = []
    for i, w in enumerate(periods):
        inside = [c for s, e, c in contracts if w.start <= s and e <= w.end]
        try:
            period = settle_period(w.start, w.end, inside, metered[i], IMBALANCE, "pod")
        except Exception as exc:  # noqa: BLE001 - a period that cannot be settled is reported
            out.append({"node": "-", "period": w.start, "error": str(exc)[:120], "amount_msat": 0})
            continue
        for st in period.statements:
            row = st.to_json()
            out.append({"node": row["node"], "period": w.start, **{k: v for k, v in row.items()
                        if k not in ("node", "start", "end")}, "amount_msat": row["net_msat"]})  # fmt: skip
    return out


def _imbalances(statements: list[dict[str, Any]]) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {}
    for st in statements:
        if st["node"] not in ("-", "pod") and "imbalance_wh" in st:
            out.setdefault(st["node"], []).append([st["period"], st["imbalance_wh"]])
    return out


def _slots(sg: SimGrid, t0: float, t1: float) -> list[dict[str, Any]]:
    """Price and volume per 15-minute slot, from the receipts the consumers paid."""
    per: dict[int, list[int]] = {}
    for n in sg.nodes.values():
        for c in collect.credit(n):
            if c["status"] != "accepted":
                continue
            s = int(c["window_start"]) // PERIOD_S * PERIOD_S
            acc = per.setdefault(s, [0, 0])
            acc[0] += int(c["wh"])
            acc[1] += int(c["amount_msat"])
    out = []
    for s in range(int(t0 // PERIOD_S * PERIOD_S), int(t1), PERIOD_S):
        wh, msat = per.get(s, [0, 0])
        out.append({"start": s, "volume_wh": wh,
                    "price_msat_per_kwh": msat * 1000 // wh if wh else None})  # fmt: skip
    return out
