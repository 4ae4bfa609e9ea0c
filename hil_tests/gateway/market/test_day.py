"""A day of 15-minute slots for 50 nodes: agents' orders, three-level clearing, the pandapower
feeder check, signed readings stored by the gateway's ingest pipeline, settlement, statements and
their hashes on a real ledger."""

import csv
import io
import json
import random

from gateway.ingest.store import ReadingStore
from gateway.ledger import txs
from gateway.market import statements
from gateway.market.readings import metered_periods
from gateway.market.session import MarketDay
from gateway.market.settlement import settle_period
from hil_tests.gateway.ledger.conftest import OPERATOR, ledger  # noqa: F401
from hil_tests.gateway.market import day as d


def test_a_day_of_50_nodes_clears_feasibly_and_settles_to_zero_money_created(tmp_path, ledger):  # noqa: F811
    agents = d.participants()
    slots = d.day_windows()
    forecasts = d.forecasts(agents, slots)
    topo = d.topology(agents, max_loading_percent=12)  # cables already loaded by other flows
    assert len(agents) + 1 == 50 and len(topo.buses) >= 40  # + the POD at the grid connection
    day = MarketDay(
        agents, forecasts, d.GRID, topology=topo, mechanism="pay-as-clear", cap_msat_per_kwh=d.CAP
    )
    meters = d.Meters(tmp_path / "readings.sqlite3", [a.node for a in agents])
    rng = random.Random(11)
    cleared = []
    for w in slots:
        slot = day.clear(w, now=w.start - 600)
        assert slot.feeder is not None and slot.feeder.feasible
        cleared.append(slot)
        traded = {}
        for t in slot.trades:
            traded[t.seller] = traded.get(t.seller, 0) + t.wh
            traded[t.buyer] = traded.get(t.buyer, 0) - t.wh
        meters.record(
            w,
            {
                a.node: d.true_net_wh(
                    a.node, forecasts[a.node].net_wh(w), traded.get(a.node, 0), rng
                )
                for a in agents
            },
        )
    ids = meters.ids()
    meters.close()

    store = ReadingStore(tmp_path / "readings.sqlite3")  # what the gateway persisted
    assert store.count() == 96 * 49
    metered = metered_periods(store, ids, slots)
    store.close()

    levels = {"p2p": 0, "grid": 0}
    total_imbalance_msat = 0
    hashes = []
    for i, (w, slot) in enumerate(zip(slots, cleared, strict=True)):
        price = 150_000 + 1_000 * (i % 24)  # one imbalance price per 15-minute period
        period = day.settle(w, metered[i], price)
        assert period.money_created_msat == 0
        for s in period.statements:
            if s.node != "pod":
                m = metered[i][s.node]
                assert s.imbalance_wh == (m.export_wh - m.import_wh) - s.contracted_net_wh
                assert abs(s.imbalance_msat) == abs(s.imbalance_wh) * price // 1000
        assert sum(s.sold_wh for s in period.statements) == sum(
            s.bought_wh for s in period.statements
        )
        for t in slot.trades:
            levels["grid" if "pod" in (t.seller, t.buyer) else "p2p"] += t.wh
        total_imbalance_msat += sum(
            abs(s.imbalance_msat) for s in period.statements if s.node != "pod"
        )
        doc = statements.period_json(period)
        (tmp_path / f"{doc['period_id']}.json").write_text(json.dumps(doc))
        rows = list(csv.DictReader(io.StringIO(statements.to_csv(period.statements))))
        assert sum(int(r["net_msat"]) for r in rows) == 0 and len(rows) == 50
        digest = statements.period_hash(period)
        again = settle_period(w.start, w.end, slot.contracts(), metered[i], price, "pod")
        assert digest == statements.period_hash(again)  # deterministic
        hashes.append((doc["period_id"], digest, len(period.statements)))
    assert levels["p2p"] > 0 and levels["grid"] > 0 and total_imbalance_msat > 0
    assert (
        any(s.feeder and s.feeder.curtailed for s in cleared)
        or max(s.feeder.max_loading_permille for s in cleared if s.feeder) > 100
    )
    assert sum(sum(s.loss_wh) for s in cleared) > 0
    assert day.reliability.score("home-00") < 1000

    for pid, digest, count in hashes:
        ledger.submit(
            txs.make(
                "settlement_result",
                ledger.chain,
                period_id=pid,
                statements_hash=digest,
                statement_count=count,
            ).signed_by(OPERATOR)
        )
    assert ledger.client.settlement(hashes[50][0])["statements_hash"] == hashes[50][1]
