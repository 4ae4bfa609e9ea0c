from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from gateway.market.forecast import Window, windows
from gateway.market.readings import metered_periods
from gateway.market.reliability import UNKNOWN, Reliability
from gateway.market.settlement import Contract, Metered, settle_period
from gateway.market.statements import period_hash, period_json, to_csv
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

NODES = ("pod", "pv", "home", "bat", "shop")


@st.composite
def contracts(draw):
    out = []
    for _ in range(draw(st.integers(0, 8))):
        seller, buyer = draw(st.permutations(NODES))[:2]
        wh = draw(st.integers(1, 5000))
        price = draw(st.integers(0, 300_000))
        seller_price = draw(st.integers(0, price))
        out.append(
            Contract(
                seller,
                buyer,
                wh,
                wh * price // 1000,
                wh * seller_price // 1000,
                draw(st.integers(0, 50)),
            )
        )
    return out


METERED = st.dictionaries(
    st.sampled_from(NODES[1:]), st.builds(Metered, st.integers(0, 6000), st.integers(0, 6000))
)


@settings(max_examples=300, deadline=None)
@given(cs=contracts(), metered=METERED, price=st.integers(0, 500_000))
def test_statements_sum_to_zero_money_created(cs, metered, price):
    nodes = {c.seller for c in cs} | {c.buyer for c in cs}
    metered = {n: metered.get(n, Metered(0, 0)) for n in sorted(nodes - {"pod"})} | metered
    period = settle_period(0, 900, cs, metered, price, "pod")
    assert period.money_created_msat == 0
    assert [s.node for s in period.statements] == sorted(s.node for s in period.statements)
    by = {s.node: s for s in period.statements}
    for s in period.statements:
        if s.node != "pod":
            assert s.imbalance_wh == metered[s.node].net_wh - s.contracted_net_wh
            assert abs(s.imbalance_msat) == abs(s.imbalance_wh) * price // 1000
            assert (s.imbalance_msat >= 0) == (s.imbalance_wh >= 0) or s.imbalance_msat == 0
    assert by["pod"].imbalance_msat == -sum(
        s.imbalance_msat for s in period.statements if s.node != "pod"
    )
    for r in period.imbalance_receipts:
        assert "pod" in (r.issuer, r.payer) and r.amount_msat > 0
    assert (
        sum(
            r.amount_msat if r.issuer == "pod" else -r.amount_msat
            for r in period.imbalance_receipts
        )
        == by["pod"].imbalance_msat
    )
    assert period_hash(period) == period_hash(
        settle_period(
            0, 900, list(reversed(cs)), dict(reversed(list(metered.items()))), price, "pod"
        )
    )


def test_a_contract_without_a_reading_is_refused():
    import pytest

    from gateway.market.errors import SettlementError

    with pytest.raises(SettlementError, match="home"):
        settle_period(0, 900, [Contract("pv", "home", 10, 1, 1)], {"pv": Metered(0, 10)}, 1, "pod")


def test_hand_worked_period():
    # pv sold 1000 Wh (+20 Wh losses) to home for 150 000 msat; pv exported 900, home drew 1100.
    cs = [Contract("pv", "home", 1000, 150_000, 150_000, 20)]
    p = settle_period(0, 900, cs, {"pv": Metered(0, 900), "home": Metered(1100, 0)}, 200_000, "pod")
    by = {s.node: s for s in p.statements}
    assert by["pv"].imbalance_wh == 900 - 1020 and by["pv"].imbalance_msat == -24_000
    assert by["home"].imbalance_wh == -1100 + 1000 and by["home"].imbalance_msat == -20_000
    assert by["pod"].imbalance_msat == 44_000 and by["pod"].net_msat == 44_000
    assert by["pv"].net_msat == 150_000 - 24_000 and by["home"].net_msat == -170_000
    csv_text = to_csv(p.statements)
    assert (
        csv_text.splitlines()[0].startswith("start,end,node,") and len(csv_text.splitlines()) == 4
    )
    assert period_json(p)["period_id"] == "1970-01-01T00:00Z"


def test_readings_spanning_a_period_boundary_are_split_not_lost(tmp_path):
    store = ReadingStore(tmp_path / "r.sqlite3")
    m = SoftMeter(start=0)
    store.enroll(m.pubkey, "home")
    records = []
    for start, end, imp in ((0, 600, 600), (600, 1200, 601), (1200, 1800, 7)):
        r = rc.Reading(m.meter_id, m.seq, m.prev_hash, start, end, 0, 0, interval_import_wh=imp)
        rec = m.make(r)
        m.seq += 1
        m.prev_hash = rc.record_hash(rec)
        records.append(Incoming(m.hex, rec, 1.0))
    assert not Ingestor(store).ingest(records).rejections
    periods = windows(0, 2)
    got = metered_periods(store, {"home": m.meter_id}, periods)
    assert got[0]["home"].import_wh + got[1]["home"].import_wh == 600 + 601 + 7
    assert (
        got[0]["home"].import_wh == 600 + 301
    )  # 601 Wh split 300.5/300.5: the odd Wh to the first
    assert metered_periods(store, {"home": m.meter_id}, [Window(5000, 5900)]) == [{}]
    store.close()


def test_reliability_scores_follow_forecast_error_and_roll():
    r = Reliability(window=2)
    assert r.score("x") == UNKNOWN
    r.record("x", 1000, 1000)
    assert r.score("x") == 1000
    r.record("x", 1000, 500)
    assert r.score("x") == 750
    r.record("x", 1000, 1000)  # the first period rolled out
    assert r.score("x") == 750
    r.record("y", -100, 400)
    assert r.score("y") == 0 and [n for n, _ in r.scores()] == ["x", "y"]


@settings(max_examples=200, deadline=None)
@given(
    wh=st.integers(1, 10_000),
    msat=st.integers(0, 10**7),
    profile=st.none() | st.lists(st.integers(0, 3000), min_size=4, max_size=4),
)
def test_an_hourly_receipt_settles_over_its_four_periods_exactly(wh, msat, profile):
    from gateway.market.settlement import contracts_in_period
    from gateway.market.strategies import OfferedReceipt

    if profile is not None:
        wh = sum(profile) or 1
        profile = profile if sum(profile) else [1, 0, 0, 0]
    r = OfferedReceipt("pv", 3600, 7200, wh, msat, "00" * 32, tuple(profile or ()))
    parts = [contracts_in_period([("home", r)], w.start, w.end) for w in windows(3600, 4)]
    flat = [c for p in parts for c in p]
    assert (
        sum(c.wh for c in flat) == wh
        and sum(c.amount_msat for c in flat) == msat
        or (msat and not all(flat))
    )
    if profile:
        assert [sum(c.wh for c in p) for p in parts] == profile
    assert all(c.seller == "pv" and c.buyer == "home" for c in flat)
    assert contracts_in_period([("home", r)], 0, 3600) == []
