"""`sgrid invoice create|decode`: energy receipts as BOLT #11 invoices from the command line."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

import click

from gateway.ln.cli.node_options import NODE_URL
from gateway.ln.codec import bolt11, receipt
from gateway.ln.errors import LnError


def invoice_to_dict(inv: bolt11.Invoice) -> dict[str, object]:
    return {
        "currency": inv.currency,
        "amount_msat": inv.amount_msat,
        "timestamp": inv.timestamp,
        "expiry_s": inv.expiry_s,
        "expires_at": inv.expires_at,
        "min_final_cltv_expiry": inv.min_final_cltv,
        "payment_hash": inv.payment_hash.hex(),
        "payment_secret": inv.payment_secret.hex() if inv.payment_secret else None,
        "payee": inv.payee.hex() if inv.payee else None,
        "description": inv.description,
        "description_hash": inv.description_hash.hex() if inv.description_hash else None,
        "features": inv.features,
    }


@click.group("invoice")
def invoice() -> None:
    """Energy receipts: BOLT-11 invoices (prefix lnbcrt) whose memo carries the energy."""


@invoice.command("create")
@NODE_URL
@click.option("--amount-msat", type=click.IntRange(min=1), required=True, help="Price in msat.")
@click.option("--node", "grid_node", help="Issuer grid node id (memo; default: the node's).")
@click.option("--start", type=int, help="Delivery window start, unix s (default: next hour).")
@click.option("--end", type=int, help="Delivery window end, unix s (default: start + 1 h).")
@click.option("--kwh", type=float, help="Energy quantity in kWh.")
@click.option("--kw", "kw_profile", help="Power profile in kW, comma-separated, one per step.")
@click.option("--step-s", type=int, help="Step of the kW profile in seconds.")
@click.option("--count", type=click.IntRange(1, 1000), default=1, show_default=True)
def create(
    node_url: str,
    amount_msat: int,
    grid_node: str | None,
    start: int | None,
    end: int | None,
    kwh: float | None,
    kw_profile: str | None,
    step_s: int | None,
    count: int,
) -> None:
    """Issue energy receipts through the channel node, which keeps their preimages to get paid.

    Prints JSON with the invoices, their payment hashes and the memo. The preimage never leaves
    the node: it is revealed only to settle a payment, so this is the only way to make one.
    """
    from gateway.ln.node.control import call

    start = start or (int(time.time()) // 3600 + 1) * 3600
    body: dict[str, object] = {
        "amount_msat": amount_msat,
        "start": start,
        "end": end or start + 3600,
        "count": count,
    }
    try:
        if kw_profile:
            body["kw"] = [float(v) for v in kw_profile.split(",")]
    except ValueError as exc:
        raise click.BadParameter(
            "kW profile must be comma-separated numbers", param_hint="--kw"
        ) from exc
    for key, value in (("kwh", kwh), ("step_s", step_s), ("node", grid_node)):
        if value is not None:
            body[key] = value
    try:
        out = call(node_url, "/invoice", body)
    except LnError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


@invoice.command("decode")
@click.argument("text")
@click.option("--memo", "memo_file", type=click.File("r"), help="Memo JSON file for `h` invoices.")
def decode(text: str, memo_file: TextIO | None) -> None:
    """Verify and decode an invoice; prints its fields (and energy memo) as JSON."""
    memo_json = memo_file.read().strip() if memo_file else None
    try:
        inv = bolt11.decode(text, description=memo_json)
    except LnError as exc:
        raise click.ClickException(f"invalid invoice: {exc}") from exc
    out = invoice_to_dict(inv)
    try:
        _, memo = receipt.read_receipt(text, memo_json)
        out["energy"] = json.loads(memo.to_json()) | {"energy_kwh": memo.energy_kwh}
    except LnError as exc:
        out["energy"] = None
        out["energy_error"] = str(exc)
    out["expired"] = inv.is_expired(int(time.time()))
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    if out["expired"]:
        click.echo(
            f"error: invoice expired at {inv.expires_at}: it can no longer be paid", err=True
        )
        sys.exit(1)
