"""`sgrid sim`: the simulated microgrid on emulated boards.

Each grid node is an emulated ESP32 meter running the real firmware image in real MicroPython;
simulated loads (households, a PV plant, a battery) drive the meters' inputs in virtual time.
The run ends after --minutes of virtual time and prints what every meter counted next to what its
load really used, so energy conservation is visible at a glance.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.loads import Battery, EnergyIntegrator, Household, PvPlant
from tools.build import build


@dataclass
class Node:
    name: str
    load: Household | PvPlant | Battery
    board: BoardProcess
    energy: EnergyIntegrator
    power_w: float = 0.0


def _make_nodes(n_homes: int, workdir: Path, clock: VirtualClock, rom: Path) -> list[Node]:
    loads: list[tuple[str, Household | PvPlant | Battery]] = [
        (f"home-{i + 1}", Household(seed=i + 1)) for i in range(n_homes)
    ]
    loads += [("pv-1", PvPlant()), ("battery-1", Battery())]
    nodes = []
    for name, load in loads:
        board = BoardProcess(flash_dir=workdir / name / "flash", board_id=name, run_dir=workdir / name,
                             clock=clock, rom_dir=rom)
        board.flash_dir.mkdir(parents=True, exist_ok=True)
        nodes.append(Node(name, load, board, EnergyIntegrator()))
    return nodes


def _table(nodes: list[Node], virtual_now: float) -> Table:
    table = Table(title=f"Seamless Grid microgrid — virtual time {time.strftime('%H:%M', time.gmtime(virtual_now))}")
    for col in ("node", "power W", "import Wh (load)", "export Wh (load)", "S0 pulses (meter)", "relay"):
        table.add_column(col, justify="right" if col != "node" else "left")
    for node in nodes:
        state = node.board.state() if node.board.alive() else {}
        pulses = state.get("pulses", {}).get("s0", "-") if state else "down"
        relay = state.get("gpio", {}).get("relay", "-") if state else "-"
        table.add_row(node.name, f"{node.power_w:8.0f}", f"{node.energy.import_wh:10.1f}",
                      f"{node.energy.export_wh:10.1f}", str(pulses), "closed" if relay == 1 else "open")
    return table


@click.command()
@click.option("--homes", default=3, show_default=True, type=click.IntRange(1, 20), help="Number of households.")
@click.option("--minutes", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="Virtual minutes to simulate.")
@click.option("--speed", default=60.0, show_default=True, type=click.FloatRange(min=1, max=600),
              help="Virtual seconds per real second.")
@click.option("--start-hour", default=11.0, show_default=True, type=click.FloatRange(0, 24),
              help="Virtual time of day (UTC) at which the run starts.")
@click.option("--workdir", default=Path("run/sim"), show_default=True, type=click.Path(path_type=Path),
              help="Flash directories and logs of the boards (wiped at start).")
def sim(homes: int, minutes: float, speed: float, start_hour: float, workdir: Path) -> None:
    """Run the simulated microgrid: emulated meters with households, a PV plant and a battery."""
    console = Console()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    rom = build("emulated")
    day0 = time.time() // 86400 * 86400
    clock = VirtualClock(speed=speed, virtual_t0=day0 + start_hour * 3600)
    nodes = _make_nodes(homes, workdir, clock, rom)
    console.print(f"starting {len(nodes)} emulated meters (firmware image {rom}) at {speed:g}x ...")
    try:
        for node in nodes:
            node.board.start(wait_banner=False)
        for node in nodes:
            node.board.expect(r"on board", timeout=60)
        _run(nodes, clock, minutes, console)
        console.print(_table(nodes, clock.now()))
    finally:
        for node in nodes:
            node.board.stop()
    total_pulses = sum(n.energy._pulses_sent for n in nodes)
    console.print(f"done: {minutes:g} virtual minutes, {total_pulses} S0 pulses delivered; logs in {workdir}")


def _run(nodes: list[Node], clock: VirtualClock, minutes: float, console: Console) -> None:
    t_start = clock.now()
    t_end = t_start + minutes * 60
    last = t_start
    progress = Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TimeRemainingColumn(), console=console)
    task = progress.add_task("sim", total=minutes * 60)
    with Live(console=console, refresh_per_second=2) as live:
        while (now := clock.now()) < t_end:
            dt = now - last
            last = now
            for node in nodes:
                node.power_w = node.load.power_w(now)
                due = node.energy.advance(node.power_w, dt)
                if due and node.board.alive():
                    node.board.pulses(due)
            progress.update(task, completed=now - t_start)
            grid = Table.grid()
            grid.add_row(_table(nodes, now))
            grid.add_row(progress)
            live.update(grid)
            time.sleep(0.25)
