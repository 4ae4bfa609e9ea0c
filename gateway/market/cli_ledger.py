"""`sgrid market auction open|offer|bid|close|show` and `sgrid market record`: seed 003's hourly
auction and settlement results as ledger transactions (docs/market.md §6, docs/ledger-api.md §2).

    sgrid market auction open 2026-03-21T13 --start 1774098000 --end 1774101600 --key operator.key
    sgrid market auction offer 2026-03-21T13 --wh 3000 --reserve-msat-per-kwh 0 --key pv.key
    sgrid market auction bid 2026-03-21T13 --wh 2500 --bid-msat-per-kwh 150000 --key home.key
    sgrid market auction close 2026-03-21T13 --key operator.key
    sgrid market auction show 2026-03-21T13          # state, orders, trades (JSON)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from gateway.ledger import txs
from gateway.ledger.cli_operator import KEY, LEDGER_URL, NONCE
from gateway.ledger.client import LedgerClient, NotFound
from gateway.ledger.errors import LedgerError, TxRejected
from gateway.ledger.keys import SigningKey
from gateway.market.units import MAX_PRICE, MAX_WH


def _client(url: str) -> LedgerClient:
    return LedgerClient([u.strip() for u in url.split(",") if u.strip()], retries=2)


def submit(url: str, key_file: Path, kind: str, nonce: str | None, **fields: Any) -> str:
    """Sign and submit one transaction; exits 1 with the ledger's reason when refused."""
    try:
        signer = SigningKey.load(key_file)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{key_file}: not a hex private key ({exc})") from exc
    client = _client(url)
    fields = {k: (signer.pubkey if v is _SIGNER else v) for k, v in fields.items()}
    try:
        tx = txs.make(kind, str(client.info()["chain"]), nonce=nonce, **fields).signed_by(signer)
        receipt = client.submit(tx)
    except TxRejected as exc:
        click.echo(f"refused: {exc.reason}: {exc.detail}", err=True)
        sys.exit(1)
    except LedgerError as exc:
        raise click.ClickException(f"cannot reach the ledger: {exc}") from exc
    click.echo(
        f"{kind} committed: tx {receipt.get('tx_id', tx.id)} in block {receipt.get('height')}"
    )
    return tx.id


_SIGNER = object()  # placeholder: the signer's own public key


@click.group("auction")
def auction() -> None:
    """Seed 003's hourly double auction on the ledger: open, offer, bid, close, show."""


@auction.command("open")
@click.argument("listing_id")
@click.option("--start", type=click.IntRange(min=0), required=True, help="Delivery start, unix s.")
@click.option("--end", type=click.IntRange(min=1), required=True, help="Delivery end, unix s.")
@LEDGER_URL
@KEY
@NONCE
def open_cmd(
    listing_id: str, start: int, end: int, ledger_url: str, key_file: Path, nonce: str | None
) -> None:
    """AcceptOfferBroadcast: open LISTING_ID (e.g. 2026-03-21T13) for offers. Operator only."""
    submit(
        ledger_url,
        key_file,
        "accept_offer_broadcast",
        nonce,
        listing_id=listing_id,
        start=start,
        end=end,
    )


@auction.command("offer")
@click.argument("listing_id")
@click.option("--wh", type=click.IntRange(1, MAX_WH), required=True, help="Energy offered, Wh.")
@click.option(
    "--reserve-msat-per-kwh",
    type=click.IntRange(0, MAX_PRICE),
    default=0,
    show_default=True,
    help="Reserve price (0: none).",
)
@LEDGER_URL
@KEY
@NONCE
def offer_cmd(
    listing_id: str,
    wh: int,
    reserve_msat_per_kwh: int,
    ledger_url: str,
    key_file: Path,
    nonce: str | None,
) -> None:
    """PVoffer: sell WH in LISTING_ID, signed by the seller's key."""
    submit(
        ledger_url,
        key_file,
        "pv_offer",
        nonce,
        listing_id=listing_id,
        seller=_SIGNER,
        wh=wh,
        reserve_msat_per_kwh=reserve_msat_per_kwh,
    )


@auction.command("bid")
@click.argument("listing_id")
@click.option("--wh", type=click.IntRange(1, MAX_WH), required=True, help="Energy wanted, Wh.")
@click.option(
    "--bid-msat-per-kwh",
    type=click.IntRange(0, MAX_PRICE),
    required=True,
    help="Highest price paid.",
)
@LEDGER_URL
@KEY
@NONCE
def bid_cmd(
    listing_id: str,
    wh: int,
    bid_msat_per_kwh: int,
    ledger_url: str,
    key_file: Path,
    nonce: str | None,
) -> None:
    """BUYoffer: bid for WH in LISTING_ID, signed by the buyer's key."""
    submit(
        ledger_url,
        key_file,
        "buy_offer",
        nonce,
        listing_id=listing_id,
        buyer=_SIGNER,
        wh=wh,
        bid_msat_per_kwh=bid_msat_per_kwh,
    )


@auction.command("close")
@click.argument("listing_id")
@LEDGER_URL
@KEY
@NONCE
def close_cmd(listing_id: str, ledger_url: str, key_file: Path, nonce: str | None) -> None:
    """CloseBidding: close LISTING_ID; every ledger node clears it by seed 003's rule. Operator only."""
    submit(ledger_url, key_file, "close_bidding", nonce, listing_id=listing_id)


@auction.command("show")
@click.argument("listing_id")
@LEDGER_URL
def show_cmd(listing_id: str, ledger_url: str) -> None:
    """Print LISTING_ID as JSON: state, orders (in arrival order) and, once closed, its trades."""
    try:
        click.echo(json.dumps(_client(ledger_url).listing(listing_id), indent=1))
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    except LedgerError as exc:
        raise click.ClickException(f"cannot reach the ledger: {exc}") from exc
