"""A day of a 50-node microgrid for the market tests and the benchmark: participants, forecasts,
"true" metered energy, and signed readings built by soft meters and stored by the gateway's own
ingest pipeline into a real SQLite reading store."""

from __future__ import annotations

import random
from pathlib import Path

from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from gateway.market.agent import MarketAgent, MarketParams
from gateway.market.forecast import Forecast, Window, windows
from gateway.market.slots import GridPrices
from gateway.market.strategies import BatteryStrategy, ConsumerStrategy, ProducerStrategy
from gateway.market.topology import Limits, Topology, radial
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

DAY = 1767225600  # 2026-01-01 00:00 UTC
GRID = GridPrices("pod", tariff_msat_per_kwh=250_000, feed_in_msat_per_kwh=50_000)
CAP = 200_000


def participants(n_pv: int = 15, n_home: int = 30, n_bat: int = 4) -> list[MarketAgent]:
    params = MarketParams(gate_closure_s=300)
    agents = [
        MarketAgent(f"pv-{i:02d}", ProducerStrategy(60_000 + 3_000 * i, lot_wh=500), params)
        for i in range(n_pv)
    ]
    agents += [
        MarketAgent(f"home-{i:02d}", ConsumerStrategy(120_000 + 4_000 * i), params)
        for i in range(n_home)
    ]
    agents += [
        MarketAgent(
            f"bat-{i:02d}",
            BatteryStrategy(10_000, 1_000, 90_000, 180_000, stored_wh=4_000, lot_wh=500),
            params,
        )
        for i in range(n_bat)
    ]
    return agents


def topology(agents: list[MarketAgent], max_loading_percent: int = 100) -> Topology:
    """4 cables of NAYY 4x50 from the transformer, one bus per node, two microgrids."""
    return radial(
        [a.node for a in agents],
        branches=4,
        spacing_m=35,
        std_type="NAYY 4x50 SE",
        microgrids=2,
        limits=Limits(max_line_loading_percent=max_loading_percent),
    )


def forecasts(agents: list[MarketAgent], slots: tuple[Window, ...]) -> dict[str, Forecast]:
    out = {}
    for k, a in enumerate(agents):
        points = []
        for i, w in enumerate(slots):
            if a.node.startswith("pv"):
                sun = max(0, 36 - abs(i - 50)) if 28 <= i <= 72 else 0  # noon peak
                wh = sun * (60 + 5 * k)
            elif a.node.startswith("home"):
                evening = 250 if 70 <= i <= 88 else 0
                wh = -(120 + 7 * (k % 10) + evening)
            else:
                wh = 0
            points.append((w, wh))
        out[a.node] = Forecast.of(a.node, points)
    return out


def true_net_wh(node: str, forecast_wh: int, traded_net_wh: int, rng: random.Random) -> int:
    """What the meter really sees: the forecast (a battery: its trades) with an error."""
    base = traded_net_wh if node.startswith("bat") else forecast_wh
    return base + rng.randint(-abs(base) // 8 - 5, abs(base) // 8 + 5)


class Meters:
    """One soft meter per node, enrolled in a real reading store, ingested by the real pipeline."""

    def __init__(self, path: Path, nodes: list[str]) -> None:
        self.path = path
        self.store = ReadingStore(path)
        self.meters = {
            n: SoftMeter(secret=bytes([1 + i % 250]) * 31 + bytes([7])) for i, n in enumerate(nodes)
        }
        for node, m in self.meters.items():
            self.store.enroll(m.pubkey, label=node)
        self.ingestor = Ingestor(self.store)
        self.totals = {n: [0, 0] for n in nodes}

    def ids(self) -> dict[str, bytes]:
        return {n: m.meter_id for n, m in self.meters.items()}

    def record(self, window: Window, net_wh: dict[str, int]) -> None:
        """Sign one interval reading per node and ingest them as one batch."""
        batch = []
        for node in sorted(self.meters):
            m = self.meters[node]
            net = net_wh.get(node, 0)
            imp, exp = max(0, -net), max(0, net)
            self.totals[node][0] += imp
            self.totals[node][1] += exp
            r = rc.Reading(
                m.meter_id, m.seq, m.prev_hash, window.start, window.end,
                self.totals[node][0], self.totals[node][1],
                interval_import_wh=imp, interval_export_wh=exp,
                avg_power_w=(imp - exp) * 4, peak_power_w=(imp - exp) * 5,
                voltage_dv=2300, relay=1, credit_wh=0,
            )  # fmt: skip
            record = m.make(r)
            m.seq += 1
            m.prev_hash = rc.record_hash(record)
            batch.append(Incoming(m.hex, record, float(window.end)))
        out = self.ingestor.ingest(batch)
        assert not out.rejections, out.rejections[:3]

    def close(self) -> None:
        self.store.close()


def day_windows(count: int = 96) -> tuple[Window, ...]:
    return windows(DAY, count)
