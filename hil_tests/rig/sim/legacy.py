"""`sgrid sim`: the simulated microgrid on emulated boards.

Every grid node is an emulated ESP32 meter running the real firmware image in real MicroPython:
households on S0 pulse inputs (prepaid: their relays release only paid-for energy), a PV plant and
a battery on emulated BL0942 metering chips (bidirectional). A real mosquitto and a real gateway
process verify, store and acknowledge the signed readings. Households buy credit: when a home's
credit runs low the site issues a signed credit token for it (payment settlement is simulated
until the market is wired in). At the end the run prints, per node, what its load really used
next to what its meter signed and the gateway stored, and draws the readings as a PNG.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from boards.emulated.host.bl0942_chip import BL0942Chip
from hil_tests.rig.loads import Battery, EnergyIntegrator, Household, PvPlant
from hil_tests.rig.site import Meter, Site
from hil_tests.rig.wire import PtyWire

TOKEN_WH = 500  # credit bought per purchase
LOW_CREDIT_WH = 200


@dataclass
class Node:
    name: str
    load: Household | PvPlant | Battery
    energy: EnergyIntegrator = field(default_factory=EnergyIntegrator)
    power_w: float = 0.0
    chip: BL0942Chip | None = None
    wire: PtyWire | None = None
    bought_wh: int = 0
    unserved_wh: float = 0.0  # what a household wanted while its relay was open (no credit)
    chip_wh: float = 0.0  # the BL0942's energy count at the last look

    @property
    def prepaid(self) -> bool:
        return isinstance(self.load, Household)


def _nodes(homes: int) -> list[Node]:
    nodes = [Node(f"home-{i + 1}", Household(seed=i + 1)) for i in range(homes)]
    return nodes + [Node("pv-1", PvPlant()), Node("battery-1", Battery())]


def _meter_configs(nodes: list[Node], interval_s: int) -> dict[str, dict]:
    cfgs = {}
    for n in nodes:
        cfg: dict = {"interval_s": interval_s, "checkpoint_s": 60, "low_credit_wh": LOW_CREDIT_WH}
        if n.prepaid:
            cfg["meter_source"] = "s0"
        else:
            cfg.update(meter_source="bl0942", critical_load=True)  # generation is never cut off
        cfgs[n.name] = cfg
    return cfgs


def _table(site: Site, nodes: list[Node], stored: dict[str, dict]) -> Table:
    now = time.strftime("%H:%M", time.gmtime(site.clock.now()))
    t = Table(title=f"Seamless Grid — site '{site.site}', virtual time {now} UTC")
    # load = what the simulated load really drew (households: through a closed relay; PV and battery:
    # as their BL0942 counted it since it powered up); stored = the latest signed reading the
    # gateway holds, at most one interval behind
    for col in (
        "node",
        "W",
        "load in Wh",
        "load out Wh",
        "readings",
        "stored in Wh",
        "stored out Wh",
        "bought Wh",
        "relay",
    ):
        t.add_column(col, justify="left" if col == "node" else "right")
    for n in nodes:
        meter = site.meters[n.name]
        st = meter.board.state() if meter.board.alive() else {}
        relay = st.get("gpio", {}).get("relay") if st else None
        s = stored.get(n.name, {})
        t.add_row(
            n.name,
            f"{n.power_w:,.0f}",
            f"{n.energy.import_wh:,.0f}",
            f"{n.energy.export_wh:,.0f}",
            str(s.get("count", 0)),
            f"{s.get('import_wh', 0):,}",
            f"{s.get('export_wh', 0):,}",
            f"{n.bought_wh:,}" if n.prepaid else "-",
            {1: "closed", 0: "open"}.get(relay, "down"),
        )
    return t


def _stored_summary(site: Site) -> dict[str, dict]:
    out = {}
    for name, meter in site.meters.items():
        rows = [r for r in site.stored(meter) if r["kind"] == 1]
        out[name] = {
            "count": len(rows),
            "import_wh": rows[-1]["import_wh"] if rows else 0,
            "export_wh": rows[-1]["export_wh"] if rows else 0,
            "rows": rows,
        }
    return out


@click.command()
@click.option(
    "--homes",
    default=3,
    show_default=True,
    type=click.IntRange(1, 12),
    help="Number of households.",
)
@click.option(
    "--minutes",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Virtual minutes to simulate.",
)
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1, max=240),
    help="Virtual seconds per real second.",
)
@click.option(
    "--interval",
    "interval_s",
    default=300,
    show_default=True,
    type=click.IntRange(60, 3600),
    help="Metering interval of the meters, virtual seconds (the market slot is 900).",
)
@click.option(
    "--start-hour",
    default=11.0,
    show_default=True,
    type=click.FloatRange(0, 24),
    help="Virtual time of day (UTC) at which the run starts.",
)
@click.option(
    "--workdir",
    default=Path("run/sim"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Flash directories, databases and logs of the run (wiped at start).",
)
@click.option(
    "--plot",
    "plot_path",
    default=None,
    type=click.Path(path_type=Path),
    help="Where to draw the readings (PNG). Default: <workdir>/readings.png.",
)
def sim(
    homes: int,
    minutes: float,
    speed: float,
    interval_s: int,
    start_hour: float,
    workdir: Path,
    plot_path: Path | None,
) -> None:
    """Run the simulated microgrid: prepaid households, a PV plant and a battery on emulated meters,
    a real broker and a real gateway. Ends with a table of energy per node and a plot."""
    console = Console()
    if workdir.exists():
        shutil.rmtree(workdir)
    nodes = _nodes(homes)
    site = Site(workdir, site="sim", speed=speed, meter_config=_meter_configs(nodes, interval_s))
    day0 = time.time() // 86400 * 86400
    site.clock.virtual_t0 = day0 + start_hour * 3600
    for n in nodes:  # metering chips of the bidirectional nodes, on pty wires
        if not n.prepaid:
            n.wire = PtyWire(n.name)
            n.chip = BL0942Chip(n.wire.a, _chip_load(n, site), clock=site.clock.now)
            site.meter_uarts[n.name] = {"meter": n.wire.b}
    console.print(
        f"starting mosquitto, the gateway and {len(nodes)} emulated meters at {speed:g}x ..."
    )
    try:
        site.start()
        _run(site, nodes, minutes, console)
        stored = _stored_summary(site)
        console.print(_table(site, nodes, stored))
        _report(console, site, nodes, stored, plot_path or workdir / "readings.png")
    finally:
        site.stop()
        for n in nodes:
            if n.chip:
                n.chip.stop()
            if n.wire:
                n.wire.close()


def _chip_energy(node: Node) -> tuple[float, float]:
    """(import, export) Wh the emulated BL0942 has counted so far: its CF counter counts
    |energy|, booked here by the sign of the power since the last look."""
    assert node.chip is not None
    wh = node.chip.cf_cnt / node.chip.cal["bl0942_eref"] * 1000
    delta, node.chip_wh = wh - node.chip_wh, wh
    if node.power_w >= 0:
        return node.energy.import_wh + delta, node.energy.export_wh
    return node.energy.import_wh, node.energy.export_wh + delta


def _chip_load(node: Node, site: Site):
    def load() -> tuple[float, float]:
        return node.load.power_w(site.clock.now()), 230.0

    return load


def _run(site: Site, nodes: list[Node], minutes: float, console: Console) -> None:
    issuer = site.issuer()
    t_start = site.clock.now()
    t_end = t_start + minutes * 60
    last = t_start
    progress = Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("sim", total=minutes * 60)
    stored: dict[str, dict] = {}
    last_table = 0.0
    with Live(console=console, refresh_per_second=2) as live:
        while (now := site.clock.now()) < t_end:
            dt, last = now - last, now
            for n in nodes:
                n.power_w = n.load.power_w(now)
                meter = site.meters[n.name]
                if n.prepaid:
                    relay = meter.board.state()["gpio"]["relay"] if meter.board.alive() else 0
                    if relay:  # energy flows only through a closed relay
                        due = n.energy.advance(n.power_w, dt)
                        if due:
                            meter.board.pulses(due)
                    else:
                        n.unserved_wh += max(n.power_w, 0) * dt / 3600
                    _buy_credit_if_low(site, issuer, n, meter, now)
                elif n.chip is not None:  # the chip integrates its load itself: that is the truth
                    n.energy.import_wh, n.energy.export_wh = _chip_energy(n)
            if time.monotonic() - last_table > 2:
                stored = _stored_summary(site)
                last_table = time.monotonic()
            progress.update(task, completed=now - t_start)
            live.update(Group(_table(site, nodes, stored), progress))
            time.sleep(0.2)
    issuer.close()


def _buy_credit_if_low(site: Site, issuer, node: Node, meter: Meter, now: float) -> None:
    credit = node.bought_wh - round(node.energy.import_wh)
    if credit > LOW_CREDIT_WH:
        return
    payment = f"{node.name}-{node.bought_wh}".encode()  # one payment per purchase: idempotent
    token = issuer.energy(meter.meter_id, TOKEN_WH, int(now) + 3600, payment)
    site.send_token(meter, token)
    node.bought_wh += TOKEN_WH


def _report(
    console: Console, site: Site, nodes: list[Node], stored: dict[str, dict], plot: Path
) -> None:
    console.print(f"gateway database: {site.gateway_config.parent / 'state' / 'readings.sqlite3'}")
    for n in nodes:
        s = stored[n.name]
        if n.prepaid:
            console.print(
                f"{n.name}: bought {n.bought_wh} Wh; received {n.energy.import_wh:.0f} Wh, of which "
                f"{s['import_wh']} Wh are in its last stored signed reading (one interval behind at "
                f"most); {n.unserved_wh:.0f} Wh not served while it had no credit"
            )
    try:
        _plot(nodes, stored, plot)
        console.print(f"plot of the stored readings: {plot}")
    except Exception as exc:  # a missing font or backend must not fail the run
        console.print(f"[yellow]no plot: {exc}[/yellow]")


def _plot(nodes: list[Node], stored: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for n in nodes:
        rows = stored[n.name]["rows"]
        if not rows:
            continue
        xs = [(r["start"] % 86400) / 3600 for r in rows] + [(rows[-1]["end"] % 86400) / 3600]
        ys = [r["avg_power_w"] for r in rows] + [rows[-1]["avg_power_w"]]
        ax.step(xs, ys, where="post", label=n.name)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("virtual time of day (h, UTC)")
    ax.set_ylabel("average power per interval (W): + import, - export")
    ax.set_title("Signed meter readings as stored by the gateway")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
