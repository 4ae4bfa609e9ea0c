"""`sgrid invoice create|decode`: energy receipts as BOLT #11 invoices from the command line."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TextIO

import click

from gateway.ln.codec import bolt11, receipt
from gateway.ln.errors import LnError


def _node_priv(data_dir: Path) -> bytes:
    from gateway.ln.node import keys  # the node seed file (0600), shared with the channel engine

    path = data_dir / keys.SEED_FILE
    if not path.exists():
        raise click.ClickException(f"no node seed at {path}: create or restore the node key first")
    try:
        return keys.NodeKeys(keys.read_seed(path)).node_priv
    except LnError as exc:
        raise click.ClickException(str(exc)) from exc


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
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SGRID_DATA_DIR",
    required=True,
    help="Gateway data directory holding the node seed (env SGRID_DATA_DIR).",
)
@click.option("--amount-msat", type=click.IntRange(min=1), required=True, help="Price in msat.")
@click.option("--node", "node_id", required=True, help="Issuer grid node id (memo field).")
@click.option("--start", type=int, required=True, help="Delivery window start, unix seconds.")
@click.option("--end", type=int, required=True, help="Delivery window end, unix seconds.")
@click.option("--kwh", type=float, help="Energy quantity in kWh.")
@click.option("--kw", "kw_profile", help="Power profile in kW, comma-separated, one per step.")
@click.option("--step-s", type=int, help="Step of the kW profile in seconds.")
@click.option("--preimage", "preimage_hex", help="32-byte hex preimage (default: random).")
@click.option(
    "--expiry", type=click.IntRange(min=1), help="Seconds (default: until delivery start)."
)
@click.option(
    "--min-final-cltv",
    type=click.IntRange(min=0),
    default=receipt.DEFAULT_MIN_FINAL_CLTV,
    show_default=True,
)
@click.option("--now", type=int, help="Issue time, unix seconds (default: now).")
def create(
    data_dir: Path,
    amount_msat: int,
    node_id: str,
    start: int,
    end: int,
    kwh: float | None,
    kw_profile: str | None,
    step_s: int | None,
    preimage_hex: str | None,
    expiry: int | None,
    min_final_cltv: int,
    now: int | None,
) -> None:
    """Issue a signed receipt; prints JSON with the invoice, its preimage and the full memo.

    Keep the preimage secret until paid: revealing it settles the payment.
    """
    try:
        preimage = bytes.fromhex(preimage_hex) if preimage_hex else os.urandom(32)
    except ValueError as exc:
        raise click.BadParameter("preimage must be hex", param_hint="--preimage") from exc
    if len(preimage) != 32:
        raise click.BadParameter("preimage must be 32 bytes", param_hint="--preimage")
    try:
        kw = tuple(float(v) for v in kw_profile.split(",")) if kw_profile else None
    except ValueError as exc:
        raise click.BadParameter(
            "kW profile must be comma-separated numbers", param_hint="--kw"
        ) from exc
    try:
        memo = receipt.EnergyMemo(node_id, start, end, kwh=kwh, kw=kw, step_s=step_s)
        issued = receipt.create_receipt(
            memo,
            amount_msat,
            hashlib.sha256(preimage).digest(),
            _node_priv(data_dir),
            now=int(time.time()) if now is None else now,
            expiry_s=expiry,
            min_final_cltv_expiry=min_final_cltv,
        )
    except LnError as exc:
        raise click.ClickException(str(exc)) from exc
    out = {
        "invoice": issued.invoice,
        "payment_hash": issued.payment_hash.hex(),
        "preimage": preimage.hex(),
        "memo": issued.memo_json,
        "memo_by_hash": bolt11.decode(issued.invoice).description is None,
    }
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
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))
