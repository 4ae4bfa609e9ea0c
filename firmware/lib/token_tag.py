# The delivery-tag key of this meter and its site (sgcore.token.delivery_key): the x-coordinate
# of (meter private key) x (issuer public key), computed once per boot in bounded slices while the
# meter has nothing else to do. Until it is ready, tagged tokens are treated as untagged.
from sgcore import secp256k1 as ec
from sgcore import secp256k1_arith as _ec
from sgcore import secp256k1_wnaf as _wnaf
from sgcore import token as tk

_WORK_PER_STEP = 12  # units of mul_steps (~0.12 M fuel each)


class TagKey:
    def __init__(self, priv, issuer_pubkey):
        self.key = None
        self._gen = self._run(int.from_bytes(priv, "big"), issuer_pubkey)

    def busy(self):
        return self._gen is not None

    def step(self):
        """One slice; True once the key is ready (or can never be: then tags are ignored)."""
        if self._gen is None:
            return True
        try:
            next(self._gen)
            return False
        except StopIteration:
            self._gen = None
        except ValueError:  # a bad issuer key: no tags, tokens are still verified
            self._gen = None
        return True

    def _run(self, d, pub):
        p = yield from ec._parse_steps(pub)
        acc = yield from _wnaf.mul_steps(d, p.x, p.y, _WORK_PER_STEP)
        xy = _ec.to_affine(acc)
        if xy is not None:
            self.key = tk.delivery_key(xy[0].to_bytes(32, "big"))

    def tagged(self, token, tag):
        """True when `tag` is the gateway's tag of `token`."""
        return self.key is not None and tag is not None and tk.delivery_tag(self.key, token) == tag
