"""The long side of imbalance settlement: the POD pays a node's unsold surplus (pure parts and the
books), on real secp256k1 meter signatures, real receipts and real SQLite."""

from __future__ import annotations

import time
from pathlib import Path

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.crypto import sign_digest
from gateway.grid import surplus
from gateway.grid.pod import MAX_AGE_S
from gateway.grid.pod_surplus import MeterEntry, RateLimit, judge
from gateway.grid.surplus_book import ClaimRow, PodPurchases, Purchase, Sale, SurplusBook
from gateway.ingest.store import ReadingStore
from gateway.ln.codec import receipt
from gateway.ln.codec import surplus_claim as sc
from gateway.ln.codec.wire import TABLE
from gateway.ln.errors import WireError
from gateway.ln.node.keys import NodeKeys
from gateway.market.units import amount_msat
from sgcore import reading as rc

NODE = NodeKeys(bytes([5] * 32))
OTHER = NodeKeys(bytes([6] * 32))
METER = coincurve.PrivateKey(bytes([7] * 32))
METER_PUB = METER.public_key.format(compressed=True)
MID = rc.meter_id_from_pubkey(METER_PUB)
PRICE = 400_000  # msat per kWh
P = 900


def record(seq: int, end: int, export_wh: int, key: coincurve.PrivateKey = METER) -> bytes:
    mid = rc.meter_id_from_pubkey(key.public_key.format(compressed=True))
    r = rc.Reading(mid, seq, bytes(32), end - 60, end, 0, export_wh, 0, 0)
    body = rc.encode_body(r)
    return body + sign_digest(key, rc.digest(body))


def invoice(wh: int, start: int, amount: int | None = None, keys: NodeKeys = NODE,
            kind: str | None = receipt.KIND_SURPLUS, expiry: int = 3600) -> str:  # fmt: skip
    memo = receipt.EnergyMemo("pv", start, start + P, kwh=wh / 1000, kind=kind)
    amount = amount_msat(wh, PRICE) if amount is None else amount
    return receipt.create_receipt(memo, amount, bytes([1]) * 32, keys.node_priv, int(time.time()),
                                  expiry_s=expiry).invoice  # fmt: skip


def claim(start: int, wh: int = 300, first_export: int = 1000, last_export: int = 1400,
          **kw: object) -> sc.SurplusClaim:  # fmt: skip
    first = kw.pop("first", record(10, start, first_export))
    last = kw.pop("last", record(25, start + P, last_export))
    inv = kw.pop("invoice", invoice(wh, start))
    rid = kw.pop("rid", sc.request_id_for(MID, start, start + P))
    return sc.SurplusClaim(rid, start, start + P, wh, first, last, inv)  # type: ignore[arg-type]


ENTRY = MeterEntry(METER_PUB, NODE.node_id)


def past_period(now: float, back: int = 1) -> int:
    return int(now) // P * P - back * P


def test_codec_roundtrip_and_limits():
    c = claim(past_period(time.time()))
    assert sc.claim_from(TABLE.decode(sc.encode_claim(c))) == c
    a = sc.SurplusAnswer(c.request_id, sc.REFUSED, "é" * 150)  # cut at 200 bytes, still UTF-8
    back = sc.answer_from(TABLE.decode(sc.encode_answer(a)))
    assert back.status == sc.REFUSED and len(back.reason.encode()) <= sc.MAX_REASON
    for bad in (
        sc.SurplusClaim(c.request_id, 0, 0, 1, c.first, c.last, c.invoice),  # empty period
        sc.SurplusClaim(c.request_id, 0, P, 0, c.first, c.last, c.invoice),  # no energy
        sc.SurplusClaim(c.request_id, 0, P, sc.MAX_WH + 1, c.first, c.last, c.invoice),
        sc.SurplusClaim(c.request_id, 0, P, 1, c.first[:-1], c.last, c.invoice),  # oversized
        sc.SurplusClaim(c.request_id, 0, P, 1, c.first, c.last, "x" * (sc.MAX_INVOICE + 1)),
    ):
        with pytest.raises(WireError):
            sc.encode_claim(bad)
    with pytest.raises(WireError):
        sc.encode_answer(sc.SurplusAnswer(c.request_id, 9))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - P - 1), st.integers(1, sc.MAX_WH), st.binary(min_size=1, max_size=40))
def test_claim_codec_roundtrip_property(start, wh, tail):
    c = sc.SurplusClaim(bytes(32), start, start + P, wh, bytes(rc.RECORD_LEN), b"\x01" * 167,
                        "lnbcrt" + tail.hex())  # fmt: skip
    assert sc.claim_from(TABLE.decode(sc.encode_claim(c))) == c


