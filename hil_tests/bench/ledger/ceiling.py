"""The verification ceiling: signature checks per second on one core, with the ledger's check."""

from __future__ import annotations

import time

from gateway.ledger import keys, txs
from gateway.ledger.keys import SigningKey


def verify_ceiling(count: int = 3000) -> float:
    """Signature checks per second on one core (the ledger's check, cached public keys)."""
    key = SigningKey()
    signed = [
        txs.make("withdraw", "00" * 32, nonce=i, account=key.pubkey, amount_msat=1).signed_by(key)
        for i in range(count)
    ]
    work = [(bytes.fromhex(t.id), t.sigs[key.pubkey]) for t in signed]
    t0 = time.perf_counter()
    ok = sum(keys.verify_digest(key.pubkey, digest, sig) for digest, sig in work)
    elapsed = time.perf_counter() - t0
    assert ok == count
    return count / elapsed
