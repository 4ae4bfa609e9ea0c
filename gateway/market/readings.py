"""Metered energy per node and period, from the gateway's reading store (the I/O side of settlement).

The store (gateway/ingest/store.py) holds only readings whose signature, sequence and chain the
ingest pipeline verified. A reading's interval energy counts in the periods its interval overlaps,
split by overlap seconds with `units.split` (so a reading spanning a boundary is never counted
twice or lost); the part outside every requested period is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.ingest.store import ReadingStore
from gateway.market.forecast import Window
from gateway.market.settlement import Metered
from gateway.market.units import split
from sgcore import reading as rc


def metered_periods(
    store: ReadingStore, meters: Mapping[str, bytes], periods: Sequence[Window]
) -> list[dict[str, Metered]]:
    """For each period, node -> Metered(import, export), from each node's meter (by meter id).

    A node whose meter has no reading overlapping a period is absent from that period."""
    ordered = sorted(periods)
    if list(periods) != ordered:
        raise ValueError("periods must be in time order")
    out: list[dict[str, Metered]] = [{} for _ in periods]
    for node in sorted(meters):
        imp = [0] * len(periods)
        exp = [0] * len(periods)
        seen = [False] * len(periods)
        for stored in store.readings(meters[node]):
            r = stored.reading
            if r.kind != rc.KIND_READING or r.end <= r.start:
                continue
            overlaps = [max(0, min(r.end, p.end) - max(r.start, p.start)) for p in periods]
            if not any(overlaps):
                continue
            weights = [*overlaps, (r.end - r.start) - sum(overlaps)]
            for i, (a, b) in enumerate(
                zip(
                    split(r.interval_import_wh, weights),
                    split(r.interval_export_wh, weights),
                    strict=True,
                )
            ):
                if i < len(periods) and overlaps[i]:
                    imp[i] += a
                    exp[i] += b
                    seen[i] = True
        for i in range(len(periods)):
            if seen[i]:
                out[i][node] = Metered(imp[i], exp[i])
    return out
