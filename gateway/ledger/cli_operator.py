"""`sgrid ledger enroll|enroll-meter|deposit|withdraw|balance|info`: bring a node onto the ledger.

The operator signs enrolments and deposits with the key whose public key is `ledger.operator` in
the ledger config (`sgrid ledger keygen` made it). Every command talks to a running ledger node
(--ledger, env SGRID_LEDGER_URL) and waits until its transaction is in a block; a refusal prints
the ledger's reason code (docs/ledger-api.md, "Rejections") and exits 1.

Bringing in a new grid node (docs/gateway.md, "Bringing a node in"):

    sgrid gateway node-id --config gateway.toml               # the node's participant key
    sgrid ledger enroll <node id> --name house-3 --role consumer --key operator.key
    sgrid ledger enroll-meter <meter pubkey> --owner <node id> --key operator.key
    sgrid ledger deposit <node id> 50000000 --reference "invoice 17" --key operator.key
    sgrid ledger balance <node id>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from gateway.ledger import keys, txs
from gateway.ledger.client import LedgerClient, NotFound
from gateway.ledger.errors import LedgerError, TxRejected

LEDGER_URL = click.option(
    "--ledger",
    "ledger_url",
    envvar="SGRID_LEDGER_URL",
    default="http://127.0.0.1:8720",
    show_default=True,
    help="Ledger node HTTP API; several replicas comma-separated (env SGRID_LEDGER_URL).",
)
KEY = click.option(
    "--key",
    "key_file",
    envvar="SGRID_LEDGER_KEY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="File with the signer's hex private key (env SGRID_LEDGER_KEY).",
)
NONCE = click.option(
    "--nonce",
    help="Transaction nonce (default: unique). Give the same one to retry safely: same tx id.",
)


def _pubkey(value: str, what: str) -> str:
    value = value.strip().lower()
    if not keys.is_pubkey(value):
        raise click.BadParameter(f"{what} must be a compressed secp256k1 public key (66 hex)")
    return value


def _client(url: str) -> LedgerClient:
    return LedgerClient([u.strip() for u in url.split(",") if u.strip()], retries=2)


def _signer(key_file: Path) -> keys.SigningKey:
    try:
        return keys.SigningKey.load(key_file)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{key_file}: not a hex private key ({exc})") from exc


def _submit(url: str, key_file: Path, kind: str, nonce: str | None, **fields: Any) -> None:
    client = _client(url)
    signer = _signer(key_file)
    try:
        chain = str(client.info()["chain"])
        tx = txs.make(kind, chain, nonce=nonce, **fields).signed_by(signer)
        receipt = client.submit(tx)
    except TxRejected as exc:
        click.echo(f"refused: {exc.reason}: {exc.detail}", err=True)
        sys.exit(1)
    except LedgerError as exc:
        raise click.ClickException(f"cannot reach the ledger: {exc}") from exc
    click.echo(
        f"{kind} committed: tx {receipt.get('tx_id', tx.id)} in block {receipt.get('height')}"
    )


@click.command("enroll")
@click.argument("participant")
@click.option("--name", required=True, help="A readable name, 1..64 characters (house-3).")
@click.option("--role", type=click.Choice(txs.ROLES), required=True, help="The node's role.")
@LEDGER_URL
@KEY
@NONCE
def enroll(
    participant: str, name: str, role: str, ledger_url: str, key_file: Path, nonce: str | None
) -> None:
    """Enrol PARTICIPANT (a gateway's node id: `sgrid gateway node-id`). Operator only."""
    _submit(
        ledger_url,
        key_file,
        "enroll_participant",
        nonce,
        participant=_pubkey(participant, "PARTICIPANT"),
        name=name,
        role=role,
    )


@click.command("enroll-meter")
@click.argument("meter")
@click.option("--owner", required=True, help="The enrolled participant that owns the meter.")
@LEDGER_URL
@KEY
@NONCE
def enroll_meter(
    meter: str, owner: str, ledger_url: str, key_file: Path, nonce: str | None
) -> None:
    """Enrol a METER public key (from provisioning) so its readings can be anchored. Operator only."""
    _submit(
        ledger_url,
        key_file,
        "enroll_meter",
        nonce,
        meter=_pubkey(meter, "METER"),
        owner=_pubkey(owner, "--owner"),
    )


@click.command("deposit")
@click.argument("account")
@click.argument("amount_msat", type=click.IntRange(1, txs.MAX_AMOUNT))
@click.option("--reference", default="", help="Payment reference, up to 128 characters.")
@LEDGER_URL
@KEY
@NONCE
def deposit(
    account: str,
    amount_msat: int,
    reference: str,
    ledger_url: str,
    key_file: Path,
    nonce: str | None,
) -> None:
    """Credit AMOUNT_MSAT to an enrolled ACCOUNT (money paid in outside the ledger). Operator only."""
    _submit(
        ledger_url,
        key_file,
        "deposit",
        nonce,
        account=_pubkey(account, "ACCOUNT"),
        amount_msat=amount_msat,
        reference=reference,
    )


@click.command("withdraw")
@click.argument("amount_msat", type=click.IntRange(1, txs.MAX_AMOUNT))
@LEDGER_URL
@KEY
@NONCE
def withdraw(amount_msat: int, ledger_url: str, key_file: Path, nonce: str | None) -> None:
    """Take AMOUNT_MSAT out of the signer's own account (signed with the account's key)."""
    signer = _signer(key_file)
    _submit(ledger_url, key_file, "withdraw", nonce, account=signer.pubkey, amount_msat=amount_msat)


@click.command("balance")
@click.argument("account")
@LEDGER_URL
def balance(account: str, ledger_url: str) -> None:
    """Print ACCOUNT's balance in msat, with its name and role (exit 1 if not enrolled)."""
    try:
        info = _client(ledger_url).account(_pubkey(account, "ACCOUNT"))
    except NotFound:
        click.echo(f"{account}: not enrolled on this ledger", err=True)
        sys.exit(1)
    except LedgerError as exc:
        raise click.ClickException(f"cannot reach the ledger: {exc}") from exc
    click.echo(f"{info['balance_msat']} msat ({info['name']}, {info['role']})")


@click.command("info")
@LEDGER_URL
def info(ledger_url: str) -> None:
    """The ledger's chain id, height, operator and validator keys (JSON)."""
    try:
        click.echo(json.dumps(_client(ledger_url).info(), indent=2))
    except LedgerError as exc:
        raise click.ClickException(f"cannot reach the ledger: {exc}") from exc


COMMANDS = (enroll, enroll_meter, deposit, withdraw, balance, info)
