# The issuer key's table on flash (sgcore.secp256k1_keytable, docs/crypto.md): with it a meter
# verifies an ack, a command or a token at about a third of the cost. tools/provision.py writes
# it with the config. When the file no longer serves the key signatures come from (a key-change
# token rotated the site key) or it is damaged, the meter builds a new one itself: a slice per
# step(), called by the uplink while nothing is being verified, then switches to it. Until then
# verifications take the slower path: correct, only dearer. A missing file is left missing.
# The stale table is closed for the build (nothing of it stays in RAM). A build that fails (out
# of heap, flash full) starts again from the beginning, up to _TRIES times per key.
# A table that serves the key is checked (once per boot, ~16 M fuel) in the same idle polls, so
# the first token or ack after boot need not do it (a verification that comes first checks it
# itself, as ever; whichever check ends first counts for both).
import os

from sgcore import secp256k1_keytable as _kt
from sgcore.compat import const

_TMP = _kt.DEFAULT_PATH + ".tmp"
_TRIES = const(3)


class IssuerTable:
    def __init__(self, log=print):
        self._log = log
        self._builder = None
        self._pub = None  # the key a table is being built for
        self._tries = 0
        self._check = None  # (table, its check_steps generator) while checked in idle polls

    def follow(self, pubkey):
        """The key acks, commands and tokens are signed with from now on (boot, rotation)."""
        self._drop()
        self._pub = None
        self._tries = 0
        self._check = None
        if _kt.stale_for(pubkey):
            self._log("issuer table: made for another key or damaged: building one on flash")
            _kt.refuse()  # the stale table's file: closed, verifications take the slower path
            self._pub = pubkey
            self._start()
        else:
            self._check_soon(pubkey)

    def building(self):
        return self._pub is not None

    def pending(self):
        """True while there is idle work: a build, or the check of the table."""
        return self._pub is not None or self._check is not None

    def _check_soon(self, pubkey):
        t = _kt.table_for(pubkey)
        if t is not None and not t.checked:
            self._check = (t, t.check_steps())

    def _check_step(self):
        t, steps = self._check
        try:
            next(steps)
            return
        except StopIteration:
            pass
        except Exception:  # e.g. the file closed under it (a rotation): a verification checks
            self._check = None
            return
        self._check = None
        if not t.checked:
            _kt.refuse(t)
            self._log("issuer table: failed its check: verifications take the slower path")

    def _start(self):
        from sgcore.secp256k1_table_builder import KeyTableBuilder  # loaded only then

        self._tries += 1
        self._builder = KeyTableBuilder(_TMP, self._pub)

    def _drop(self):
        if self._builder is not None:
            self._builder.close()  # its file too
            self._builder = None

    def step(self):
        """One slice of the build (< 1 M fuel, < 8 KB of garbage) or of the check; True on the
        call that finished a build."""
        if self._check is not None:
            self._check_step()
            return False
        if self._pub is None:
            return False
        if self._builder is None:  # a build failed: again, with the heap collected since
            self._start()
            return False
        try:
            done = self._builder.step()
        except Exception as e:  # the build is over: a generator that raised is finished
            self._builder = None
            if self._tries >= _TRIES:
                self._pub = None
            then = "starting again" if self._pub else "verifications keep the slower path"
            self._log("issuer table: build failed (%r), %s" % (e, then))
            return False
        if not done:
            return False
        self._builder = None
        pub, self._pub = self._pub, None
        _kt.use_key_table()  # closes the old file before it is replaced
        try:
            os.remove(_kt.DEFAULT_PATH)
        except OSError:
            pass
        os.rename(_TMP, _kt.DEFAULT_PATH)
        self._log("issuer table: built; verifications use it once it is checked")
        self._check_soon(pub)
        return True
