"""A software meter: produces chained, signed 167-byte records with the shared sgcore codec.

Signing uses coincurve (libsecp256k1), whose signatures are always low-S, as the format requires.
Used by the gateway tests and the gateway benchmark until emulated meters publish real readings.
"""

from __future__ import annotations

import coincurve

from gateway.crypto import sign_digest
from sgcore import reading as rc


class SoftMeter:
    def __init__(self, secret: bytes | None = None, start: int = 1_700_000_000) -> None:
        self.key = coincurve.PrivateKey(secret) if secret else coincurve.PrivateKey()
        self.pubkey = self.key.public_key.format(compressed=True)
        self.meter_id = rc.meter_id_from_pubkey(self.pubkey)
        self.hex = self.meter_id.hex()
        self.seq = 0
        self.prev_hash = rc.ZERO_HASH
        self.t = start
        self.import_wh = 0
        self.journal: list[bytes] = []  # every record made, index == seq

    def sign_body(self, body: bytes) -> bytes:
        return sign_digest(self.key, rc.digest(body))

    def make(self, reading: rc.Reading) -> bytes:
        body = rc.encode_body(reading)
        return body + self.sign_body(body)

    def next_record(self, wh: int = 25) -> bytes:
        self.import_wh += wh
        r = rc.Reading(
            self.meter_id,
            self.seq,
            self.prev_hash,
            self.t,
            self.t + 900,
            self.import_wh,
            0,
            interval_import_wh=wh,
            avg_power_w=wh * 4,
            peak_power_w=wh * 5,
            voltage_dv=2301,
            relay=1,
            credit_wh=1000,
        )
        record = self.make(r)
        self.journal.append(record)
        self.seq += 1
        self.t += 900
        self.prev_hash = rc.record_hash(record)
        return record
