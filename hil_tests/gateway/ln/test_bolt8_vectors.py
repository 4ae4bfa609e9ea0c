"""BOLT #8 Appendix A vectors (vectors/bolt8.json): handshake acts, failures, message encryption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.ln.codec import bolt8
from gateway.ln.errors import HandshakeError, TransportError

V = json.loads((Path(__file__).parent / "vectors" / "bolt8.json").read_text())
INI = V["initiator"]
RES = V["responder"]
MSG = V["messages"]


def _b(h: str) -> bytes:
    return bytes.fromhex(h)


def test_vector_keys_are_consistent() -> None:
    assert bolt8._pub(_b(INI["ls_priv"])) == _b(INI["ls_pub"])
    assert bolt8._pub(_b(INI["e_priv"])) == _b(INI["e_pub"])
    assert bolt8._pub(_b(RES["ls_priv"])) == _b(RES["ls_pub"]) == _b(INI["rs_pub"])
    assert bolt8._pub(_b(RES["e_priv"])) == _b(RES["e_pub"])


@pytest.mark.parametrize("case", INI["cases"], ids=lambda c: c["name"])
def test_initiator_vector(case: dict) -> None:
    ini = bolt8.Initiator(_b(INI["ls_priv"]), _b(INI["rs_pub"]), ephemeral_priv=_b(INI["e_priv"]))
    assert ini.act_one() == _b(INI["act_one"])
    if "error" in case:
        with pytest.raises(HandshakeError) as err:
            ini.act_three(_b(case["act_two"]))
        assert err.value.code == case["error"]
        return
    act_three, session = ini.act_three(_b(case["act_two"]))
    assert act_three == _b(case["act_three"])
    assert session.send.key == _b(case["sk"])
    assert session.recv.key == _b(case["rk"])
    assert session.remote_pub == _b(INI["rs_pub"])


@pytest.mark.parametrize("case", RES["cases"], ids=lambda c: c["name"])
def test_responder_vector(case: dict) -> None:
    res = bolt8.Responder(_b(RES["ls_priv"]), ephemeral_priv=_b(RES["e_priv"]))
    if "act_two" not in case:
        if "error" in case:
            with pytest.raises(HandshakeError) as err:
                res.act_two(_b(case["act_one"]))
            assert err.value.code == case["error"]
        return
    assert res.act_two(_b(case["act_one"])) == _b(case["act_two"])
    if "error" in case:
        with pytest.raises(HandshakeError) as err:
            res.finish(_b(case["act_three"]))
        assert err.value.code == case["error"]
        return
    session = res.finish(_b(case["act_three"]))
    assert session.remote_pub == _b(case["rs_pub"])
    assert session.recv.key == _b(case["rk"])
    assert session.send.key == _b(case["sk"])


def test_message_encryption_with_key_rotation() -> None:
    ck = _b(MSG["ck"])
    sender = bolt8.Session(
        bolt8.CipherState(_b(MSG["sk"]), ck), bolt8.CipherState(_b(MSG["rk"]), ck), b""
    )
    receiver = bolt8.Session(
        bolt8.CipherState(_b(MSG["rk"]), ck), bolt8.CipherState(_b(MSG["sk"]), ck), b""
    )
    expected = {int(k): _b(v) for k, v in MSG["outputs"].items()}
    for i in range(1002):
        if i == 499:  # messages 0..499 use nonces 0..999 of the first key
            assert sender.send.key == _b(MSG["sk"])
        if i == 500:
            assert sender.send.key == _b(MSG["rotations"][0]["k"])
        frame = sender.encrypt_message(_b(MSG["message"]))
        if i in expected:
            assert frame == expected[i], f"output {i}"
        length = receiver.decrypt_length(frame[:18])
        assert receiver.decrypt_body(frame[18 : 18 + length + 16]) == _b(MSG["message"])
    assert sender.send.key == _b(MSG["rotations"][1]["k"])


def test_rotation_hkdf_matches_spec_comments() -> None:
    ck, k = bolt8.hkdf(_b(MSG["ck"]), _b(MSG["sk"]))
    assert (ck, k) == (_b(MSG["rotations"][0]["ck"]), _b(MSG["rotations"][0]["k"]))
    ck, k = bolt8.hkdf(ck, k)
    assert (ck, k) == (_b(MSG["rotations"][1]["ck"]), _b(MSG["rotations"][1]["k"]))


def test_tampered_frame_raises_transport_error() -> None:
    ck = _b(MSG["ck"])
    sender = bolt8.Session(
        bolt8.CipherState(_b(MSG["sk"]), ck), bolt8.CipherState(_b(MSG["rk"]), ck), b""
    )
    receiver = bolt8.Session(
        bolt8.CipherState(_b(MSG["rk"]), ck), bolt8.CipherState(_b(MSG["sk"]), ck), b""
    )
    frame = bytearray(sender.encrypt_message(b"pay 1000 msat"))
    frame[-1] ^= 1
    length = receiver.decrypt_length(bytes(frame[:18]))
    with pytest.raises(TransportError):
        receiver.decrypt_body(bytes(frame[18 : 18 + length + 16]))


def test_oversized_message_is_refused() -> None:
    ck = _b(MSG["ck"])
    s = bolt8.Session(
        bolt8.CipherState(_b(MSG["sk"]), ck), bolt8.CipherState(_b(MSG["rk"]), ck), b""
    )
    with pytest.raises(TransportError):
        s.encrypt_message(bytes(65536))
