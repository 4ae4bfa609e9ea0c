"""The BOLT #11 reader (gateway/ln/codec/bolt11.py `_read`): checked against a plain reference
reader written from the spec, over invoices with arbitrary tagged fields; `payment_terms` (the
payer's lean decode) agrees with `decode` on every string, valid or not; the kept invoices."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey, PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ln.codec import bech32, bolt11
from gateway.ln.errors import InvoiceError, LnError

KEY = bytes.fromhex("33" * 32)
PAYEE = PrivateKey(KEY).public_key.format()
NOW = 1_767_220_000


class Invalid(Exception):
    """The reference reader's verdict: a reader MUST fail this invoice."""


def reference_read(text: str) -> dict:
    """BOLT #11 "Requirements" for readers, field by field with `convertbits` (slow, plain)."""
    hrp, words = bech32.decode(text.strip())
    data, sig_words = words[:-104], words[-104:]
    out: dict = {"timestamp": bech32.words_to_int(data[:7]), "tags": [], "extra": []}
    pos = 7
    while pos < len(data):
        tag = bech32.CHARSET[data[pos]]
        length = data[pos + 1] * 32 + data[pos + 2]
        value = data[pos + 3 : pos + 3 + length]
        pos += 3 + length
        out["tags"].append(tag)
        fixed = {"p": 52, "s": 52, "h": 52, "n": 53}
        if tag in fixed and length != fixed[tag]:
            continue  # "MUST skip over" p, h, s, n fields of another length
        if tag not in "pshndxc9":
            out["extra"].append((tag, tuple(value)))
        elif tag in out:
            continue  # the first one counts
        elif tag in "xc9":
            out[tag] = bech32.words_to_int(value)
        else:
            raw = bytes(bech32.convertbits(value, 5, 8, pad=True))[: len(value) * 5 // 8]
            try:
                out[tag] = raw.decode("utf-8") if tag == "d" else raw
            except UnicodeDecodeError:
                raise Invalid("description is not UTF-8") from None
    if "p" not in out or ("d" in out) == ("h" in out):
        raise Invalid("no payment hash, or not exactly one of d and h")
    message = hrp.encode() + bytes(bech32.convertbits(data, 5, 8, pad=True))
    sig = bytes(bech32.convertbits(sig_words, 5, 8, pad=False))
    recovered = PublicKey.from_signature_and_message(sig, message).format()
    if out.get("n", recovered) != recovered:
        raise Invalid("the n field is not the signer")
    out["payee"] = recovered
    return out


def _field(tag: str, words: list[int]) -> bolt11.TaggedField:
    return bolt11.TaggedField(tag, tuple(words))


def _bytes_field(tag: str, data: bytes) -> bolt11.TaggedField:
    return _field(tag, bech32.bytes_to_words(data))


tags = st.sampled_from(list(bech32.CHARSET))
random_fields = st.lists(
    st.builds(_field, tags, st.lists(st.integers(0, 31), max_size=70)), max_size=4
)


@st.composite
def invoice_texts(draw: st.DrawFn) -> str:
    """A signed invoice: the required fields, optional ones, duplicates of known tags (the
    first one counts), fields of a wrong length (skipped) and arbitrary unknown ones."""
    fields = [_bytes_field("p", draw(st.binary(min_size=32, max_size=32)))]
    if draw(st.booleans()):
        fields.append(_bytes_field("d", draw(st.text(max_size=80)).encode()))
    else:
        fields.append(_bytes_field("h", draw(st.binary(min_size=32, max_size=32))))
    fields.append(_bytes_field("s", draw(st.binary(min_size=32, max_size=32))))
    for tag in draw(st.lists(st.sampled_from("xc"), max_size=3)):
        fields.append(_field(tag, bech32.int_to_words(draw(st.integers(0, 2**40)))))
    if draw(st.booleans()):
        fields.append(_bytes_field("n", PAYEE))
    if draw(st.booleans()):
        fields.append(_field("9", bech32.int_to_words((1 << 14) | (1 << 8))))
    for tag in draw(st.lists(st.sampled_from("pshn"), max_size=2)):  # wrong lengths
        fields.append(_field(tag, draw(st.lists(st.integers(0, 31), max_size=60))))
    fields += [f for f in draw(random_fields) if f.tag not in "pshnd9xc"]
    fields = draw(st.permutations(fields))
    amount = draw(st.none() | st.integers(1, 10**12))
    hrp = "lnbcrt" + ("" if amount is None else bolt11.amount_to_hrp(amount))
    return bolt11.encode_fields(hrp, draw(st.integers(0, 2**35 - 1)), fields, KEY)


@settings(max_examples=150, deadline=None)
@given(text=invoice_texts())
def test_reader_agrees_with_the_reference_reader(text: str) -> None:
    try:
        ref = reference_read(text)
    except Invalid:
        with pytest.raises(InvoiceError):
            bolt11.decode(text)
        return
    inv = bolt11.decode(text)
    assert inv.timestamp == ref["timestamp"]
    assert [f.tag for f in inv.fields] == ref["tags"]
    assert [(f.tag, f.words) for f in inv.extra_fields] == ref["extra"]
    assert inv.payment_hash == ref["p"]
    assert inv.payment_secret == ref.get("s")
    assert inv.description == ref.get("d") and inv.description_hash == ref.get("h")
    assert inv.expiry == ref.get("x") and inv.min_final_cltv_expiry == ref.get("c")
    assert inv.features == ref.get("9")
    assert inv.payee == ref["payee"] == PAYEE
    assert bolt11.encode_fields(inv.hrp, inv.timestamp, inv.fields, KEY) == text


def _terms_of(inv: bolt11.Invoice) -> bolt11.PaymentTerms:
    assert inv.payee is not None
    return bolt11.PaymentTerms(
        inv.payee,
        inv.payment_hash,
        inv.amount_msat,
        inv.min_final_cltv,
        inv.payment_secret,
        inv.expires_at,
    )


def _outcome(fn, text: str) -> object:  # noqa: ANN001 - decode or payment_terms
    try:
        return fn(text)
    except LnError as exc:
        return type(exc), str(exc)


@settings(max_examples=150, deadline=None)
@given(text=invoice_texts(), data=st.data())
def test_payment_terms_agree_with_decode_on_good_and_corrupted_strings(
    text: str, data: st.DataObject
) -> None:
    if data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(text) - 1))
        text = text[:i] + data.draw(st.sampled_from(bech32.CHARSET + "1!B")) + text[i + 1 :]
    bolt11._kept.clear()  # the lean reader itself, not a kept invoice
    lean = _outcome(bolt11.payment_terms, text)
    full = _outcome(bolt11.decode, text)
    assert lean == (_terms_of(full) if isinstance(full, bolt11.Invoice) else full)
    assert _outcome(bolt11.payment_terms, text) == lean  # and through the kept invoice


