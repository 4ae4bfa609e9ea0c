"""The readings a gateway stored, read from its SQLite file by the rigs (read-only, while it runs).

The store keeps each record once, signed, as received (gateway/ingest/store_migration.py); the
file's `readings` view gives one row per record and the fields come from decoding it with the
shared codec, as the gateway does: one row per record, a dict of meter_id, seq, record,
received_at and every `sgcore.reading.Reading` field.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sgcore import reading as rc


def stored_rows(
    db: Path, meter_id: bytes | None = None, kind: int | None = None
) -> list[dict[str, Any]]:
    """The records stored in `db` (of one meter, of one kind), in (meter_id, seq) order; [] when
    the file or its tables do not exist yet."""
    if not Path(db).exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        where, args = ("WHERE meter_id = ?", (meter_id,)) if meter_id is not None else ("", ())
        rows = con.execute(
            f"SELECT meter_id, seq, record, received_at FROM readings {where}"
            " ORDER BY meter_id, seq",
            args,
        ).fetchall()
    except sqlite3.OperationalError:  # no such table yet: the gateway has not opened it
        return []
    finally:
        con.close()
    out = []
    for mid, seq, record, at in rows:
        reading = rc.decode(bytes(record))[0]
        if kind is None or reading.kind == kind:
            fields = {name: getattr(reading, name) for name in rc.FIELDS[1:]}
            out.append({**fields, "meter_id": bytes(mid), "seq": seq, "record": bytes(record),
                        "received_at": at})  # fmt: skip
    return out