def test_a_claim_within_the_metered_export_is_bought_at_most_at_the_price():
    now = time.time()
    start = past_period(now)
    v = judge(claim(start), NODE.node_id, ENTRY, PRICE, P, now)
    assert v.status == 0 and v.wh == 300 and v.amount_msat == amount_msat(300, PRICE)
    assert (v.first_seq, v.last_seq) == (10, 25)
    cheaper = claim(start, invoice=invoice(300, start, amount=1))
    assert judge(cheaper, NODE.node_id, ENTRY, PRICE, P, now).amount_msat == 1


def _reason(c: sc.SurplusClaim, now: float, **kw: object) -> str:
    args = {"sender": NODE.node_id, "entry": ENTRY, "price": PRICE} | kw
    v = judge(c, args["sender"], args["entry"], args["price"], P, now)  # type: ignore[arg-type]
    assert v.status in (sc.REFUSED, sc.RETRY), v
    return v.reason


def test_forged_replayed_oversized_and_early_claims_are_refused():
    now = time.time()
    s = past_period(now)
    thief = coincurve.PrivateKey(bytes([8] * 32))
    sig_flip = bytearray(record(25, s + P, 1400))
    sig_flip[-5] ^= 1
    body_edit = bytearray(record(25, s + P, 1400))
    body_edit[78] ^= 0x10  # export_wh raised after signing
    cases = {
        "does not verify": claim(s, last=bytes(sig_flip)),
        "does not verify ": claim(s, last=bytes(body_edit)),
        "different meters": claim(s, last=record(25, s + P, 1400, key=thief)),
        "within the period": claim(s, first=record(10, s - 60, 1000)),
        "within the period ": claim(s, last=record(25, s + P + 60, 1400)),
        "come before": claim(s, first=record(25, s + 60, 1000), last=record(10, s + P, 1400)),
        "exported 400 Wh": claim(s, wh=401, invoice=invoice(401, s)),
        "request id": claim(s, rid=sc.request_id_for(MID, s - P, s)),
        "claiming node's": claim(s, invoice=invoice(300, s, keys=OTHER)),
        "kind": claim(s, invoice=invoice(300, s, kind=None)),
        "claimed energy": claim(s, invoice=invoice(299, s)),
        "at most": claim(s, invoice=invoice(300, s, amount=amount_msat(300, PRICE) + 1)),
        "expired": claim(s, invoice=invoice(300, s, expiry=1)),
    }
    for expected, c in cases.items():  # 5 s later: the 1 s receipt has expired
        assert expected.strip() in _reason(c, now + 5), expected
    ok = claim(s)
    assert "not this node's" in _reason(ok, now, sender=OTHER.node_id)
    assert "not enrolled" in _reason(ok, now, entry=None)
    assert "enrolled key" in _reason(ok, now, entry=MeterEntry(
        thief.public_key.format(compressed=True), NODE.node_id))  # fmt: skip
    assert "buys no surplus" in _reason(ok, now, price=0)
    assert "not over" in _reason(claim(past_period(now, back=-1)), now)
    assert judge(claim(past_period(now, -1)), NODE.node_id, ENTRY, PRICE, P, now).status == sc.RETRY
    old = int(now - MAX_AGE_S) // P * P - P
    assert "too old" in _reason(claim(old), now)
    assert "settlement period" in _reason(claim(s + 60), now)  # not aligned


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=3, max_size=12), st.data())
def test_the_pod_never_pays_more_than_the_meter_exported(per_interval, data):
    """Readings every 300 s with random exports; any claims over disjoint periods that the POD
    accepts add up to no more than what the meter exported."""
    now = time.time()
    base = past_period(now, back=len(per_interval))
    totals = [1000]
    for x in per_interval:
        totals.append(totals[-1] + x)
    records = [record(i, base + 300 * i, t) for i, t in enumerate(totals)]
    paid = 0
    for p in range(len(per_interval) * 300 // P):
        start = base + p * P
        inside = [i for i in range(len(records)) if start <= base + 300 * i <= start + P]
        i, j = data.draw(st.sampled_from([(a, b) for a in inside for b in inside if a < b]))
        wh = data.draw(st.integers(1, 1300))
        c = claim(start, wh=wh, first=records[i], last=records[j], invoice=invoice(wh, start))
        v = judge(c, NODE.node_id, ENTRY, PRICE, P, now)
        if v.status == 0:
            paid += v.wh
            assert v.wh <= totals[j] - totals[i]
    assert paid <= totals[-1] - totals[0]


def test_surplus_is_export_less_paid_sales_prorated_and_rounded_up():
    sales = [Sale(b"a", 0, 900, 100), Sale(b"b", 450, 1350, 101), Sale(b"c", 0, 900, 500)]
    paid = {b"a", b"b"}.__contains__
    assert surplus.sold_wh(sales, paid, 0, 900) == 100 + 51  # half of 101, rounded up
    first = rc.decode(record(1, 900, 1000))[0]
    last = rc.decode(record(2, 1800, 1300))[0]
    assert surplus.surplus_wh(first, last, 151) == (300, 149)
    assert surplus.surplus_wh(first, last, 400) == (300, 0)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_surplus_never_exceeds_the_export_and_covers_it_with_the_sales(a, x, sold):
    first = rc.decode(record(1, 900, a))[0]
    last = rc.decode(record(2, 1800, a + x))[0]
    exported, wh = surplus.surplus_wh(first, last, sold)
    assert exported == x and 0 <= wh <= x and wh + sold >= x


def test_periods_due_are_whole_over_reached_and_not_too_old():
    assert surplus.periods_due(0, 2000, 5000, P, 0) == [(0, 900), (900, 1800)]
    assert surplus.periods_due(900, 5000, 2000, P, 0) == [(900, 1800)]  # not over yet
    assert surplus.periods_due(0, 5000, 5000, P, 3000) == [(3600, 4500)]  # older ones skipped
    assert len(surplus.periods_due(0, 10**9, 10**9, P, 0)) == surplus.MAX_PERIODS_PER_ROUND


def test_the_store_gives_the_records_bounding_a_period(tmp_path: Path):
    store = ReadingStore(tmp_path / "r.sqlite3")
    store.enroll(METER_PUB, "pv")
    rows = []
    for seq, end in enumerate(range(60, 1200, 120)):
        rec = record(seq, end, 10 * seq)
        rows.append((rec, 0.0))
    store.append_batch(rows, {MID: (len(rows), rc.record_hash(rows[-1][0]))})
    first, last = store.bounding(MID, 0, 900)  # type: ignore[misc]
    assert (first.reading.end, last.reading.end) == (60, 900)
    assert store.bounding(MID, 61, 179) is None  # one reading only: nothing to bound
    store.close()


def test_a_period_is_examined_once_and_its_claim_survives_a_restart(tmp_path: Path):
    book = SurplusBook(tmp_path / "s.sqlite3")
    assert book.cursor(MID) is None
    c = claim(P)
    row = ClaimRow(c.request_id, MID, P, 2 * P, 400, 100, 300, 120_000, b"h" * 32, c.invoice,
                   c.first, c.last, "asking", "", 0)  # fmt: skip
    book.advance(MID, 2 * P, row, last_seq=25)
    book.advance(MID, 2 * P, row)  # again (a crash before the cursor was seen): still one claim
    book.advance(MID, P)  # never backwards
    book.close()
    book = SurplusBook(tmp_path / "s.sqlite3")
    assert book.cursor(MID) == (2 * P, 25) and book.claims("asking") == [row]
    book.set_claim(c.request_id, "paid")
    book.prune(2 * P + 1)
    assert book.claims() == []
    book.close()


def test_the_pod_buys_a_meters_period_once(tmp_path: Path):
    pods = PodPurchases(tmp_path / "p.sqlite3")
    p = Purchase(MID, 0, P, b"r" * 32, NODE.node_id, 300, 120_000, 10, 25, b"h" * 32, "lnbcrt1",
                 "paying", "")  # fmt: skip
    assert pods.add(p)
    assert not pods.add(p)
    assert not pods.add(Purchase(MID, 0, P, b"s" * 32, NODE.node_id, 1, 1, 10, 25, b"i" * 32, "x",
                                 "paying", ""))  # fmt: skip
    assert not pods.add(Purchase(MID, P, 2 * P, b"s" * 32, NODE.node_id, 1, 1, 25, 40, b"h" * 32,
                                 "x", "paying", ""))  # the same receipt for another period  # fmt: skip
    # records overlapping a bought range (a meter that sent one interval twice) are not paid again
    assert pods.overlapping(MID, 24, 40) == p and pods.overlapping(MID, 0, 11) == p
    assert pods.overlapping(MID, 25, 40) is None and pods.overlapping(MID, 0, 10) is None
    assert pods.overlapping(b"m" * 16, 0, 99) is None
    pods.close()
    pods = PodPurchases(tmp_path / "p.sqlite3")
    assert pods.get(MID, 0) == p
    pods.prune(P + 1)
    assert pods.get(MID, 0) == p  # still being paid: kept
    pods.set_status(MID, 0, "paid")
    pods.prune(P + 1)
    assert pods.get(MID, 0) is None
    pods.close()


def test_claims_are_rate_limited_per_peer():
    limit = RateLimit(rate=1.0, burst=3.0)
    assert [limit.allow(b"a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow(b"b", 0.0)
    assert limit.allow(b"a", 1.0) and not limit.allow(b"a", 1.0)
