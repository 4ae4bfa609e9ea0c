"""Node identity key and per-channel keys, all derived from one 32-byte node seed.

Derivation (documented in docs/channels.md, stable: changing it loses access to funds):

    node identity key   = HMAC-SHA256(seed, b"node")
    channel key         = HMAC-SHA256(seed, b"channel" || channel_id || purpose)

``purpose`` is ``b"funding"`` (signs commitments and closes) or ``b"shachain"`` (the BOLT-3
per-commitment seed). If an output is not a valid secp256k1 scalar (probability ~2^-128) a
counter byte is appended until it is. Back up the seed file only: everything else is derived.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey

from gateway.ln.errors import KeyFileError

log = logging.getLogger(__name__)

SEED_BYTES = 32
SEED_FILE = "node_seed"
FUNDING = b"funding"
SHACHAIN = b"shachain"
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _scalar(seed: bytes, label: bytes) -> bytes:
    for counter in range(256):
        tag = label if counter == 0 else label + bytes([counter])
        out = hmac.new(seed, tag, hashlib.sha256).digest()
        if 0 < int.from_bytes(out, "big") < _ORDER:
            return out
    raise KeyFileError("no valid scalar derived")  # pragma: no cover - astronomically unlikely


@dataclass(frozen=True)
class NodeKeys:
    """All keys of one gateway node, derived from its seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise KeyFileError(f"node seed must be {SEED_BYTES} bytes, got {len(self.seed)}")

    @property
    def node_priv(self) -> bytes:
        return _scalar(self.seed, b"node")

    @property
    def node_id(self) -> bytes:
        """33-byte compressed public key: the node's identity on the wire and in invoices."""
        return PrivateKey(self.node_priv).public_key.format(compressed=True)

    def channel_secret(self, channel_id: bytes, purpose: bytes) -> bytes:
        return _scalar(self.seed, b"channel" + channel_id + purpose)

    def funding_priv(self, channel_id: bytes) -> bytes:
        return self.channel_secret(channel_id, FUNDING)

    def funding_pub(self, channel_id: bytes) -> bytes:
        return PrivateKey(self.funding_priv(channel_id)).public_key.format(compressed=True)

    def shachain_seed(self, channel_id: bytes) -> bytes:
        return self.channel_secret(channel_id, SHACHAIN)


def write_seed(path: Path, seed: bytes) -> None:
    """Write a seed file with mode 0600 atomically (restore from backup uses this too)."""
    if len(seed) != SEED_BYTES:
        raise KeyFileError(f"seed must be {SEED_BYTES} bytes")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, seed.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_seed(path: Path) -> bytes:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path} has mode {mode:o}: must be 0600 (chmod 600 {path})")
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a hex seed") from exc
    if len(seed) != SEED_BYTES:
        raise KeyFileError(f"{path}: seed must be {SEED_BYTES} bytes")
    return seed


def load_or_create(data_dir: Path) -> NodeKeys:
    """The node's keys from ``data_dir/node_seed``, creating a fresh random seed the first time."""
    path = data_dir / SEED_FILE
    if not path.exists():
        write_seed(path, secrets.token_bytes(SEED_BYTES))
        log.info("created node seed %s", path)
    return NodeKeys(read_seed(path))


def restore(data_dir: Path, seed_hex: str) -> NodeKeys:
    """Restore a node seed from its hex backup. Refuses to overwrite a different existing seed."""
    try:
        seed = bytes.fromhex(seed_hex.strip())
    except ValueError as exc:
        raise KeyFileError("backup is not hex") from exc
    path = data_dir / SEED_FILE
    if path.exists() and read_seed(path) != seed:
        raise KeyFileError(f"{path} holds a different seed; move it away first")
    write_seed(path, seed)
    return NodeKeys(seed)
