# The meter's own secp256k1 key: made on the device at first boot from the board's RNG, kept on
# flash, never sent anywhere. Its public key (printed at boot, served over Modbus and MQTT status)
# is what the gateway enrolls; the meter id is sha256(public key)[:16].
#
# key.bin = b"SGK2" | 32-byte private key | 33-byte compressed public key | crc32.
# The public key is stored so that a boot never repeats the point multiplication. A damaged key
# file is never replaced silently: a new key would be a new meter identity, so the meter reports
# the problem and stops signing.
import binascii
import errno
import os
import struct

from sgcore import secp256k1_arith as _ec
from sgcore import secp256k1_table as _table
from sgcore.reading import meter_id_from_pubkey
from sgcore.secp256k1 import PublicKey, private_key_from_random

KEY_FILE = "key.bin"
_MAGIC = b"SGK2"
_LEN = 69  # magic + private key + public key; the crc32 follows


class KeyStoreError(Exception):
    pass


class MeterKey:
    def __init__(self, priv, pubkey):
        self.priv = priv
        self.pubkey = pubkey
        self.meter_id = meter_id_from_pubkey(pubkey)


def _crc(data):
    return struct.pack(">I", binascii.crc32(data) & 0xFFFFFFFF)


def public_key_steps(priv):
    """Generator: yields False while it works (a few point additions each); returns the key."""
    acc = yield from _table.mul_g_steps(int.from_bytes(priv, "big"), 2)
    zi = yield from _ec.inverse_steps(acc[2], _ec.P, 64)
    zz = _ec.fmul(zi, zi)
    return PublicKey(
        _ec.fmul(acc[0], zz) % _ec.P, _ec.fmul(_ec.fmul(acc[1], zz), zi) % _ec.P
    ).to_bytes()


def load_or_create(random_bytes, path=KEY_FILE, log=print):
    """Generator: yields while a first-boot key is computed; returns the MeterKey.

    Raises KeyStoreError when the key file is damaged.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        if not exc.args or exc.args[0] != errno.ENOENT:  # a read error is not "no key yet"
            raise KeyStoreError("cannot read %s (%s): refusing to sign" % (path, exc))
        data = None
    if data is not None:
        if len(data) != _LEN + 4 or data[:4] != _MAGIC or _crc(data[:_LEN]) != data[_LEN:]:
            raise KeyStoreError("%s is damaged: refusing to sign; re-provision this meter" % path)
        return MeterKey(data[4:36], data[36:_LEN])
    priv = private_key_from_random(random_bytes(32))
    pub = yield from public_key_steps(priv)
    blob = _MAGIC + priv + pub
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob + _crc(blob))
        f.flush()
    os.rename(tmp, path)
    log("keystore: new meter key created")
    return MeterKey(priv, pub)
