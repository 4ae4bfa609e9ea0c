"""`sgrid ledger`: run the ledger node, verify a chain, make and check offline anchor proofs."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

import click

from gateway.ledger import config as ledger_config
from gateway.ledger import proofs
from gateway.ledger.errors import ChainInvalid, LedgerError, ProofInvalid
from gateway.ledger.keys import SigningKey

CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="ledger TOML configuration (docs/ledger.md)",
)


@click.group("ledger")
def ledger() -> None:
    """The ledger node: enrolment, balances, channels, anchors and market results, hash-chained."""


@ledger.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def keygen(out: Path) -> None:
    """Write a new secp256k1 private key (hex) to OUT (mode 600) and print its public key."""
    key = SigningKey()
    out.touch(mode=0o600, exist_ok=False)
    out.write_text(key.secret_hex() + "\n")
    click.echo(key.pubkey)


@ledger.command()
@CONFIG
def run(config_path: Path) -> None:
    """Run the node: HTTP JSON API, block production, SQLite (or etcd-replicated) storage."""
    from gateway.ledger import service

    try:
        running = service.start(ledger_config.load(config_path))
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"ledger {running.node.chain.chain_id} listening {running.url}", nl=True)
    sys.stdout.flush()
    # In turns, not one wait: a signal caught just before the wait blocks would otherwise be
    # acted on only when the wait ends (CPython runs Python handlers between bytecodes).
    while not stop.wait(0.5):
        pass
    running.stop()


@ledger.command()
@CONFIG
@click.option(
    "--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="another SQLite file"
)
def verify(config_path: Path, db: Path | None) -> None:
    """Re-validate the whole chain from genesis; names the first bad block (exit 1) if tampered."""
    from gateway.ledger.store import Store
    from gateway.ledger.verify import verify_chain

    cfg = ledger_config.load(config_path)
    store = Store(db or cfg.db)
    try:
        report = verify_chain(
            store.blocks(), cfg.name, cfg.operator, cfg.validator_pubkey(), cfg.genesis_time_ms
        )
    except ChainInvalid as exc:
        click.echo(f"INVALID: first bad block {exc.height}: {exc.reason}")
        sys.exit(1)
    finally:
        store.close()
    click.echo(
        f"OK: {report.height + 1} blocks, {report.transactions} transactions, tip {report.tip_hash}"
    )


@ledger.command()
@click.option(
    "--records",
    type=click.File("rb"),
    required=True,
    help="the batch: concatenated 167-byte records",
)
@click.option("--index", type=int, required=True, help="which record to prove (0-based)")
@click.option(
    "--tx-proof",
    type=click.File("r"),
    required=True,
    help="GET /v1/tx/<anchor id>/proof saved as JSON",
)
def prove(records: IO[Any], index: int, tx_proof: IO[Any]) -> None:
    """Print an offline inclusion proof of one record of an anchored batch."""
    try:
        batch = proofs.split_records(records.read())
        if not 0 <= index < len(batch):
            raise ProofInvalid(f"index {index} outside the batch of {len(batch)}")
        click.echo(json.dumps(proofs.reading_proof(batch, index, json.load(tx_proof)), indent=1))
    except (ProofInvalid, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@ledger.command("verify-proof")
@click.argument("proof", type=click.File("r"))
@click.option("--validator", required=True, help="the ledger's validator public key (hex)")
def verify_proof(proof: IO[Any], validator: str) -> None:
    """Check an inclusion proof offline: record -> anchor -> block -> validator signature."""
    try:
        summary = proofs.verify_reading_proof(json.load(proof), validator)
    except (ProofInvalid, ValueError) as exc:
        click.echo(f"INVALID: {exc}")
        sys.exit(1)
    click.echo(
        f"OK: meter {summary['meter_id']} seq {summary['seq']} anchored by {summary['anchor_tx'][:16]}... "
        f"in block {summary['height']} ({summary['block_hash'][:16]}...)"
    )


def _add_operator_commands() -> None:
    from gateway.ledger.cli_operator import COMMANDS

    for command in COMMANDS:
        ledger.add_command(command)


_add_operator_commands()
