"""BOLT #11 specification examples (vectors/bolt11.json): decode, check, re-encode exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from coincurve import PrivateKey

from gateway.ln.codec import bolt11
from gateway.ln.errors import InvoiceError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "bolt11.json").read_text())
KEY = bytes.fromhex(VECTORS["priv_key"])
PAYEE = bytes.fromhex(VECTORS["payee"])


def test_spec_key_is_the_spec_payee() -> None:
    assert PrivateKey(KEY).public_key.format() == PAYEE


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_spec_example_decodes_to_its_fields(case: dict) -> None:
    inv = bolt11.decode(case["invoice"])
    assert inv.currency == case["currency"]
    assert inv.amount_msat == case["amount_msat"]
    assert inv.timestamp == case["timestamp"]
    assert inv.payment_hash.hex() == case["payment_hash"]
    assert inv.payment_secret is not None and inv.payment_secret.hex() == case["payment_secret"]
    assert inv.payee == PAYEE
    assert inv.expiry_s == case.get("expiry", 3600)
    assert inv.min_final_cltv == case.get("min_final_cltv_expiry", 18)
    assert inv.features == sum(1 << b for b in case["features"])
    assert sorted({f.tag for f in inv.extra_fields}) == sorted(case["extra_tags"])
    if "description" in case:
        assert inv.description == case["description"]
        assert inv.description_hash is None
    else:
        digest = hashlib.sha256(case["hashed_description"].encode()).digest()
        assert inv.description is None and inv.description_hash == digest
        assert bolt11.decode(case["invoice"], description=case["hashed_description"]) == inv


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_spec_example_re_encodes_byte_for_byte(case: dict) -> None:
    inv = bolt11.decode(case["invoice"])
    assert bolt11.encode_fields(inv.hrp, inv.timestamp, inv.fields, KEY) == case["invoice"].lower()


@pytest.mark.parametrize(
    "case",
    [c for c in VECTORS["valid"] if not c["extra_tags"]],
    ids=lambda c: c["name"],
)
def test_spec_example_rebuilt_from_its_meaning(case: dict) -> None:
    decoded = bolt11.decode(case["invoice"])
    order = "".join(f.tag for f in decoded.fields)
    rebuilt = bolt11.Invoice(
        currency=case["currency"],
        timestamp=case["timestamp"],
        payment_hash=bytes.fromhex(case["payment_hash"]),
        amount_msat=case["amount_msat"],
        payment_secret=bytes.fromhex(case["payment_secret"]),
        description=case.get("description"),
        description_hash=(
            hashlib.sha256(case["hashed_description"].encode()).digest()
            if "hashed_description" in case
            else None
        ),
        expiry=case.get("expiry"),
        min_final_cltv_expiry=case.get("min_final_cltv_expiry"),
        features=sum(1 << b for b in case["features"]),
    )
    text = bolt11.encode(rebuilt, KEY, order=order, include_payee=False)
    assert text == case["invoice"].lower()


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_spec_invalid_example_raises_typed_error(case: dict) -> None:
    with pytest.raises(InvoiceError, match=case["error"]):
        bolt11.decode(case["invoice"])


def test_wrong_hashed_description_is_rejected() -> None:
    case = next(c for c in VECTORS["valid"] if "hashed_description" in c)
    with pytest.raises(InvoiceError, match="description hash"):
        bolt11.decode(case["invoice"], description="one slice of watermelon")
