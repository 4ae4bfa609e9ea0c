"""Sign and verify meter records (sgcore.reading layout) with sgcore.secp256k1.

The signature covers sha256(body) (reading.digest); a record is body || r || s.
`verify_record` also checks that the record's meter_id belongs to the key
(meter_id = sha256(pubkey33)[:16]), so a record cannot be re-attributed to another meter.

The firmware signs with `RecordSigner` from its main loop, a slice per `step()`; the gateway
verifies with coincurve on its hot path (same bytes, same strict low-S rule).
"""

from sgcore import reading as _reading
from sgcore import secp256k1 as _secp

_last_key = [None, None]  # (pubkey33, PublicKey): parsing a compressed key costs a square root


def _check_body(body):
    if not isinstance(body, (bytes, bytearray, memoryview)) or len(body) != _reading.BODY_LEN:
        raise _reading.ReadingFormatError(f"record body must be {_reading.BODY_LEN} bytes")
    return bytes(body)


class RecordSigner:
    """Signs one record body in slices: `step()` until True, then `record` (RECORD_LEN bytes)."""

    __slots__ = ("record", "_body", "_signer")

    def __init__(self, body, priv):
        self._body = _check_body(body)
        self._signer = _secp.Signer(priv, _reading.digest(self._body))
        self.record = None

    def step(self):
        if self.record is not None:
            return True
        if self._signer.step():
            self.record = self._body + self._signer.signature
            return True
        return False


def sign_record(body, priv):
    """body (BODY_LEN bytes, reading.encode_body) + its signature: the full record."""
    signer = RecordSigner(body, priv)
    while not signer.step():
        pass
    return signer.record


def _key33(pubkey):
    if isinstance(pubkey, _secp.PublicKey):
        return pubkey.to_bytes()
    if isinstance(pubkey, (bytes, bytearray, memoryview)) and len(pubkey) == 33:
        return bytes(pubkey)
    raise _secp.Secp256k1Error("pubkey must be a 33-byte compressed key or a PublicKey")


class RecordVerifier:
    """Checks one record in slices: `step()` until True, then `valid` (bool).

    `pubkey` is the meter's 33-byte compressed key, or a secp256k1.PublicKey (then no square
    root is needed: keep `public_key` from a finished RecordVerifier and pass it next time).
    A malformed record or key raises ValueError here; a record that carries another meter's
    id is invalid without any curve work."""

    __slots__ = ("valid", "public_key", "_verifier")

    def __init__(self, record, pubkey):
        decoded = _reading.decode(record)  # (reading, body, signature)
        self.valid = None
        self.public_key = None
        if decoded[0].meter_id != _reading.meter_id_from_pubkey(_key33(pubkey)):
            self.valid = False
        record = _reading.digest(decoded[1])
        self._verifier = _secp.Verifier(pubkey, record, decoded[2])

    def step(self):
        if self.valid is not None:
            return True
        if not self._verifier.step():
            return False
        self.public_key = self._verifier.public_key
        self.valid = self._verifier.valid
        return True


def verify_record(record, pubkey33):
    """True if `record` is signed by `pubkey33` and carries that key's meter_id.

    A malformed record raises ReadingFormatError, a malformed key Secp256k1Error
    (both ValueError); a well-formed record with a wrong signature or meter id is False.
    The last key's parsed form is cached, so checking a stream of one meter's records
    skips the square root."""
    key = pubkey33
    if _last_key[0] is not None and _last_key[0] == pubkey33:
        key = _last_key[1]
    verifier = RecordVerifier(record, key)
    while not verifier.step():
        pass
    if verifier.public_key is not None:
        _last_key[0] = verifier.public_key.to_bytes()
        _last_key[1] = verifier.public_key
    return verifier.valid
