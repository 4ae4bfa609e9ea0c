"""`sgrid sim`: a simulated day of the Seamless Grid on the HIL bench.

Every node of a low-voltage feeder is an emulated ESP32 meter running the real firmware with its
own grid-node gateway (channel node, market agent, credit issuer, anchoring); the POD's meter is
an emulated SDM630 on Modbus RTU; one ledger node (or three on etcd) and one mosquitto with the
production ACL config. Loads come from real models (BDEW H0, pvlib), faults from the scenario.
At the end: a summary, `report.html` (self-contained), PNGs and `report.json`; the exit status
is 1 when an invariant fails, 3 when the run itself failed (one line names the node and what
did not answer in time).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from gateway.errors import GatewayError
from hil_tests.rig import procs, report
from hil_tests.rig.board_process import BoardTimeout
from hil_tests.rig.sim import day_start
from hil_tests.rig.sim.node import SimError
from hil_tests.rig.sim.run import SimOptions, run
from hil_tests.rig.sim.scenarios import SCENARIOS
from hil_tests.rig.sim.speed import auto_speed
from hil_tests.rig.sim.view import say


def _list_scenarios(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    for s in SCENARIOS.values():
        click.echo(f"{s.name:16} {s.description}")
    ctx.exit(0)


def _speed(_ctx: click.Context, _param: click.Parameter, value: str) -> float | None:
    if value == "auto":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: a number (1..2000) or 'auto'") from None
    if not 1 <= speed <= 2000:
        raise click.BadParameter(f"{value!r}: a number (1..2000) or 'auto'")
    return speed


@click.command()
@click.option(
    "--homes",
    default=4,
    show_default=True,
    type=click.IntRange(1, 200),
    help="Prepaid households (besides the PV plants, battery, EV and critical load).",
)
@click.option(
    "--hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(0.25, 48),
    help="Virtual hours to simulate.",
)
@click.option(
    "--minutes",
    default=None,
    type=click.FloatRange(min=1),
    help="Virtual minutes to simulate (instead of --hours).",
)
@click.option(
    "--speed",
    default="auto",
    show_default=True,
    callback=_speed,
    help="Virtual seconds per real second, or 'auto': 720, less for a grid whose emulated "
    "meters and gateways would take more of the machine (2 cores: 720 up to 9 meters, the "
    "default grid; 145 for 24, 40 for 49, 30 for --homes 50).",
)
@click.option(
    "--interval",
    "interval_s",
    default=900,
    show_default=True,
    type=click.IntRange(60, 3600),
    help="Metering interval (s); the market slot is 900.",
)
@click.option(
    "--start-hour",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 24),
    help="Virtual time of day (UTC) at which the span starts.",
)
@click.option(
    "--date",
    default="2026-06-21",
    show_default=True,
    help="The simulated day (PV and load profiles).",
)
@click.option(
    "--scenario",
    default="normal",
    show_default=True,
    type=click.Choice(sorted(SCENARIOS)),
    help="Faults to inject (--list-scenarios).",
)
@click.option(
    "--list-scenarios",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_list_scenarios,
    help="List the scenarios and exit.",
)
@click.option(
    "--ledger",
    default="embedded",
    show_default=True,
    type=click.Choice(["embedded", "etcd"]),
    help="One ledger node, or three replicas on a real 3-member etcd cluster.",
)
@click.option("--pv", default=2, show_default=True, type=click.IntRange(0, 50), help="PV plants.")
@click.option(
    "--batteries", default=1, show_default=True, type=click.IntRange(0, 20), help="Batteries."
)
@click.option(
    "--ev", default=1, show_default=True, type=click.IntRange(0, 20), help="EV chargers (prepaid)."
)
@click.option(
    "--critical",
    default=1,
    show_default=True,
    type=click.IntRange(0, 20),
    help="Households with a critical load (never cut).",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of every random draw.")
@click.option(
    "--workdir",
    default=Path("run/sim"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Flash directories, databases and logs of the run (wiped at start).",
)
@click.option(
    "--report",
    "report_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Where report.html, report.json and the PNGs go. Default: <workdir>/report.",
)
@click.option(
    "--plot",
    "plot_path",
    default=None,
    type=click.Path(path_type=Path),
    help="Also copy the power plot here (PNG).",
)
def sim(homes: int, hours: float, minutes: float | None, speed: float | None, interval_s: int,
        start_hour: float, date: str, scenario: str, ledger: str, pv: int, batteries: int,
        ev: int, critical: int, seed: int,
        workdir: Path, report_dir: Path | None, plot_path: Path | None) -> None:  # fmt: skip
    """Run the simulated microgrid for a day: market, channels, credit, delivery, settlement,
    faults, invariants; then write the report."""
    procs.take_stop_signals()  # the grid is stopped in order (a SIGKILL leaves it to the reaper)
    console = Console()
    # absolute: the nodes' configs name files under it, and a relative path in a config is
    # relative to that config's own directory (the default run/sim named run/sim/x/run/sim/...)
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    if speed is None:
        boards = homes + pv + batteries + ev + critical
        speed = auto_speed(boards)
        say(console, f"speed {speed:g}x ({boards} emulated meters on {os.cpu_count()} cores)")
    opts = SimOptions(homes=homes, hours=minutes / 60 if minutes else hours, speed=speed,
                      interval_s=interval_s, start_hour=start_hour, date=date, scenario=scenario,
                      ledger=ledger, seed=seed, workdir=workdir, pv=pv,
                      batteries=batteries, ev=ev, critical=critical)  # fmt: skip
    try:
        result = run(opts, console)
    except (SimError, BoardTimeout, GatewayError, TimeoutError) as exc:
        say(console, f"sgrid sim: {one_line(exc)} (logs under {workdir})", style="bold red")
        sys.exit(3)
    out = report_dir or workdir / "report"
    lines = summary_lines(result)
    page = report.write(out, result, lines[:-1])  # its invariants table says the last line
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "power.png", plot_path)
    console.print(summary(result))
    for line in lines:
        say(console, line)
    say(console, f"report: {page} (report.json, PNGs beside it)")
    failed = report.failed_invariants(result)
    if failed:
        say(console, f"invariants failed: {', '.join(failed)}", style="bold red")
        sys.exit(1)
    say(console, "every invariant holds", style="bold green")


def one_line(exc: BaseException) -> str:
    """An error as one line: its first line (a board's timeout appends its console's tail)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:400]


