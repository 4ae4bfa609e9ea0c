"""BOLT #8 encrypted and authenticated transport: Noise_XK_secp256k1_ChaChaPoly_SHA256.

Spec: https://github.com/lightning/bolts/blob/master/08-transport.md

Layers, bottom up:
  - `Initiator` / `Responder`: the three-act handshake as pure byte-in/byte-out steps
    (ephemeral keys injectable for the spec's test vectors);
  - `CipherState` / `Session`: message framing (encrypted length + encrypted body) with the
    key rotation every 1000 nonces (i.e. every 500 messages);
  - `bolt8_transport`: `connect()` / `serve()` / `Connection`, the asyncio TCP transport
    carrying raw BOLT #1 messages (see `gateway.ln.codec.wire` for their encoding).

Failures are `HandshakeError(code)` with the codes of the spec's vectors (ACT1_BAD_TAG, ...)
or `TransportError`; a connection that fails either is closed, never half-trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gateway.ln.errors import HandshakeError, TransportError

log = logging.getLogger(__name__)

PROTOCOL_NAME = b"Noise_XK_secp256k1_ChaChaPoly_SHA256"
PROLOGUE = b"lightning"
VERSION = 0
ACT_ONE_LEN = ACT_TWO_LEN = 50
ACT_THREE_LEN = 66
MAC_LEN = 16
LENGTH_HEADER_LEN = 2 + MAC_LEN
MAX_MESSAGE_LEN = 65535
ROTATE_EVERY = 1000  # nonces per key before rotation
HANDSHAKE_TIMEOUT_S = 10.0


# --- primitives -------------------------------------------------------------------------------


def _sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def hkdf(salt: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """RFC 5869 extract-and-expand with empty info, 64 bytes split in two 32-byte keys."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    t1 = hmac.new(prk, b"\x01", hashlib.sha256).digest()
    t2 = hmac.new(prk, t1 + b"\x02", hashlib.sha256).digest()
    return t1, t2


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + struct.pack("<Q", n)


def encrypt_with_ad(key: bytes, n: int, ad: bytes, plaintext: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_nonce(n), plaintext, ad)


def decrypt_with_ad(key: bytes, n: int, ad: bytes, ciphertext: bytes) -> bytes:
    """Raises cryptography's InvalidTag on a bad MAC; callers map it to their error code."""
    return ChaCha20Poly1305(key).decrypt(_nonce(n), ciphertext, ad)


def ecdh(priv: bytes, pub: PublicKey) -> bytes:
    """SHA256 of the compressed shared point (libsecp256k1's default ECDH hash)."""
    return PrivateKey(priv).ecdh(pub.format(compressed=True))


def _parse_pubkey(data: bytes, code: str) -> PublicKey:
    if len(data) != 33 or data[0] not in (2, 3):
        raise HandshakeError(code, "not a compressed secp256k1 point")
    try:
        return PublicKey(data)
    except ValueError as exc:
        raise HandshakeError(code, str(exc)) from exc


def _pub(priv: bytes) -> bytes:
    return PrivateKey(priv).public_key.format(compressed=True)


# --- session ciphers --------------------------------------------------------------------------


class CipherState:
    """One direction's key, nonce and chaining key; rotates the key every 1000 nonces."""

    def __init__(self, key: bytes, ck: bytes) -> None:
        self._key = key
        self._ck = ck
        self._nonce = 0
        self._aead = ChaCha20Poly1305(key)

    @property
    def key(self) -> bytes:
        return self._key

    def _advance(self) -> None:
        self._nonce += 1
        if self._nonce == ROTATE_EVERY:
            self._ck, self._key = hkdf(self._ck, self._key)
            self._aead = ChaCha20Poly1305(self._key)
            self._nonce = 0

    def encrypt(self, plaintext: bytes) -> bytes:
        out = self._aead.encrypt(_nonce(self._nonce), plaintext, b"")
        self._advance()
        return out

    def decrypt(self, ciphertext: bytes) -> bytes:
        try:
            out = self._aead.decrypt(_nonce(self._nonce), ciphertext, b"")
        except InvalidTag as exc:
            raise TransportError("message authentication failed") from exc
        self._advance()
        return out


