"""The gateway's credit token issuer (gateway/credit/issuer.py): one token per payment, ids that
grow, every token persisted before it is handed out. The meter's side: hil_tests/firmware/
test_credit_tokens.py; the codec: hil_tests/sgcore/test_token.py."""

from __future__ import annotations

import coincurve
import pytest

from gateway.credit.issuer import IssuerError, TokenIssuer
from gateway.crypto import SiteKey
from sgcore import token as tk

METER = bytes(range(16))
NOW = 1_800_000_000


@pytest.fixture
def issuer(tmp_path):
    key = SiteKey(coincurve.PrivateKey(b"\x11" * 32))
    i = TokenIssuer(key, tmp_path / "tokens.sqlite")
    yield i
    i.close()


def test_issuer_is_idempotent_per_payment_and_ids_grow(issuer):
    a = issuer.energy(METER, 10, NOW, b"p1")
    assert issuer.energy(METER, 10, NOW, b"p1") == a
    b = issuer.energy(METER, 20, NOW, b"p2")
    assert tk.decode(b)[0].token_id == tk.decode(a)[0].token_id + 1
    assert issuer.issued(METER) == [(1, 1, 10), (2, 1, 20)]
    with pytest.raises(IssuerError):  # one payment cannot buy two different tokens
        issuer.energy(METER, 999, NOW, b"p1")


def test_issued_tokens_survive_a_restart_and_ids_continue(tmp_path):
    key = SiteKey(coincurve.PrivateKey(b"\x11" * 32))
    first = TokenIssuer(key, tmp_path / "tokens.sqlite")
    a = first.energy(METER, 10, NOW, b"p1")
    first.close()
    again = TokenIssuer(key, tmp_path / "tokens.sqlite")
    try:
        assert again.energy(METER, 10, NOW, b"p1") == a  # the same bytes, not a second token
        b = again.energy(METER, 5, NOW, b"p2")
        assert tk.decode(b)[0].token_id == tk.decode(a)[0].token_id + 1
    finally:
        again.close()


def test_tokens_are_signed_by_the_issuer_key(issuer):
    tok, body, sig = tk.decode(issuer.energy(METER, 42, NOW, b"p3"))
    assert tok.amount_wh == 42 and tok.meter_id == METER
    assert tok.issuer_key_id == tk.key_id(issuer._key.pubkey)
    pub = coincurve.PublicKey(issuer._key.pubkey)
    assert pub.verify(coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig)),
                      tk.digest(body), hasher=None)  # fmt: skip
    with pytest.raises(IssuerError):
        issuer.energy(METER, 43, NOW, b"p3")
