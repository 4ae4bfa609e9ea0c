"""Invoices we issue decode with the PyPI `bolt11` package (an independent implementation).

bolt11 2.2.0 does not import with bitstring 5 (ConstBitStream was removed): the project pins
`bitstring<5` in pyproject.toml.
"""

from __future__ import annotations

import hashlib


def _decode_with_pypi_bolt11(invoices: list[str]) -> list[dict]:
    import bolt11  # the PyPI package, not gateway.ln.codec.bolt11

    out = []
    for text in invoices:
        d = bolt11.decode(text)
        out.append(
            {
                "currency": d.currency,
                "amount_msat": int(d.amount_msat) if d.amount_msat else None,
                "date": d.date,
                "payment_hash": d.payment_hash,
                "payment_secret": d.payment_secret,
                "description": d.description,
                "description_hash": d.description_hash,
                "expiry": d.expiry,
                "min_final_cltv_expiry": d.min_final_cltv_expiry,
                "payee": d.payee,
            }
        )
    return out


def _run_pypi_decoder(invoices: list[str]) -> list[dict]:
    return _decode_with_pypi_bolt11(invoices)


def test_our_receipts_decode_with_pypi_bolt11() -> None:
    from gateway.ln.codec import receipt

    key = bytes.fromhex("42" * 32)
    now = 1_767_220_000
    small = receipt.EnergyMemo("house-3", now + 600, now + 4200, kwh=2.25)
    profile = receipt.EnergyMemo(
        "pv-07", now + 600, now + 600 + 96 * 900, kw=(987.654,) * 96, step_s=900
    )
    issued = [
        receipt.create_receipt(small, 275_000, hashlib.sha256(b"a").digest(), key, now=now),
        receipt.create_receipt(profile, 9_999_999, hashlib.sha256(b"b").digest(), key, now=now),
        receipt.create_receipt(
            small,
            1,
            hashlib.sha256(b"c").digest(),
            key,
            now=now,
            expiry_s=60,
            min_final_cltv_expiry=40,
        ),
    ]
    from gateway.ln.codec import bolt11 as ours

    decoded = _run_pypi_decoder([r.invoice for r in issued])
    for r, theirs in zip(issued, decoded, strict=True):
        mine = ours.decode(r.invoice)
        assert theirs["currency"] == "bcrt"
        assert theirs["amount_msat"] == mine.amount_msat
        assert theirs["date"] == mine.timestamp
        assert theirs["payment_hash"] == r.payment_hash.hex()
        assert theirs["payment_secret"] == mine.payment_secret.hex()
        assert theirs["expiry"] == mine.expiry_s
        assert theirs["min_final_cltv_expiry"] == mine.min_final_cltv
        assert theirs["payee"] == mine.payee.hex()
        if mine.description is not None:
            assert theirs["description"] == r.memo_json
        else:
            assert theirs["description_hash"] == hashlib.sha256(r.memo_json.encode()).hexdigest()
    assert decoded[1]["description_hash"] is not None  # the long profile went by hash
