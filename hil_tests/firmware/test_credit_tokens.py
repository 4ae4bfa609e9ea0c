"""Credit tokens end to end through the real codec and crypto: issued by the gateway (coincurve),
checked by the meter's credit store inside real MicroPython."""

from __future__ import annotations

import json
from pathlib import Path

import coincurve
import pytest

from boards.emulated.host.wasm import run_snippet
from gateway.credit.issuer import TokenIssuer
from gateway.crypto import SiteKey
from hil_tests import REPO_ROOT

METER = bytes(range(16))
NOW = 1_800_000_000


@pytest.fixture
def issuer(tmp_path):
    key = SiteKey(coincurve.PrivateKey(b"\x11" * 32))
    i = TokenIssuer(key, tmp_path / "tokens.sqlite")
    yield i
    i.close()


def _meter_checks(tokens: list[bytes], issuer_pub: bytes, flash: Path, now: int = NOW) -> list[str]:
    """Offer tokens one by one to the firmware's CreditStore; return what it said, and its credit."""
    code = f"""
import sys, gc, binascii
sys.path.insert(0, '/lib')
from credit import CreditStore
from token_desk import TokenDesk
store = CreditStore({METER!r}, binascii.unhexlify({issuer_pub.hex()!r}), path='/flash/credit.json')
store.track(0, False)
desk = TokenDesk(store)
out = []
for hexed in {[t.hex() for t in tokens]!r}:
    answers = desk.offer(binascii.unhexlify(hexed), {now})
    while not answers:
        done = desk.step({now})
        if done:
            answers = [done]
        gc.collect()
    out.append(answers[0][0])
print(','.join(out), store.credit_wh(), store.last_token_id)
"""
    res = run_snippet(
        code, rom_dirs={"/lib": REPO_ROOT / "build" / "emulated" / "lib"}, flash_dir=flash
    )
    assert res.exit_code == 0, res.stderr
    reasons, credit, last = res.stdout.splitlines()[-1].split()
    return reasons.split(",") + [credit, last]


@pytest.fixture(autouse=True, scope="module")
def _image():
    from tools.build import build

    build("emulated")


def test_valid_token_adds_credit_and_every_forgery_is_refused(issuer, tmp_path):
    good = issuer.energy(METER, 500, NOW + 3600, b"pay-1")
    other_meter = issuer.energy(bytes(16), 500, NOW + 3600, b"pay-2")
    expired = issuer.energy(METER, 500, NOW - 1, b"pay-3")
    forged = bytearray(issuer.energy(METER, 400, NOW + 3600, b"pay-4"))
    forged[26:30] = (99999).to_bytes(4, "big")  # more energy than was paid for
    mallory = TokenIssuer(SiteKey(coincurve.PrivateKey(b"\x22" * 32)), tmp_path / "m.sqlite")
    unknown = mallory.energy(METER, 500, NOW + 3600, b"pay-5")
    got = _meter_checks([good, good, other_meter, expired, bytes(forged), unknown, b"\x01" * 40],
                        issuer._key.pubkey, tmp_path)  # fmt: skip
    assert got[:7] == [
        "accepted",
        "replay",
        "wrong_meter",
        "expired",
        "bad_signature",
        "unknown_issuer",
        "malformed",
    ]
    assert got[7:] == ["500", "1"]  # only the good token counted, once


def test_credit_survives_a_reboot_and_replays_stay_refused(issuer, tmp_path):
    t1 = issuer.energy(METER, 100, NOW + 60, b"a")
    t2 = issuer.energy(METER, 200, NOW + 60, b"b")
    assert _meter_checks([t1], issuer._key.pubkey, tmp_path) == ["accepted", "100", "1"]
    assert _meter_checks([t1, t2], issuer._key.pubkey, tmp_path) == [
        "replay",
        "accepted",
        "300",
        "2",
    ]
    assert json.loads((tmp_path / "credit.json").read_text())["credited_wh"] == 300


def test_key_change_signed_by_the_current_issuer_rotates_the_key(issuer, tmp_path):
    new = SiteKey(coincurve.PrivateKey(b"\x33" * 32))
    change = issuer.key_change(METER, new.pubkey, NOW + 60, b"rotate-1")
    issuer2 = TokenIssuer(new, tmp_path / "new.sqlite")
    after = issuer2.energy(METER, 50, NOW + 60, b"x")  # token id 1 from the new issuer's db...
    old_after = issuer.energy(METER, 70, NOW + 60, b"y")
    got = _meter_checks([change, old_after], issuer._key.pubkey, tmp_path)
    assert got == ["accepted", "unknown_issuer", "0", "1"]  # the old key no longer counts
    assert after[18:26] == (1).to_bytes(8, "big")  # ...so ids must be carried over on rotation


def test_a_damaged_credit_state_refuses_tokens_instead_of_reopening_replays(issuer, tmp_path):
    t1 = issuer.energy(METER, 100, NOW + 60, b"d1")
    assert _meter_checks([t1], issuer._key.pubkey, tmp_path) == ["accepted", "100", "1"]
    (tmp_path / "credit.json").write_text('{"credited_wh": 100, "last_tok')  # torn by a bad flash
    assert _meter_checks([t1], issuer._key.pubkey, tmp_path) == ["state_damaged", "0", "0"]


def test_energy_drawn_in_a_paid_window_is_not_charged_to_energy_credit(issuer, tmp_path):
    window = issuer.window(METER, NOW, NOW + 600, 2000, NOW + 60, b"w1")
    energy = issuer.energy(METER, 100, NOW + 60, b"e1")
    assert _meter_checks([window, energy], issuer._key.pubkey, tmp_path) == [
        "accepted",
        "accepted",
        "100",
        "2",
    ]
    code = f"""
import sys, binascii
sys.path.insert(0, '/lib')
from credit import CreditStore
def store():
    return CreditStore({METER!r}, binascii.unhexlify({issuer._key.pubkey.hex()!r}), path='/flash/credit.json')
s = store()
s.track(0, False)
s.track_window({NOW + 10})           # the window begins: import register 0
s.track(40, True)
mid = s.credit_wh()                  # 40 Wh drawn inside the window
d = s.debited_wh                     # committed ahead: 40 + the reserve
s = store()                          # a power cut inside the window: the reserve counts as used
s.track(40, True)                    # (the register came back from its checkpoint at 40)
s.track(40 + 60 - d, True)           # after the end: 60 Wh counted in the window in all
s.track_window({NOW + 700})
after = s.credit_wh()
s.track(40 + 90 - d, True)
print(mid, after, s.credit_wh())     # and 30 Wh more after the window come off the credit
"""
    res = run_snippet(
        code, rom_dirs={"/lib": REPO_ROOT / "build" / "emulated" / "lib"}, flash_dir=tmp_path
    )
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == ["60", "100", "70"]
