# Credit tokens waiting for their signature check: a small bounded queue in front of the credit
# store (docs/credit-tokens.md, "Several tokens at once").
#
# offer() runs the cheap checks at once (a token that fails one gets its final answer right
# away) and queues the rest; a token already queued or under verification is not queued twice.
# step() verifies one token at a time, a bounded slice per call, re-running the cheap checks
# when its turn comes (an identical id may have been redeemed meanwhile). Tokens that come
# with a valid delivery tag (sgcore.token.delivery_tag: the gateway's cheap MAC) are queued
# ahead of untagged ones, so a flood of forgeries on the broker delays a genuine token by at
# most the one verification under way. A full queue answers "queue_full": not a final answer,
# the sender delivers the token again later.
from micropython import const

from sgcore import token as tk
from sgcore.secp256k1 import Verifier

QUEUE_LEN = const(4)


class TokenDesk:
    def __init__(self, store):
        self.store = store
        self._queue = []  # (tagged, raw token bytes), tagged ones first
        self._job = None  # (raw, token, verifier)
        self._issuer_point = None  # the issuer key parsed on the curve (saves ~8 M fuel a token)
        self._point_of = None
        self.verified = 0  # signature checks finished since boot

    def busy(self):
        return self._job is not None or bool(self._queue)

    def offer(self, data, now, tagged=False):
        """The answers due now: [(reason, token or None)]; empty when the token was queued
        (or is a copy of one queued). A displaced token is answered here too."""
        try:
            t = tk.decode(data)[0]
        except ValueError:
            return [("malformed", None)]
        reason = self.store.check(t, now)
        if reason is not None:
            return [(reason, t)]
        data = bytes(data)
        if self._job is not None and self._job[0] == data:
            return []
        q = self._queue
        for i in range(len(q)):
            if q[i][1] == data:
                if not tagged or q[i][0]:
                    return []
                q.pop(i)  # the same token, now known to be the gateway's: moves ahead
                break
        answers = []
        if len(q) >= QUEUE_LEN:
            if not tagged or q[-1][0]:
                return [("queue_full", t)]
            # a tagged token displaces the newest untagged one, which hears queue_full
            answers.append(("queue_full", tk.decode(q.pop()[1])[0]))
        at = len(q)
        if tagged:
            at = 0
            while at < len(q) and q[at][0]:
                at += 1
        q.insert(at, (tagged, data))
        return answers

    def step(self, now):
        """One bounded slice; returns (reason, token) when a token got its final answer."""
        if self._job is None:
            if not self._queue:
                return None
            data = self._queue.pop(0)[1]
            t, body, sig = tk.decode(data)
            reason = self.store.check(t, now)
            if reason is not None:
                return reason, t
            issuer = self.store.issuer
            if self._point_of != issuer:
                self._issuer_point, self._point_of = None, issuer
            self._job = (data, t, Verifier(self._issuer_point or issuer, tk.digest(body), sig))
            return None
        data, t, verifier = self._job
        try:
            if not verifier.step():
                return None
            ok = verifier.valid
        except ValueError:
            ok = False
        self._job = None
        self.verified += 1
        if verifier.public_key is not None and self._point_of == self.store.issuer:
            self._issuer_point = verifier.public_key
        if not ok:
            return "bad_signature", t
        reason = self.store.check(t, now)  # the state may have moved while we verified
        if reason is not None:
            return reason, t
        self.store.accept(t)
        return "accepted", t
