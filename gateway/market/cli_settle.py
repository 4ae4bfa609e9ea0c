"""`sgrid market settle`: settle one period against the gateway's reading store (docs/market.md §8).

    sgrid market settle --readings /var/lib/seamless-grid/readings.sqlite3 --trades cleared.json \\
        --start 1767225600 --end 1767226500 --imbalance-price-msat-per-kwh 180000 --pod pod \\
        [--meter home-1=<meter id hex> ...] [--csv statements.csv] [--record --key operator.key]

TRADES is the output of `sgrid market clear` or `sgrid market feeder` (its `trades`: paid
receipts). A node's meter is the store's meter whose label is the node name, unless --meter
names it. Prints the period's statements, imbalance receipts and hash as JSON; --record puts
the hash on the ledger as a `settlement_result` transaction.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from gateway.errors import StoreError
from gateway.ledger.cli_operator import LEDGER_URL, NONCE
from gateway.market.errors import MarketError
from gateway.market.forecast import Window
from gateway.market.settlement import Contract, settle_period
from gateway.market.statements import period_hash, period_id, period_json, to_csv


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _int(t: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    v = t.get(key, default)
    if type(v) is not int or v < 0:
        _fail(f"{where}.{key}: must be a non-negative integer")
    assert isinstance(v, int)
    return v


def parse_trades(value: Any, name: str) -> list[Contract]:
    trades = value.get("trades") if isinstance(value, dict) else None
    if not isinstance(trades, list):
        _fail(f"{name}: trades: must be a list (the output of `sgrid market clear`)")
    out = []
    for i, t in enumerate(trades or []):
        where = f"{name}: trades[{i}]"
        if not isinstance(t, dict):
            _fail(f"{where}: must be an object")
        for key in ("seller", "buyer"):
            if not isinstance(t.get(key), str) or not t[key]:
                _fail(f"{where}.{key}: must be a node id")
        amount = _int(t, "amount_msat", where)
        out.append(
            Contract(
                t["seller"], t["buyer"], _int(t, "wh", where), amount,
                _int(t, "seller_amount_msat", where, amount), _int(t, "loss_wh", where, 0),
            )
        )  # fmt: skip
    return out


@click.command("settle")
@click.option(
    "--readings",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The gateway's reading store (SQLite).",
)
@click.option(
    "--trades",
    "trades_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Clearing JSON whose trades were paid.",
)
@click.option("--start", type=click.IntRange(min=0), required=True, help="Period start, unix s.")
@click.option("--end", type=click.IntRange(min=1), required=True, help="Period end, unix s.")
@click.option("--imbalance-price-msat-per-kwh", type=click.IntRange(min=0), required=True)
@click.option("--pod", required=True, help="The POD's node id (the imbalance counterparty).")
@click.option(
    "--meter", "meter_map", multiple=True, help="NODE=METER_ID_HEX (default: store labels)."
)
@click.option(
    "--csv",
    "csv_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the statements as CSV.",
)
@click.option("--record", is_flag=True, help="Record the period hash on the ledger (needs --key).")
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SGRID_LEDGER_KEY",
    help="Operator key file (for --record).",
)
@LEDGER_URL
@NONCE
def settle(readings: Path, trades_file: Path, start: int, end: int, imbalance_price_msat_per_kwh: int,
           pod: str, meter_map: tuple[str, ...], csv_out: Path | None, record: bool,
           key_file: Path | None, ledger_url: str, nonce: str | None) -> None:  # fmt: skip
    """Settle one period's paid trades against the signed readings the gateway stored."""
    from gateway.ingest.store import ReadingStore
    from gateway.market.readings import metered_periods

    if end <= start:
        _fail("--end must be after --start")
    try:
        contracts = parse_trades(json.loads(trades_file.read_text()), str(trades_file))
    except ValueError as exc:
        _fail(f"{trades_file}: is not JSON: {exc}")
        return
    try:
        store = ReadingStore(readings)
    except StoreError as exc:
        _fail(str(exc))
        return
    try:
        meters = {m.label: m.meter_id for m in store.meters() if m.label}
        for item in meter_map:
            node, _, hexid = item.partition("=")
            try:
                meters[node] = bytes.fromhex(hexid)
            except ValueError:
                _fail(f"--meter {item}: expected NODE=METER_ID_HEX")
        (metered,) = metered_periods(store, meters, [Window(start, end)])
    finally:
        store.close()
    try:
        period = settle_period(start, end, contracts, metered, imbalance_price_msat_per_kwh, pod)
    except MarketError as exc:
        _fail(str(exc))
        return
    doc = period_json(period)
    doc["hash"] = period_hash(period)
    doc["money_created_msat"] = period.money_created_msat
    click.echo(json.dumps(doc, separators=(",", ":")))
    if csv_out is not None:
        csv_out.write_text(to_csv(period.statements))
    if record:
        if key_file is None:
            _fail("--record needs --key (the operator's key file)")
            return
        from gateway.market.cli_ledger import submit

        submit(ledger_url, key_file, "settlement_result", nonce, period_id=period_id(start),
               statements_hash=doc["hash"], statement_count=len(period.statements))  # fmt: skip
