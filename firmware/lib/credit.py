# Prepaid credit of the meter: which tokens were accepted and how much energy they paid for.
#
# Credit is derived, not counted down: credit_wh = credited_wh - (import_wh - baseline_import_wh).
# credited_wh and the last token id change only when a token is accepted, and are written to
# flash (temp file + rename) BEFORE the token takes effect; consumption comes from the import
# register, which has its own checkpoint. So a power cut can never mint or lose credit twice.
#
# Token checks, in order, each with a reason (docs/credit-tokens.md): malformed, wrong_meter,
# unknown_issuer, replay, clock_unset, expired, then the ECDSA signature (verified step-wise).
import binascii
import json
import os

from sgcore import token as tk
from sgcore.secp256k1 import Verifier

STATE_FILE = "credit.json"


class CreditStore:
    def __init__(self, meter_id, issuer_pubkey, path=STATE_FILE, log=print):
        self.meter_id = meter_id
        self.path = path
        self._log = log
        self.credited_wh = 0
        self.baseline_wh = None  # import register when credit accounting started
        self.last_token_id = 0
        self.issuer = issuer_pubkey  # bytes (33) or None
        self.window = (0, 0, 0)  # start, end, power cap W of the latest paid window
        self.writes = 0
        self._issuer_point = None  # the issuer key parsed on the curve (saves ~8 M fuel a token)
        self._pending = None  # (token, verifier) while a signature is being checked
        self._load()

    # --- state -----------------------------------------------------------------------------

    def _load(self):
        try:
            with open(self.path) as f:
                s = json.load(f)
        except (OSError, ValueError):
            return  # first boot (a torn write leaves the old file: rename is atomic)
        self.credited_wh = s["credited_wh"]
        self.baseline_wh = s["baseline_wh"]
        self.last_token_id = s["last_token_id"]
        if s.get("issuer"):
            self.issuer = binascii.unhexlify(s["issuer"])
        self.window = tuple(s.get("window", (0, 0, 0)))

    def _save(self):
        s = {
            "credited_wh": self.credited_wh,
            "baseline_wh": self.baseline_wh,
            "last_token_id": self.last_token_id,
            "issuer": binascii.hexlify(self.issuer).decode() if self.issuer else "",
            "window": list(self.window),
        }
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(s, f)
            f.flush()
        os.rename(tmp, self.path)
        self.writes += 1

    def credit_wh(self, import_wh):
        if self.baseline_wh is None:
            self.baseline_wh = import_wh  # nothing consumed before accounting started counts
            self._save()
        return self.credited_wh - (import_wh - self.baseline_wh)

    def window_cap(self, now):
        """-1 outside a paid window, else its power cap in W (0 = no cap)."""
        start, end, cap = self.window
        return cap if start <= now < end else -1

    # --- tokens ------------------------------------------------------------------------------

    def busy(self):
        return self._pending is not None

    def begin(self, data, now):
        """Check a token's cheap fields; return None to go on with the signature, else a reason."""
        if self._pending is not None:
            return "busy"
        try:
            t, body, sig = tk.decode(data)
        except ValueError:
            return "malformed"
        if t.meter_id != self.meter_id:
            return "wrong_meter"
        if self.issuer is None or t.issuer_key_id != tk.key_id(self.issuer):
            return "unknown_issuer"
        if t.token_id <= self.last_token_id:
            return "replay"
        if now == 0:
            return "clock_unset"
        if t.expiry <= now:
            return "expired"
        self._pending = (t, Verifier(self._issuer_point or self.issuer, tk.digest(body), sig))
        return None

    def step(self, import_wh):
        """Advance the signature check by one bounded slice.

        Returns None while working, else (reason, token): reason "accepted" or "bad_signature".
        """
        t, verifier = self._pending
        try:
            if not verifier.step():
                return None
            ok = verifier.valid
        except ValueError:
            ok = False
        self._pending = None
        if verifier.public_key is not None:
            self._issuer_point = verifier.public_key
        if not ok:
            return "bad_signature", t
        self.credit_wh(import_wh)  # make sure the baseline exists before credit changes
        self.last_token_id = t.token_id
        if t.kind == tk.KIND_ENERGY:
            self.credited_wh += t.amount_wh
        elif t.kind == tk.KIND_WINDOW:
            self.window = (t.window_start, t.window_end, t.power_cap_w)
        else:
            self.issuer = bytes(t.new_issuer_key)
            self._issuer_point = None
        self._save()  # persisted before anything acts on it
        return "accepted", t
