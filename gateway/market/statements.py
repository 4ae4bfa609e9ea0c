"""Settlement statements as JSON and CSV, and the period hash recorded on the ledger.

The hash is sha256 of the canonical JSON (gateway.ledger.canonical rules: sorted keys, no
spaces, ASCII) of `{"start", "end", "statements": [...sorted by node...]}`; it is what the
`settlement_result` transaction carries as `statements_hash`.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from gateway.ledger import canonical
from gateway.market.settlement import PeriodSettlement, Statement


def period_id(start: int) -> str:
    """The period's id on the ledger: its UTC start, e.g. 2026-01-01T13:15Z."""
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%MZ")


def period_json(period: PeriodSettlement) -> dict[str, Any]:
    return {
        "start": period.start,
        "end": period.end,
        "period_id": period_id(period.start),
        "statements": [s.to_json() for s in period.statements],
        "imbalance_receipts": [
            {"issuer": r.issuer, "payer": r.payer, "wh": r.wh, "amount_msat": r.amount_msat}
            for r in period.imbalance_receipts
        ],
    }


def period_hash(period: PeriodSettlement) -> str:
    """sha256 of the period in the ledger's canonical JSON (`gateway.ledger.canonical`)."""
    return canonical.digest(period_json(period)).hex()


def to_csv(statements: list[Statement] | tuple[Statement, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(Statement.FIELDS)
    for s in statements:
        writer.writerow([getattr(s, f) for f in Statement.FIELDS])
    return out.getvalue()
