"""Invoices and energy receipts we issue: property round-trips and typed errors."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ln.codec import bolt11, receipt
from gateway.ln.errors import InvoiceError, InvoiceSignatureError, LnError, ReceiptError

NODE_KEY = bytes.fromhex("11" * 32)
NODE_ID = PrivateKey(NODE_KEY).public_key.format()
NOW = 1_767_220_000

invoices = st.builds(
    bolt11.Invoice,
    currency=st.sampled_from(bolt11.CURRENCIES),
    timestamp=st.integers(0, 2**35 - 1),
    payment_hash=st.binary(min_size=32, max_size=32),
    amount_msat=st.none() | st.integers(1, 21_000_000 * 10**11),
    payment_secret=st.binary(min_size=32, max_size=32),
    description=st.text(max_size=200).filter(lambda d: len(d.encode()) <= 639),
    expiry=st.none() | st.integers(0, 2**40),
    min_final_cltv_expiry=st.none() | st.integers(0, 2**20),
    features=st.none()
    | st.sets(st.sampled_from(sorted(bolt11.KNOWN_FEATURE_BITS))).map(
        lambda bits: sum(1 << b for b in bits)
    ),
)


@settings(max_examples=60, deadline=None)
@given(inv=invoices, include_payee=st.booleans())
def test_invoice_round_trip(inv: bolt11.Invoice, include_payee: bool) -> None:
    text = bolt11.encode(inv, NODE_KEY, include_payee=include_payee)
    out = bolt11.decode(text)
    assert out.payee == NODE_ID
    for name in (
        "currency",
        "timestamp",
        "payment_hash",
        "amount_msat",
        "payment_secret",
        "description",
        "expiry",
        "min_final_cltv_expiry",
    ):
        assert getattr(out, name) == getattr(inv, name), name
    assert (out.features or 0) == (inv.features or 0)
    assert bolt11.decode(text.upper()) == out


@settings(max_examples=100, deadline=None)
@given(msat=st.integers(1, 10**20))
def test_amount_hrp_round_trip_uses_the_shortest_form(msat: int) -> None:
    text = bolt11.amount_to_hrp(msat)
    assert bolt11.hrp_to_amount(text) == msat
    if text[-1] in "munp":  # a multiple of 1000 units would have used the next larger unit
        assert not text[:-1].endswith("000")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_invoice_raises_typed_error_or_changes_payee(data: st.DataObject) -> None:
    inv = bolt11.Invoice(
        currency="bcrt",
        timestamp=NOW,
        payment_hash=bytes(32),
        amount_msat=1000,
        payment_secret=bytes(32),
        description="x",
    )
    text = bolt11.encode(inv, NODE_KEY)
    i = data.draw(st.integers(0, len(text) - 1))
    c = data.draw(st.sampled_from("qpzry9x8gf2tvdw0s3jn54khce6mua7l1X!"))
    mutated = text[:i] + c + text[i + 1 :]
    try:
        out = bolt11.decode(mutated)
    except LnError:
        return
    assert mutated == text or out == bolt11.decode(text)


def test_n_field_must_match_the_signature() -> None:
    inv = bolt11.Invoice(
        currency="bcrt",
        timestamp=NOW,
        payment_hash=bytes(32),
        payment_secret=bytes(32),
        description="x",
    )
    good = bolt11.decode(bolt11.encode(inv, NODE_KEY))
    other = PrivateKey(bytes.fromhex("22" * 32)).public_key.format()
    fields = [
        bolt11.TaggedField("n", tuple(bolt11.bech32.bytes_to_words(other))) if f.tag == "n" else f
        for f in good.fields
    ]
    forged = bolt11.encode_fields(good.hrp, good.timestamp, fields, NODE_KEY)
    with pytest.raises(InvoiceSignatureError):
        bolt11.decode(forged)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"payment_hash": b"short"}, "payment_hash"),
        ({"description": None}, "exactly one"),
        ({"description_hash": bytes(32)}, "exactly one"),
        ({"description": "é" * 320}, "639"),
        ({"amount_msat": 0}, "positive"),
        ({"currency": "xx"}, "currency"),
        ({"timestamp": 2**35}, "35 bits"),
        ({"expiry": -1}, "negative"),
    ],
)
def test_invalid_invoice_is_refused_at_encode(changes: dict, message: str) -> None:
    base = dict(currency="bcrt", timestamp=NOW, payment_hash=bytes(32), description="x")
    with pytest.raises(InvoiceError, match=message):
        bolt11.encode(bolt11.Invoice(**{**base, **changes}), NODE_KEY)


# --- energy receipts --------------------------------------------------------------------------

starts = st.integers(NOW + 1, NOW + 10**6)
memos = st.one_of(
    st.tuples(st.text(min_size=1, max_size=64), starts, st.floats(0, 1e6, allow_nan=False)).map(
        lambda t: receipt.EnergyMemo(t[0], t[1], t[1] + 3600, kwh=t[2])
    ),
    st.tuples(
        starts,
        st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=200),
        st.sampled_from([60, 300, 900, 3600]),
    ).map(
        lambda t: receipt.EnergyMemo(
            "pv-07", t[0], t[0] + t[2] * len(t[1]), kw=tuple(t[1]), step_s=t[2]
        )
    ),
)


@settings(max_examples=40, deadline=None)
@given(memo=memos, amount=st.integers(1, 10**12))
def test_receipt_round_trip_inline_or_hashed(memo: receipt.EnergyMemo, amount: int) -> None:
    phash = hashlib.sha256(b"preimage").digest()
    r = receipt.create_receipt(memo, amount, phash, NODE_KEY, now=NOW)
    inline = len(r.memo_json.encode()) <= receipt.INLINE_MEMO_MAX
    if inline:
        inv, back = receipt.read_receipt(r.invoice)
        assert inv.description == r.memo_json
    else:
        with pytest.raises(ReceiptError):
            receipt.read_receipt(r.invoice)
        inv, back = receipt.read_receipt(r.invoice, r.memo_json)
        assert inv.description_hash == hashlib.sha256(r.memo_json.encode()).digest()
    assert back == memo
    assert inv.amount_msat == amount and inv.payee == NODE_ID and inv.currency == "bcrt"
    assert inv.expires_at == memo.start
    assert inv.payment_secret is not None


def test_receipt_memo_is_compact_sorted_json() -> None:
    memo = receipt.EnergyMemo(node="pv-07", start=1767225600, end=1767229200, kwh=1.5)
    assert memo.to_json() == '{"end":1767229200,"kwh":1.5,"node":"pv-07","start":1767225600,"v":1}'
    r = receipt.create_receipt(memo, 150_000, bytes(32), NODE_KEY, now=NOW)
    assert r.invoice.startswith("lnbcrt1500n1")


def test_receipt_for_a_started_window_needs_an_explicit_expiry() -> None:
    memo = receipt.EnergyMemo(node="pv-07", start=NOW - 10, end=NOW + 3590, kwh=1.0)
    with pytest.raises(ReceiptError, match="already started"):
        receipt.create_receipt(memo, 1000, bytes(32), NODE_KEY, now=NOW)
    r = receipt.create_receipt(memo, 1000, bytes(32), NODE_KEY, now=NOW, expiry_s=600)
    assert bolt11.decode(r.invoice).expiry == 600


def test_hashed_receipt_refuses_a_different_memo() -> None:
    memo = receipt.EnergyMemo(
        "pod-" + "x" * 60, NOW + 60, NOW + 60 + 900 * 96, kw=(123.456,) * 96, step_s=900
    )
    r = receipt.create_receipt(memo, 1000, bytes(32), NODE_KEY, now=NOW)
    assert bolt11.decode(r.invoice).description_hash is not None
    other = receipt.EnergyMemo(memo.node, memo.start, memo.end, kw=(1.0,) * 96, step_s=900)
    with pytest.raises(InvoiceError, match="description hash"):
        receipt.read_receipt(r.invoice, other.to_json())


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"v":2,"node":"a","start":1,"end":2,"kwh":1}',
        '{"v":1,"node":"a","start":1,"end":2}',
        '{"v":1,"node":"a","start":1,"end":2,"kwh":1,"kw":[1],"step_s":1}',
        '{"v":1,"node":"a","start":2,"end":1,"kwh":1}',
        '{"v":1,"node":"a","start":1,"end":2,"kwh":-1}',
        '{"v":1,"node":"a","start":1,"end":2,"kwh":true}',
        '{"v":1,"node":"a","start":0,"end":10,"kw":[1,2],"step_s":3}',
        '{"v":1,"node":"","start":1,"end":2,"kwh":1}',
        '{"v":1,"node":"a","start":1,"end":2,"kwh":1,"extra":0}',
        '{"v":1,"node":"a","start":1.5,"end":2,"kwh":1}',
    ],
)
def test_malformed_memo_raises_receipt_error(text: str) -> None:
    with pytest.raises(ReceiptError):
        receipt.EnergyMemo.from_json(text)


def test_a_high_s_twin_of_a_valid_invoice_is_refused() -> None:
    inv = bolt11.Invoice(
        currency="bcrt",
        timestamp=NOW,
        payment_hash=bytes(32),
        payment_secret=bytes(32),
        description="x",
    )
    text = bolt11.encode(inv, NODE_KEY)
    good = bolt11.decode(text)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    sig = good.signature
    high_s = (
        sig[:32]
        + (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
        + bytes([sig[64] ^ 1])
    )
    words = bolt11.bech32.bytes_to_words(high_s)
    data = bolt11.bech32.decode(text)[1][: -len(words)] + list(words)  # same fields, twin signature
    twin = bolt11.bech32.encode(good.hrp, data)
    with pytest.raises(InvoiceSignatureError, match="low-S"):
        bolt11.decode(twin)


def test_a_decoded_invoice_is_kept_but_its_description_is_checked_on_every_decode() -> None:
    memo = '{"kwh": 1}'
    inv = bolt11.Invoice(
        "bcrt", NOW, b"\x07" * 32, 1000, b"\x08" * 32,
        description_hash=hashlib.sha256(memo.encode()).digest(),
    )  # fmt: skip
    text = bolt11.encode(inv, NODE_KEY)
    first = bolt11.decode(text, description=memo)
    assert bolt11.decode(" " + text + "\n") is first  # verified once, kept
    with pytest.raises(InvoiceError, match="description"):
        bolt11.decode(text, description='{"kwh": 2}')
    tampered = text[:-8] + ("q" if text[-8] != "q" else "p") + text[-7:]
    for _ in range(2):  # a string that fails is not kept: it fails every time
        with pytest.raises(InvoiceError):
            bolt11.decode(tampered)
    with pytest.raises(InvoiceError):
        bolt11.decode(7)  # type: ignore[arg-type]
