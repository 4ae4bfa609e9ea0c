"""`sgrid market ...`: clear a slot's book, run and settle a day, check a feeder (docs/market.md)."""

from __future__ import annotations

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


@market.command("mechanisms")
def mechanisms_cmd() -> None:
    """List the clearing mechanisms and what each one pays."""
    for m in mechanisms.MECHANISMS:
        doc = (sys.modules[type(m).__module__].__doc__ or "").strip().splitlines()[0]
        click.echo(f"{m.name:16} {doc}")
