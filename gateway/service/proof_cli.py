"""`sgrid gateway proof`: a stored reading's inclusion proof, from the anchor book and the ledger."""

from __future__ import annotations

import json
import sys

import click

from gateway.config import GatewayConfig
from gateway.grid.anchoring import AnchorBook, proof_for
from gateway.ingest.store import ReadingStore
from gateway.ledger.client import LedgerClient
from gateway.ledger.errors import LedgerError


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _meter_id(store: ReadingStore, meter: str) -> bytes:
    if len(meter) == 32:
        try:
            return bytes.fromhex(meter)
        except ValueError:
            pass
    found = [m.meter_id for m in store.meters() if m.label == meter]
    if not found:
        _fail(f"--meter {meter!r}: no enrolled meter with this id or label", 2)
    return found[0]


def print_proof(cfg: GatewayConfig, meter: str, seq: int) -> None:
    if not cfg.grid.ledger.url:
        _fail("ledger.url is not configured: no ledger to fetch the anchor's block from", 2)
    store = ReadingStore(cfg.database)
    book = AnchorBook(cfg.state_dir / "anchors.sqlite3")
    try:
        meter_id = _meter_id(store, meter)
        if store.record_at(meter_id, seq) is None:
            _fail(f"meter {meter_id.hex()} has no stored reading with seq {seq}")
        batch = book.containing(meter_id, seq)
        if batch is None:
            _fail(f"meter {meter_id.hex()} seq {seq} is not anchored yet (anchor.interval_s)")
            return
        if batch.status != "committed":
            _fail(f"batch {batch.batch_id} holding it is not committed on the ledger yet")
        urls = [u.strip() for u in cfg.grid.ledger.url.split(",")]
        try:
            tx_proof = LedgerClient(urls, timeout=cfg.grid.ledger.timeout_s).tx_proof(batch.tx_id)
        except LedgerError as exc:
            _fail(f"ledger: {exc}")
            return
        click.echo(json.dumps(proof_for(store, batch, meter_id, seq, tx_proof), indent=1))
    finally:
        book.close()
        store.close()