def test_payment_terms_of_the_spec_examples() -> None:
    from hil_tests.gateway.ln.test_bolt11_vectors import VECTORS

    for case in VECTORS["valid"]:
        bolt11._kept.clear()
        terms = bolt11.payment_terms(case["invoice"])
        assert terms == _terms_of(bolt11.decode(case["invoice"]))
        assert terms.payment_hash.hex() == case["payment_hash"]
    for case in VECTORS["invalid"]:
        with pytest.raises(InvoiceError, match=case["error"]):
            bolt11.payment_terms(case["invoice"])


def test_kept_invoices_are_bounded_and_keyed_by_the_whole_string() -> None:
    bolt11._kept.clear()
    fields = [_bytes_field("p", bytes(32)), _bytes_field("d", b"x"), _bytes_field("n", PAYEE)]
    texts = [bolt11.encode_fields("lnbcrt10n", NOW + i, fields, KEY) for i in range(3)]
    first = bolt11.decode(texts[0])
    assert bolt11.decode(texts[0]) is first and bolt11._kept.get(texts[0]) is first
    # another string (another signature over other fields) is read and verified on its own
    other = texts[0][:-7] + ("q" if texts[0][-7] != "q" else "p") + texts[0][-6:]
    with pytest.raises(InvoiceError):
        bolt11.payment_terms(other)
    assert bolt11._kept.get(other) is None
    kept = bolt11._Kept(2)
    for t in texts:
        kept.put(t, bolt11._read(t, keep_fields=True))  # type: ignore[arg-type]
    assert kept.get(texts[0]) is None and kept.get(texts[2]) is not None
