"""`sgrid market ...`: clear a slot's book, run and settle a day, check a feeder (docs/market.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway.market import mechanisms
from gateway.market.book import loads_book
from gateway.market.errors import MarketError


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _read(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}")
        raise AssertionError from exc  # unreachable: _fail exits


@click.group("market")
def market() -> None:
    """The local energy market: order books, mechanisms, feeder check and settlement.

    \b
    Formats, mechanisms, the rounding rule and the tie order: docs/market.md.
    """


@market.command("clear")
@click.argument("book", metavar="BOOK.json")
@click.option(
    "--mechanism",
    type=click.Choice(mechanisms.NAMES),
    default="seed003",
    show_default=True,
    help="Clearing rule: seed 003's hourly auction, pay-as-bid, uniform price, McAfee.",
)
@click.option(
    "--cap-msat-per-kwh",
    type=click.IntRange(min=0),
    default=None,
    help="Price cap (seed 004: below the grid tariff): dearer offers are left out, no trade "
    "is priced above it.",
)
def clear_cmd(book: str, mechanism: str, cap_msat_per_kwh: int | None) -> None:
    """Clear one slot's BOOK.json ('-' for stdin) and print the clearing as JSON on stdout.

    A malformed book exits with status 2 and a message naming the field.
    """
    try:
        parsed = loads_book(_read(book))
        result = mechanisms.clear(parsed, mechanism, cap_msat_per_kwh)
    except MarketError as exc:
        _fail(f"{book}: {exc}")
        return
    click.echo(result.dumps())


@market.command("feeder")
@click.argument("topology", metavar="TOPOLOGY.json")
@click.argument("book", metavar="BOOK.json")
@click.option(
    "--mechanism", type=click.Choice(mechanisms.NAMES), default="pay-as-clear", show_default=True
)
@click.option("--cap-msat-per-kwh", type=click.IntRange(min=0), default=None, help="Price cap.")
def feeder_cmd(topology: str, book: str, mechanism: str, cap_msat_per_kwh: int | None) -> None:
    """Clear BOOK.json and check it on the feeder of TOPOLOGY.json (pandapower power flow);
    curtail and re-clear until feasible; print the clearing with each trade's loss_wh and the
    feeder figures. Slow to start: pandapower takes seconds to import."""
    from gateway.market.feeder import Feeder, clear_feasible
    from gateway.market.topology import load_topology

    try:
        topo = load_topology(Path(topology))
        parsed = loads_book(_read(book))
        result = clear_feasible(Feeder(topo), parsed, mechanism, cap_msat_per_kwh)
    except MarketError as exc:
        _fail(str(exc))
        return
    click.echo(json.dumps(result.to_json(), separators=(",", ":")))


@market.command("coalition")
@click.argument("book", metavar="BOOK.json")
@click.option(
    "--cap-msat-per-kwh", type=click.IntRange(min=0), required=True, help="Microgrid price cap."
)
@click.option(
    "--tariff-msat-per-kwh",
    type=click.IntRange(min=1),
    required=True,
    help="Main-grid tariff (> cap).",
)
def coalition_cmd(book: str, cap_msat_per_kwh: int, tariff_msat_per_kwh: int) -> None:
    """Seed 004: the sellers of BOOK.json pool their energy, sell it under the cap and share the
    revenue in proportion to their contribution; unmatched demand buys from the grid."""
    from gateway.market.coalition import clear_coalition

    if cap_msat_per_kwh >= tariff_msat_per_kwh:
        _fail("--cap-msat-per-kwh must be below --tariff-msat-per-kwh")
    try:
        r = clear_coalition(loads_book(_read(book)), cap_msat_per_kwh, tariff_msat_per_kwh)
    except MarketError as exc:
        _fail(f"{book}: {exc}")
        return
    out = {
        "price_msat_per_kwh": r.price_msat_per_kwh,
        "revenue_msat": r.revenue_msat,
        "sales": [t.to_json() for t in r.sales.trades],
        "shares": [
            {
                "node": s.node,
                "offered_wh": s.offered_wh,
                "obligation_wh": s.obligation_wh,
                "revenue_msat": s.revenue_msat,
            }
            for s in r.shares
        ],  # fmt: skip
        "grid_fills": [
            {"bid": b, "buyer": n, "wh": wh, "amount_msat": a} for b, n, wh, a in r.grid_fills
        ],
    }
    click.echo(json.dumps(out, separators=(",", ":")))


@market.command("topology")
@click.argument("nodes", nargs=-1, required=True)
@click.option("--branches", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--spacing-m", type=click.IntRange(1, 10_000), default=30, show_default=True)
@click.option(
    "--std-type", default="NAYY 4x150 SE", show_default=True, help="pandapower line type."
)
@click.option("--microgrids", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
def topology_cmd(nodes: tuple[str, ...], branches: int, spacing_m: int, std_type: str,
                 microgrids: int, out: Path | None) -> None:  # fmt: skip
    """Write a radial feeder topology file for NODES (one bus each along BRANCHES cables)."""
    from gateway.market.topology import radial

    try:
        topo = radial(list(nodes), branches, spacing_m, std_type, microgrids=microgrids)
    except MarketError as exc:
        _fail(str(exc))
        return
    text = json.dumps(topo.to_json(), indent=1)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n")


@market.command("mechanisms")
def mechanisms_cmd() -> None:
    """List the clearing mechanisms and what each one pays."""
    for m in mechanisms.MECHANISMS:
        doc = (sys.modules[type(m).__module__].__doc__ or "").strip().splitlines()[0]
        click.echo(f"{m.name:16} {doc}")


def _add_more() -> None:
    from gateway.market.cli_ledger import auction
    from gateway.market.cli_settle import settle

    market.add_command(auction)
    market.add_command(settle)


_add_more()
