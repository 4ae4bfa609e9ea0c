# The issuer key's table on flash (sgcore.secp256k1_keytable, docs/crypto.md): with it a meter
# verifies an ack, a command or a token at about a third of the cost. tools/provision.py writes
# it with the config. When the file no longer serves the key signatures come from (a key-change
# token rotated the site key) or it is damaged, the meter builds a new one itself: a slice per
# step(), called by the uplink while nothing is being verified, then switches to it. Until then
# verifications take the slower path: correct, only dearer. A missing file is left missing.
import os

from sgcore import secp256k1_keytable as _kt

_TMP = _kt.DEFAULT_PATH + ".tmp"


class IssuerTable:
    def __init__(self, log=print):
        self._log = log
        self._builder = None

    def follow(self, pubkey):
        """The key acks, commands and tokens are signed with from now on (boot, rotation)."""
        self._builder = None
        if _kt.stale_for(pubkey):
            from sgcore.secp256k1_table_builder import KeyTableBuilder  # loaded only then

            self._log("issuer table: made for another key or damaged: building one on flash")
            self._builder = KeyTableBuilder(_TMP, pubkey)

    def building(self):
        return self._builder is not None

    def step(self):
        """One slice of the build (~0.4 M fuel); True on the call that finished it."""
        if self._builder is None or not self._builder.step():
            return False
        self._builder = None
        _kt.use_key_table()  # closes the old file before it is replaced
        try:
            os.remove(_kt.DEFAULT_PATH)
        except OSError:
            pass
        os.rename(_TMP, _kt.DEFAULT_PATH)
        self._log("issuer table: built; verifications use it once it is checked")
        return True
