"""One simulated day (or `hours` of one): bring the grid up, run the physics with a scenario's
faults, let the last readings, tokens and anchors land, then collect what the system recorded,
check the invariants and build the report's data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from hil_tests.rig import microgrid, profiles
from hil_tests.rig.sim import collect, day_start, landing, market_report
from hil_tests.rig.sim.background import Background, Every, InBackground, Phases
from hil_tests.rig.sim.driver import PERIOD_S, Driver, run_until
from hil_tests.rig.sim.forecasts import REVISE_EVERY_S, Forecaster
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.market_config import EMERGENCY_WH as EMERGENCY_WH  # callers' import
from hil_tests.rig.sim.market_config import market_config
from hil_tests.rig.sim.results import results
from hil_tests.rig.sim.scenarios import Faults
from hil_tests.rig.sim.speed import auto_speed as auto_speed  # callers' import
from hil_tests.rig.sim.view import View, say


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
    feeder = Background(lambda: _feeder(grid))  # pandapower takes seconds to import
    wall0 = time.monotonic()
    try:
        with console.status("bringing the grid up") as status:
            sg.start(progress=lambda what: status.update(f"bringing the grid up: {what}"))
        result["bringup_s"] = round(time.monotonic() - wall0, 1)
        result["bringup_phases_s"] = dict(sg.phases)
        say(console, f"grid up in {result['bringup_s']} s: {len(sg.nodes)} nodes, "
                     f"{sg.channels_up} channels, {len(sg.ledger_urls)} ledger "
                     f"node(s) ({opts.ledger})")  # fmt: skip
        grid_ready = sg.clock.now()  # every meter's second boot done, the critical relay closed
        if on_up is not None:
            on_up(sg)
        driver = Driver(sg)
        feeder.join()
        driver.adopt_feeder(feeder.value)
        physics_ready = sg.clock.now()
        # the day starts at t_begin, or at the next period boundary when the bring-up took longer
        t_planned = t_begin
        t_begin = max(t_begin, (physics_ready // PERIOD_S + 1) * PERIOD_S)
        idle0 = time.monotonic()
        while sg.clock.now() < t_begin:
            time.sleep(0.02)
        driver.begin()
        t_start = sg.clock.now()
        result["day_start"] = day_start.record(
            t_planned, t_begin, t_start, grid_ready, physics_ready, time.monotonic() - idle0
        )
        if result["day_start"]["late"]:
            say(console, day_start.line(result["day_start"]), style="yellow")
        t_end = t_start + opts.hours * 3600
        forecaster.cover(t_start, t_end + 7200)
        forecaster.write()
        with View(console, driver, t_start, t_end) as view:
            faults = Faults(
                sg, opts.scenario, t_start, t_end, view.event, seed=opts.seed, driver=driver
            )
            # the samplers ask every node over HTTP and every board over its socket: in a thread
            # of their own, or a loaded machine makes each driver step last many virtual minutes
            sampler = Every(900, InBackground(sg.sample_channels))
            revise = Every(REVISE_EVERY_S, forecaster.revise)
            lags: list[dict[str, tuple[float, float]]] = []  # each meter's clock offset, every slot
            lag_sampler = Every(
                PERIOD_S, InBackground(lambda now: lags.append(collect.clock_offsets(sg)))
            )

            def tick(now: float) -> None:
                for each in (faults.tick, view.tick, sampler, revise, lag_sampler):
                    each(now)

            run_until(driver, t_end, tick=tick)
        if console.is_terminal:  # the live view was transient; a log has them already
            for e in view.events:
                say(console, f"  {e}")
        result["run_s"] = round(time.monotonic() - wall0 - result["bringup_s"], 1)
        after = Phases()  # where the time after the span goes (the bench prints it)
        with console.status("letting the last readings, tokens and anchors land"):
            driver.settle()
            faults.join()  # a fault still running at the end (a gateway coming back) lands first
            after.mark("faults")
            landing.wait_closed(sg, t_end, timeout=120.0 + 2 * len(sg.nodes))
            after.mark("last intervals closed")
            journaled = landing.journaled(sg)
            landing.wait_landed(
                sg, journaled, timeout=120.0 + 2 * len(sg.nodes) + sg.anchor_interval_s
            )
            after.mark("stored and anchored")
        result.update(results(sg, driver, faults, t_start, t_end, journaled, lags, after))
        result["market"] = market_report.market(sg, forecaster, t_start, t_end)
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


def _feeder(grid: microgrid.Microgrid) -> Any:
    from gateway.market.feeder import Feeder

    return Feeder(grid.topology)


def _jsonable(opts: SimOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()}
