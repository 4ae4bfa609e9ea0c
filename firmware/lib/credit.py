# Prepaid credit of the meter: which tokens were redeemed, what they paid for, and how much of it
# has been used (docs/credit-tokens.md).
#
#   credit_wh = credited_wh - consumed_wh
#
# consumed_wh counts the import register's increases since accounting began. It is committed to
# flash AHEAD of use, as prepayment meters do: the state on flash holds debited_wh, which is
# always consumed_wh + up to `reserve_wh`; a new debit is written before consumption comes within
# reserve/4 of the last one. After a power cut consumed_wh restarts at debited_wh, so a cut can
# only charge the payer up to the reserve too much, never release energy nobody paid for (the
# import register's own checkpoint may lag by checkpoint_s; credit does not depend on it).
# credited_wh, the replay window and the issuer key change only when a token is accepted, and
# are written to flash (temp file + rename) BEFORE the token takes effect.
#
# check() runs a token's cheap checks in order, each with a reason: state_damaged, wrong_meter,
# unknown_issuer, replay, clock_unset, expired; token_desk.py verifies the signature and then
# calls accept().
import binascii
import errno
import json
import os

import replay_window as rw

from sgcore import token as tk

STATE_FILE = "credit.json"


class CreditStore:
    def __init__(self, meter_id, issuer_pubkey, path=STATE_FILE, reserve_wh=20, log=print):
        self.meter_id = meter_id
        self.path = path
        self.reserve_wh = reserve_wh
        self._margin = max(1, reserve_wh // 4)
        self._log = log
        self.credited_wh = 0
        self.consumed_wh = 0
        self.debited_wh = None  # consumption committed on flash (None: accounting not started)
        self.floor = 0  # replay window (replay_window.py)
        self.seen = 0
        self.issuer = issuer_pubkey  # bytes (33) or None
        # the latest paid window: start, end, power cap W, and consumed_wh when it began (-1
        # until then): energy drawn inside it was paid by the window token, not by credit
        self.window = (0, 0, 0, -1)
        self.writes = 0
        self.damaged = False
        self._last_import = None  # the import register at the previous track()
        self._legacy_baseline = None  # a state file from before debited_wh existed
        self._load()

    @property
    def last_token_id(self):
        return rw.newest(self.floor, self.seen)

    # --- state -----------------------------------------------------------------------------

    def _load(self):
        """Restore the state; a file that exists but cannot be read marks the store damaged.

        Damaged means: no new token is accepted and no credit is granted (a damaged replay
        window must never reopen replays) until the meter is re-provisioned.
        """
        for name in (self.path, self.path + ".tmp"):  # .tmp: a cut between write and rename
            try:
                with open(name) as f:
                    s = json.load(f)
                credited = int(s["credited_wh"])
                debited = s.get("debited_wh")
                debited = None if debited is None else int(debited)
                floor = int(s["floor"]) if "floor" in s else int(s["last_token_id"])
                seen = int(s.get("seen", 0))
                issuer = s.get("issuer") or ""
                window = tuple((s.get("window") or [0, 0, 0]) + [-1])[:4]
                legacy = s.get("baseline_wh") if debited is None else None
                legacy = None if legacy is None else int(legacy)
            except OSError as exc:
                if exc.args and exc.args[0] == errno.ENOENT:
                    continue
                self.damaged = True
                continue
            except (ValueError, KeyError, TypeError):
                self.damaged = True
                continue
            self.credited_wh, self.floor, self.seen, self.window = credited, floor, seen, window
            self.debited_wh = debited
            self.consumed_wh = debited or 0  # after a cut: the whole reserve counts as used
            self._legacy_baseline = legacy
            if issuer:
                self.issuer = binascii.unhexlify(issuer)
            self.damaged = False
            return
        if self.damaged:
            self._log(
                "credit error: %s is damaged: tokens refused, no credit until re-provisioned"
                % self.path
            )

    def _save(self, credited, debited, floor, seen, issuer, window):
        s = {
            "credited_wh": credited,
            "debited_wh": debited,
            "floor": floor,
            "seen": seen,
            "issuer": binascii.hexlify(issuer).decode() if issuer else "",
            "window": list(window),
        }
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(s, f)
            f.flush()
        try:
            os.rename(tmp, self.path)
        except OSError:  # no rename over a file here: the .tmp is read at boot too
            os.remove(self.path)
            os.rename(tmp, self.path)
        self.writes += 1

    def _save_debit(self, debited):
        self._save(self.credited_wh, debited, self.floor, self.seen, self.issuer, self.window)
        self.debited_wh = debited

    # --- consumption -----------------------------------------------------------------------

    def credit_wh(self):
        return 0 if self.damaged else self.credited_wh - self.consumed_wh

    def track(self, import_wh, relay_closed):
        """Count the import register's increase since the last call, and commit the next
        reserve to flash before consumption can pass what is committed. With the relay open
        nothing is committed ahead (no energy flows), so cuts with the relay open cost nothing."""
        if self.damaged:
            return
        last, self._last_import = self._last_import, import_wh
        if last is None:
            if self._legacy_baseline is not None:
                self.consumed_wh = max(0, import_wh - self._legacy_baseline)
                self._legacy_baseline = None
                self._save_debit(self.consumed_wh)
        elif import_wh > last:
            self.consumed_wh += import_wh - last
        c, d = self.consumed_wh, self.debited_wh
        if d is None or c > d or (relay_closed and c + self._margin > d):
            self._save_debit(c + self.reserve_wh if relay_closed else c)

    def window_cap(self, now):
        """-1 outside a paid window, else its power cap in W (0 = no cap)."""
        start, end, cap, _ = self.window
        return cap if start <= now < end else -1

    def track_window(self, now):
        """Energy drawn inside a paid window does not count against energy credit: note
        consumed_wh when the window begins, give what was drawn back when it ends (two small
        writes per window)."""
        if self.damaged or not now or self.debited_wh is None:
            return
        start, end, cap, c0 = self.window
        if start <= now < end:
            if c0 < 0:
                w = (start, end, cap, self.consumed_wh)
                self._save(self.credited_wh, self.debited_wh, self.floor, self.seen, self.issuer, w)
                self.window = w
        elif c0 >= 0:
            credited = self.credited_wh + max(0, self.consumed_wh - c0)
            w = (start, end, cap, -1)
            self._save(credited, self.debited_wh, self.floor, self.seen, self.issuer, w)
            self.credited_wh, self.window = credited, w

    # --- tokens ------------------------------------------------------------------------------

    def check(self, t, now):
        """The cheap checks of a decoded token: None to go on with the signature, else a reason."""
        if self.damaged:
            return "state_damaged"
        if t.meter_id != self.meter_id:
            return "wrong_meter"
        if self.issuer is None or t.issuer_key_id != tk.key_id(self.issuer):
            return "unknown_issuer"
        if rw.is_spent(self.floor, self.seen, t.token_id):
            return "replay"
        if now == 0:
            return "clock_unset"
        if t.expiry <= now:
            return "expired"
        return None

    def accept(self, t):
        """Redeem a token whose signature verified: on flash first, then in RAM."""
        credited, window, issuer = self.credited_wh, self.window, self.issuer
        if t.kind == tk.KIND_ENERGY:
            credited += t.amount_wh
        elif t.kind == tk.KIND_WINDOW:
            if window[3] >= 0:  # a window under way is replaced: what it drew was paid
                credited += max(0, self.consumed_wh - window[3])
            window = (t.window_start, t.window_end, t.power_cap_w, -1)
        else:
            issuer = bytes(t.new_issuer_key)
        floor, seen = rw.accept(self.floor, self.seen, t.token_id)
        debited = self.debited_wh if self.debited_wh is not None else self.consumed_wh
        self._save(credited, debited, floor, seen, issuer, window)
        self.credited_wh, self.debited_wh, self.window, self.issuer = (
            credited,
            debited,
            window,
            issuer,
        )
        self.floor, self.seen = floor, seen
