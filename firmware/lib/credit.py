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
import errno
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
        # the latest paid window: start, end, power cap W, and the import register when it began
        # (-1 until then): energy drawn inside it was paid by the window token, not by credit
        self.window = (0, 0, 0, -1)
        self.writes = 0
        self.damaged = False
        self._issuer_point = None  # the issuer key parsed on the curve (saves ~8 M fuel a token)
        self._pending = None  # (token, verifier) while a signature is being checked
        self._load()

    # --- state -----------------------------------------------------------------------------

    def _load(self):
        """Restore the state; a file that exists but cannot be read marks the store damaged.

        Damaged means: no new token is accepted and no credit is granted (a damaged
        last_token_id must never reopen replays) until the meter is re-provisioned.
        """
        for name in (self.path, self.path + ".tmp"):  # .tmp: a cut between write and rename
            try:
                with open(name) as f:
                    s = json.load(f)
                state = (int(s["credited_wh"]), s["baseline_wh"], int(s["last_token_id"]),
                         s.get("issuer") or "", tuple((s.get("window") or [0, 0, 0]) + [-1])[:4])  # fmt: skip
                if state[1] is not None:
                    state = (state[0], int(state[1])) + state[2:]
            except OSError as exc:
                if exc.args and exc.args[0] == errno.ENOENT:
                    continue
                self.damaged = True
                continue
            except (ValueError, KeyError, TypeError):
                self.damaged = True
                continue
            self.credited_wh, self.baseline_wh, self.last_token_id, issuer, self.window = state
            if issuer:
                self.issuer = binascii.unhexlify(issuer)
            self.damaged = False
            return
        if self.damaged:
            self._log(
                "credit error: %s is damaged: tokens refused, no credit until re-provisioned"
                % self.path
            )

    def _save(self, credited_wh, baseline_wh, last_token_id, issuer, window):
        s = {
            "credited_wh": credited_wh,
            "baseline_wh": baseline_wh,
            "last_token_id": last_token_id,
            "issuer": binascii.hexlify(issuer).decode() if issuer else "",
            "window": list(window),
        }
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(s, f)
            f.flush()
        os.rename(tmp, self.path)
        self.writes += 1

    def credit_wh(self, import_wh):
        if self.damaged:
            return 0
        if self.baseline_wh is None:
            # nothing consumed before accounting started counts; written before it is used
            self._save(self.credited_wh, import_wh, self.last_token_id, self.issuer, self.window)
            self.baseline_wh = import_wh
        return self.credited_wh - (import_wh - self.baseline_wh)

    def window_cap(self, now):
        """-1 outside a paid window, else its power cap in W (0 = no cap)."""
        start, end, cap, _ = self.window
        return cap if start <= now < end else -1

    def track_window(self, now, import_wh):
        """Energy drawn inside a paid window does not count against energy credit: note the
        import register when the window begins, give what was drawn back when it ends (two
        small writes per window)."""
        if self.damaged or not now:
            return
        self.credit_wh(import_wh)  # the baseline exists before credit changes
        start, end, cap, import0 = self.window
        if start <= now < end:
            if import0 < 0:
                w = (start, end, cap, import_wh)
                self._save(self.credited_wh, self.baseline_wh, self.last_token_id, self.issuer, w)
                self.window = w
        elif import0 >= 0:
            credited = self.credited_wh + max(0, import_wh - import0)
            w = (start, end, cap, -1)
            self._save(credited, self.baseline_wh, self.last_token_id, self.issuer, w)
            self.credited_wh, self.window = credited, w

    # --- tokens ------------------------------------------------------------------------------

    def busy(self):
        return self._pending is not None

    def begin(self, data, now):
        """Check a token's cheap fields; return None to go on with the signature, else a reason."""
        if self._pending is not None:
            return "busy"
        if self.damaged:
            return "state_damaged"
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
        credited, window, issuer = self.credited_wh, self.window, self.issuer
        if t.kind == tk.KIND_ENERGY:
            credited += t.amount_wh
        elif t.kind == tk.KIND_WINDOW:
            if window[3] >= 0:  # a window under way is replaced: what it drew was paid
                credited += max(0, import_wh - window[3])
            window = (t.window_start, t.window_end, t.power_cap_w, -1)
        else:
            issuer = bytes(t.new_issuer_key)
        # on flash first; RAM (what the relay acts on) only once that worked
        self._save(credited, self.baseline_wh, t.token_id, issuer, window)
        if issuer != self.issuer:
            self._issuer_point = None
        self.credited_wh, self.last_token_id, self.window, self.issuer = (
            credited,
            t.token_id,
            window,
            issuer,
        )
        return "accepted", t
