"""The credit token codec (firmware/lib/sgcore/token.py), shared by the gateway's issuer and the
meter: round trips, every format rule, and garbage that is refused or decodes to exactly itself."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgcore import token as tk

METER = bytes(range(16))
KEY_ID = b"k" * 8
NEW_KEY = b"\x02" + b"\x11" * 32


def _energy(**kw) -> tk.Token:
    return tk.Token(tk.KIND_ENERGY, METER, kw.pop("token_id", 1), 1_800_000_000, KEY_ID, **kw)


def _full(t: tk.Token) -> bytes:
    return tk.encode_body(t) + b"\x5a" * (tk.TOKEN_LEN - tk.BODY_LEN)


GOOD = _full(_energy(amount_wh=250))


@given(st.integers(1, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1))
def test_energy_tokens_round_trip(wh, token_id, expiry):
    t = tk.Token(tk.KIND_ENERGY, METER, token_id, expiry, KEY_ID, amount_wh=wh)
    body = tk.encode_body(t)
    back, body2, sig = tk.decode(body + b"\x00" * 64)
    assert (back.kind, back.meter_id, back.amount_wh, back.token_id, back.expiry) == (
        tk.KIND_ENERGY,
        METER,
        wh,
        token_id,
        expiry,
    )
    assert body2 == body and sig == b"\x00" * 64 and len(body) == tk.BODY_LEN


def test_window_and_key_change_tokens_round_trip():
    window = tk.Token(tk.KIND_WINDOW, METER, 2, 10, KEY_ID, window_start=5, window_end=9,
                      power_cap_w=3000)  # fmt: skip
    change = tk.Token(tk.KIND_KEY_CHANGE, METER, 3, 10, KEY_ID, new_issuer_key=NEW_KEY)
    w, _, _ = tk.decode(_full(window))
    c, _, _ = tk.decode(_full(change))
    assert (w.window_start, w.window_end, w.power_cap_w) == (5, 9, 3000)
    assert c.new_issuer_key == NEW_KEY


def _with(offset: int, value: bytes) -> bytes:
    return GOOD[:offset] + value + GOOD[offset + len(value) :]


@pytest.mark.parametrize(
    "data, why",
    [
        (GOOD[:-1], "one byte short"),
        (GOOD + b"\x00", "one byte long"),
        (b"", "empty"),
        (_with(0, b"\x02"), "unknown version"),
        (_with(1, b"\x00"), "kind 0"),
        (_with(1, b"\x04"), "kind 4"),
        (_with(26, b"\x00\x00\x00\x00"), "energy token without energy"),
        (_full(_energy(amount_wh=1))[:1] + b"\x02" + _full(_energy(amount_wh=1))[2:],
         "window token whose window ends at its start"),
        (_with(1, b"\x03"), "key change without a compressed key"),
    ],
)  # fmt: skip
def test_malformed_tokens_are_refused(data, why):
    with pytest.raises(tk.TokenFormatError):
        tk.decode(data)


def test_non_bytes_and_out_of_range_fields_are_refused():
    with pytest.raises(tk.TokenFormatError):
        tk.decode("not bytes" * 20)
    with pytest.raises(tk.TokenFormatError):
        tk.encode_body(_energy(amount_wh=2**32))
    with pytest.raises(tk.TokenFormatError):
        tk.encode_body(tk.Token(tk.KIND_ENERGY, METER[:15], 1, 1, KEY_ID, amount_wh=1))


def _flips():
    return st.tuples(st.integers(0, tk.TOKEN_LEN - 1), st.integers(1, 255)).map(
        lambda t: GOOD[: t[0]] + bytes([GOOD[t[0]] ^ t[1]]) + GOOD[t[0] + 1 :]
    )


@given(st.one_of(st.binary(max_size=300), st.binary(min_size=151, max_size=151), _flips()))
def test_garbage_is_refused_or_decodes_to_exactly_itself(data):
    """A decoder that accepted everything, or that read a token other than the bytes given,
    fails here: whatever is accepted re-encodes to the very bytes that were decoded."""
    try:
        t, body, sig = tk.decode(data)
    except tk.TokenFormatError:
        return
    assert len(data) == tk.TOKEN_LEN
    assert tk.encode_body(t) == body == data[: tk.BODY_LEN] and sig == data[tk.BODY_LEN :]
    assert data[0] == tk.VERSION and t.kind in (tk.KIND_ENERGY, tk.KIND_WINDOW, tk.KIND_KEY_CHANGE)


def test_digest_and_key_id_are_sha256():
    body = tk.encode_body(_energy(amount_wh=7))
    assert tk.digest(body) == hashlib.sha256(body).digest()
    assert tk.key_id(NEW_KEY) == hashlib.sha256(NEW_KEY).digest()[:8]
    assert struct.calcsize(tk._FORMAT) == tk.BODY_LEN