def summary(result: dict) -> Table:
    t = Table(title=f"scenario {result['scenario']}: {result.get('wall_s', '?')} s wall",
              box=None, pad_edge=False)  # fmt: skip
    cols = (
        "node",
        "kind",
        "in kWh",
        "out kWh",
        "paid sat",
        "earned sat",
        "unserved",
        "credit left",
    )
    for col in cols:
        t.add_column(col, justify="left" if col in ("node", "kind") else "right", no_wrap=True)
    for name, n in sorted(result.get("nodes", {}).items()):
        # a prepaid meter's balance at the end: credit it took and did not draw (credit_timing.py)
        left = f"{n['credit_left_wh'] / 1000:.1f}" if "credit_left_wh" in n else ""
        t.add_row(name, n["kind"], f"{n['import_wh'] / 1000:.1f}", f"{n['export_wh'] / 1000:.1f}",
                  f"{n['paid_msat'] // 1000:,}", f"{n['earned_msat'] // 1000:,}",
                  f"{n['unserved_wh'] / 1000:.1f}", left)  # fmt: skip
    return t


def service_line(result: dict) -> str:
    """The prepaid loads served, and where the money is (report.json `service`, `money`)."""
    s, m = result.get("service") or {}, result.get("money") or {}
    line = (f"prepaid loads: {s.get('bought_credit', 0)} of {s.get('prepaid', 0)} bought credit, "
            f"{s.get('got_delivery', 0)} drew >= 1 Wh, {s.get('never_short', 0)} never short; "
            f"unserved {s.get('unserved_wh', 0) / 1000:.1f} kWh (wanted while the relay was "
            "open)")  # fmt: skip
    if "credit_left_wh" in s:
        line += (f"; credit: {s['credit_left_wh'] / 1000:.1f} kWh left on the meters (their "
                 f"balance, kept), {s['credit_pending_wh'] / 1000:.1f} kWh paid and on its way, "
                 f"{s['credit_late_wh'] / 1000:.1f} kWh reached its meter after its window began "
                 f"(up to {s['credit_late_max_s'] / 60:.0f} min late)")  # fmt: skip
    if m:
        # in whole sat, the parts rounded so that they add up (each rounded down lost up to 1 sat
        # per part: "20,399,909 + 90 of 20,400,000" for a grid whose msat balanced exactly)
        held = m["holdings_msat"] // 1000
        unassigned = (m["holdings_msat"] + m["unassigned_msat"]) // 1000 - held
        # unassigned: HTLCs in flight, payments one end lists and the other not yet, channels
        # neither end listed (money.py); never negative (invariant money_accounted)
        line += (f"; money: {held:,} sat held + {unassigned:,} unassigned (in flight, unlisted) "
                 f"of {m['deposits_msat'] // 1000:,} deposited")  # fmt: skip
    return line


def summary_lines(result: dict) -> list[str]:
    """What the terminal prints after the table, and report.html at its top."""
    return [day_start.line(result.get("day_start") or {}), service_line(result),
            invariants_line(result)]  # fmt: skip


def invariants_line(result: dict) -> str:
    inv = result.get("invariants", {})
    return "invariants: " + ", ".join(
        f"{k} {'ok' if v.get('holds') else 'FAILED'}" for k, v in sorted(inv.items())
    )
