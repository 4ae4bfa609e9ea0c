"""The signature of a BOLT #11 invoice: low-S, then verified against the `n` field or recovered.

Spec: https://github.com/lightning/bolts/blob/master/11-payment-encoding.md (requirements for
readers: "MUST check that the signature is valid", low-S, and with `n` "MUST use the n field to
validate the signature instead of performing signature recovery").
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from coincurve import PublicKey
from coincurve.context import GLOBAL_CONTEXT
from coincurve.utils import ffi, lib

from gateway.ln.errors import InvoiceSignatureError

_CTX = GLOBAL_CONTEXT.ctx
_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def payee_of(signature: bytes, message: bytes, payee_field: bytes | None) -> bytes:
    """The payee's compressed key that made `signature` (65 bytes: compact + recovery id) over
    `message` (hrp + data words, as `bolt11.signing_message`): checked against the invoice's `n`
    field when it has one, else recovered. InvoiceSignatureError when it is not a valid one."""
    if len(signature) != 65 or signature[64] > 3:
        raise InvoiceSignatureError("signature must be 64 bytes plus a recovery id 0..3")
    if int.from_bytes(signature[32:64], "big") > _HALF_N:
        # BOLT-11: the signature is low-S; a high-S twin would be a second valid invoice string
        raise InvoiceSignatureError("signature is not low-S")
    if payee_field is not None:
        # BOLT-11: with an `n` field the reader checks the signature against it (one verify;
        # no recovery needed: a signature that verifies under n recovers to n with its id)
        try:
            pub = _payee_key(payee_field)
        except ValueError as exc:
            raise InvoiceSignatureError(f"invalid payee key in n field: {exc}") from exc
        sig = ffi.new("secp256k1_ecdsa_signature *")
        digest = hashlib.sha256(message).digest()
        if not (
            lib.secp256k1_ecdsa_signature_parse_compact(_CTX, sig, signature[:64])
            and lib.secp256k1_ecdsa_verify(_CTX, sig, digest, pub) == 1
        ):
            raise InvoiceSignatureError("signature does not match the payee (n) field")
        return payee_field
    try:
        recovered = PublicKey.from_signature_and_message(signature, message)
    except ValueError as exc:
        raise InvoiceSignatureError(f"signature is not recoverable: {exc}") from exc
    return recovered.format(compressed=True)


@functools.lru_cache(maxsize=1024)
def _payee_key(payee: bytes) -> Any:
    """libsecp256k1's parsed payee key: a payer pays the same few payees again and again."""
    return PublicKey(payee).public_key
