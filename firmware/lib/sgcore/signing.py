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


def _public_key(pubkey33):
    if not isinstance(pubkey33, (bytes, bytearray, memoryview)) or len(pubkey33) != 33:
        raise _secp.Secp256k1Error("pubkey33 must be a 33-byte compressed key")
    if _last_key[0] != pubkey33:
        _last_key[1] = _secp.PublicKey.from_bytes(pubkey33)
        _last_key[0] = bytes(pubkey33)
    return _last_key[1]


def verify_record(record, pubkey33):
    """True if `record` is signed by `pubkey33` and carries that key's meter_id.

    A malformed record raises ReadingFormatError, a malformed key Secp256k1Error
    (both ValueError); a well-formed record with a wrong signature or meter id is False."""
    decoded = _reading.decode(record)  # (reading, body, signature)
    key = _public_key(pubkey33)
    if decoded[0].meter_id != _reading.meter_id_from_pubkey(_last_key[0]):
        return False
    return _secp.verify(key, _reading.digest(decoded[1]), decoded[2])
