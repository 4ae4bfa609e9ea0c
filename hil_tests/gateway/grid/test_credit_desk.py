"""Payment -> token bookkeeping on real SQLite: idempotent, one token per payment, in order."""

from __future__ import annotations

import pytest

from gateway.credit.issuer import TokenIssuer
from gateway.crypto import SiteKey
from gateway.grid.credit_book import CreditBook, credit_wh
from gateway.grid.credit_desk import CreditDesk
from gateway.ln.codec.receipt import EnergyMemo
from sgcore import token as tk

METER = bytes(range(16))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def desk(tmp_path):
    key = SiteKey.load_or_create(tmp_path / "site.key")
    clock = Clock()
    db = tmp_path / "tokens.sqlite3"
    d = CreditDesk(CreditBook(db), TokenIssuer(key, db), 3600, 5.0, wall=lambda: 1.7e9, mono=clock)
    d.clock = clock  # type: ignore[attr-defined]
    yield d
    d.book.close()
    d.issuer.close()


def _memo(kwh: float) -> EnergyMemo:
    return EnergyMemo("pv", 1_700_000_900, 1_700_001_800, kwh=kwh)


def test_energy_is_rounded_down_to_whole_wh():
    assert credit_wh(_memo(1.5)) == 1500
    assert credit_wh(_memo(0.0209)) == 20
    profile = EnergyMemo("pv", 0, 1800, kw=(1.0, 0.5), step_s=900)
    assert credit_wh(profile) == 375


def test_a_settled_payment_makes_one_token_whatever_happens_twice(desk):
    h = b"\x01" * 32
    desk.purchase(h, METER, _memo(0.02), 20_000)
    desk.purchase(h, METER, _memo(0.02), 20_000)  # a retry of the same payment
    row = desk.settle(h, "succeeded")
    assert row is not None and row.status == "issued" and row.wh == 20
    assert desk.settle(h, "succeeded") is None
    assert desk.reconcile(lambda _: ("succeeded", "")) == 0
    token, _, _ = tk.decode(row.token)
    assert token.amount_wh == 20 and token.meter_id == METER and token.expiry == int(1.7e9) + 3600
    assert len(desk.issuer.issued(METER)) == 1


def test_outcomes_found_at_start_up(desk):
    paid, failed, never = b"\x02" * 32, b"\x03" * 32, b"\x04" * 32
    for h in (paid, failed, never):
        desk.purchase(h, METER, _memo(0.01), 10_000)
    outcomes = {paid: ("succeeded", ""), failed: ("failed", "no route")}
    assert desk.reconcile(outcomes.get, startup=True) == 1
    status = {r.payment_hash: r.status for r in desk.book.all()}
    assert status == {paid: "issued", failed: "failed", never: "failed"}


def test_one_token_in_flight_per_meter_resent_until_answered(desk):
    a, b = b"\x05" * 32, b"\x06" * 32
    for h in (a, b):
        desk.purchase(h, METER, _memo(0.01), 10_000)
        desk.settle(h, "succeeded")
    first = desk.due()
    assert len(first) == 1 and tk.decode(first[0][1])[0].token_id == 1
    assert desk.due() == []  # not yet time to resend
    desk.clock.t += 5  # type: ignore[attr-defined]
    assert desk.due() == first
    assert desk.due(now_for=METER) == first  # the meter came online: at once
    assert not desk.on_event(METER, {"event": "token", "result": "clock_unset", "id": 1})
    assert not desk.on_event(METER, {"event": "relay", "closed": True})
    assert desk.on_event(METER, {"event": "token", "result": "replay", "id": 1})  # lost 'accepted'
    second = desk.due()
    assert tk.decode(second[0][1])[0].token_id == 2
    assert desk.on_event(METER, {"event": "token", "result": "expired", "id": 2})
    assert {r.payment_hash: r.status for r in desk.book.all()} == {a: "accepted", b: "rejected"}
    assert desk.due() == []


def test_payments_settled_while_the_meter_verifies_go_in_one_token(desk, tmp_path):
    """The sim's bug: a meter that answers a token slower than receipts are paid fell further
    behind all day (one token per receipt); now what was paid meanwhile is one token."""
    hashes = [bytes([0x10 + i]) * 32 for i in range(5)]
    for i, h in enumerate(hashes):
        desk.purchase(h, METER, _memo(0.087), 26_100)
        row = desk.settle(h, "succeeded")
        assert (row is not None) == (i == 0)  # token 1 for the first; the rest wait for it
    assert {r.status for r in desk.book.all() if r.payment_hash != hashes[0]} == {"paid"}
    assert desk.reconcile(lambda _: None) == 0  # still waiting for the meter
    ((meter, first),) = desk.due()
    assert tk.decode(first)[0].amount_wh == 87
    assert desk.on_event(METER, {"event": "token", "result": "accepted", "id": 1})
    ((meter, second),) = desk.due()
    token = tk.decode(second)[0]
    assert (token.token_id, token.amount_wh) == (2, 4 * 87)
    assert [r.token_id for r in desk.book.for_token(METER, 2)] == [2, 2, 2, 2]
    # after a restart the same payments are credited by the same bytes, never a second token
    again = CreditDesk(CreditBook(tmp_path / "tokens.sqlite3"), desk.issuer, 3600, 5.0,
                       wall=lambda: 1.7e9)  # fmt: skip
    assert again.reconcile(lambda _: ("succeeded", ""), startup=True) == 0
    assert again.due() == [(METER, second)]
    assert again.on_event(METER, {"event": "token", "result": "accepted", "id": 2})
    assert {r.status for r in again.book.all()} == {"accepted"}
    assert sum(r.wh for r in again.book.all()) == sum(t[2] for t in desk.issuer.issued(METER))
    again.book.close()