@dataclass
class Session:
    """The keys of an established connection: `send` encrypts, `recv` decrypts."""

    send: CipherState
    recv: CipherState
    remote_pub: bytes

    def encrypt_message(self, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE_LEN:
            raise TransportError(f"message of {len(message)} bytes exceeds 65535")
        return self.send.encrypt(struct.pack(">H", len(message))) + self.send.encrypt(message)

    def decrypt_length(self, header: bytes) -> int:
        if len(header) != LENGTH_HEADER_LEN:
            raise TransportError("short length header")
        (length,) = struct.unpack(">H", self.recv.decrypt(header))
        return length

    def decrypt_body(self, body: bytes) -> bytes:
        return self.recv.decrypt(body)


# --- handshake --------------------------------------------------------------------------------


class _Handshake:
    def __init__(
        self, local_priv: bytes, responder_pub: bytes, ephemeral_priv: bytes | None
    ) -> None:
        self.s_priv = local_priv
        self.e_priv = ephemeral_priv if ephemeral_priv is not None else os.urandom(32)
        self.h = _sha256(PROTOCOL_NAME)
        self.ck = self.h
        self.h = _sha256(self.h, PROLOGUE)
        self.h = _sha256(self.h, responder_pub)
        self.temp_k2 = b""

    def _mix_hash(self, data: bytes) -> None:
        self.h = _sha256(self.h, data)

    def _mix_key(self, shared: bytes) -> bytes:
        self.ck, temp_k = hkdf(self.ck, shared)
        return temp_k

    def _read_act(self, msg: bytes, length: int, act: str) -> bytes:
        if len(msg) != length:
            raise HandshakeError(f"{act}_READ_FAILED", f"expected {length} bytes, got {len(msg)}")
        if msg[0] != VERSION:
            raise HandshakeError(f"{act}_BAD_VERSION", f"version {msg[0]}")
        return msg[1:]


class Initiator(_Handshake):
    """The connecting side: knows the responder's static key in advance."""

    def __init__(
        self, local_priv: bytes, remote_pub: bytes, ephemeral_priv: bytes | None = None
    ) -> None:
        super().__init__(local_priv, remote_pub, ephemeral_priv)
        self.rs = _parse_pubkey(remote_pub, "BAD_REMOTE_PUBKEY")
        self.re: PublicKey | None = None

    def act_one(self) -> bytes:
        e_pub = _pub(self.e_priv)
        self._mix_hash(e_pub)
        temp_k1 = self._mix_key(ecdh(self.e_priv, self.rs))
        c = encrypt_with_ad(temp_k1, 0, self.h, b"")
        self._mix_hash(c)
        return bytes([VERSION]) + e_pub + c

    def act_three(self, act_two: bytes) -> tuple[bytes, Session]:
        """Process act two, return (act three bytes, established session)."""
        body = self._read_act(act_two, ACT_TWO_LEN, "ACT2")
        re_bytes, c = body[:33], body[33:]
        self.re = _parse_pubkey(re_bytes, "ACT2_BAD_PUBKEY")
        self._mix_hash(re_bytes)
        temp_k2 = self._mix_key(ecdh(self.e_priv, self.re))
        try:
            decrypt_with_ad(temp_k2, 0, self.h, c)
        except InvalidTag as exc:
            raise HandshakeError("ACT2_BAD_TAG") from exc
        self._mix_hash(c)
        c3 = encrypt_with_ad(temp_k2, 1, self.h, _pub(self.s_priv))
        self._mix_hash(c3)
        temp_k3 = self._mix_key(ecdh(self.s_priv, self.re))
        t = encrypt_with_ad(temp_k3, 0, self.h, b"")
        sk, rk = hkdf(self.ck, b"")
        session = Session(
            CipherState(sk, self.ck), CipherState(rk, self.ck), self.rs.format(compressed=True)
        )
        return bytes([VERSION]) + c3 + t, session


class Responder(_Handshake):
    """The listening side: learns the initiator's static key in act three."""

    def __init__(self, local_priv: bytes, ephemeral_priv: bytes | None = None) -> None:
        super().__init__(local_priv, _pub(local_priv), ephemeral_priv)
        self.re: PublicKey | None = None

    def act_two(self, act_one: bytes) -> bytes:
        """Process act one, return act two bytes."""
        body = self._read_act(act_one, ACT_ONE_LEN, "ACT1")
        re_bytes, c = body[:33], body[33:]
        self.re = _parse_pubkey(re_bytes, "ACT1_BAD_PUBKEY")
        self._mix_hash(re_bytes)
        temp_k1 = self._mix_key(ecdh(self.s_priv, self.re))
        try:
            decrypt_with_ad(temp_k1, 0, self.h, c)
        except InvalidTag as exc:
            raise HandshakeError("ACT1_BAD_TAG") from exc
        self._mix_hash(c)
        e_pub = _pub(self.e_priv)
        self._mix_hash(e_pub)
        self.temp_k2 = self._mix_key(ecdh(self.e_priv, self.re))
        c2 = encrypt_with_ad(self.temp_k2, 0, self.h, b"")
        self._mix_hash(c2)
        return bytes([VERSION]) + e_pub + c2

    def finish(self, act_three: bytes) -> Session:
        """Process act three; the session's `remote_pub` is the authenticated initiator key."""
        if not self.temp_k2:
            raise HandshakeError("ACT3_OUT_OF_ORDER", "act two was not sent")
        body = self._read_act(act_three, ACT_THREE_LEN, "ACT3")
        c, t = body[:49], body[49:]
        try:
            rs_bytes = decrypt_with_ad(self.temp_k2, 1, self.h, c)
        except InvalidTag as exc:
            raise HandshakeError("ACT3_BAD_CIPHERTEXT") from exc
        rs = _parse_pubkey(rs_bytes, "ACT3_BAD_PUBKEY")
        self._mix_hash(c)
        temp_k3 = self._mix_key(ecdh(self.e_priv, rs))
        try:
            decrypt_with_ad(temp_k3, 0, self.h, t)
        except InvalidTag as exc:
            raise HandshakeError("ACT3_BAD_TAG") from exc
        rk, sk = hkdf(self.ck, b"")
        return Session(CipherState(sk, self.ck), CipherState(rk, self.ck), rs_bytes)
