"""Blocks: headers, hashes, validator signatures and the checks that link them (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.ledger import canonical, keys, merkle
from gateway.ledger.errors import ChainInvalid
from gateway.ledger.txs import Tx

ZERO_HASH = "00" * 32
VERSION = 1


@dataclass(frozen=True)
class Block:
    header: dict[str, Any]
    hash: str
    signature: str
    txs: tuple[Tx, ...]

    @property
    def height(self) -> int:
        return int(self.header["height"])

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "hash": self.hash,
            "signature": self.signature,
            "txs": [t.to_json() for t in self.txs],
        }


def header_hash(header: dict[str, Any]) -> str:
    return canonical.digest(header).hex()


def tx_root(tx_ids: list[str]) -> str:
    return merkle.root([bytes.fromhex(i) for i in tx_ids]).hex()


def genesis_header(name: str, operator: str, validator: str, time_ms: int) -> dict[str, Any]:
    """Header of block 0; its hash is the chain id (identical on every replica)."""
    return {
        "height": 0,
        "prev_hash": ZERO_HASH,
        "tx_root": tx_root([]),
        "time_ms": time_ms,
        "validator": validator,
        "params": {"name": name, "operator": operator, "validator": validator, "version": VERSION},
    }


def genesis(name: str, operator: str, validator_key: keys.SigningKey, time_ms: int) -> Block:
    header = genesis_header(name, operator, validator_key.pubkey, time_ms)
    digest = header_hash(header)
    return Block(header, digest, validator_key.sign_digest(bytes.fromhex(digest)), ())


def seal(prev: Block, chain: str, txs: list[Tx], time_ms: int, key: keys.SigningKey) -> Block:
    """The next block after `prev`, holding `txs` (already validated), signed by the validator."""
    header = {
        "height": prev.height + 1,
        "prev_hash": prev.hash,
        "tx_root": tx_root([t.id for t in txs]),
        "time_ms": max(time_ms, int(prev.header["time_ms"])),
        "validator": key.pubkey,
        "chain": chain,
    }
    digest = header_hash(header)
    return Block(header, digest, key.sign_digest(bytes.fromhex(digest)), tuple(txs))


def check_link(block: Block, prev: Block | None, chain: str | None, validator: str) -> None:
    """Structural checks of one block against its predecessor; raises ChainInvalid."""
    h = block.header
    raw_height = h.get("height")
    height = raw_height if isinstance(raw_height, int) else -1

    def bad(reason: str) -> ChainInvalid:
        return ChainInvalid(height, reason)

    if prev is not None and height != prev.height + 1:
        raise ChainInvalid(prev.height + 1, f"missing: block {height} follows block {prev.height}")
    if header_hash(h) != block.hash:
        raise bad("header hash mismatch (header or hash edited)")
    if h.get("validator") != validator:
        raise bad("unknown validator")
    if not keys.verify_digest(validator, bytes.fromhex(block.hash), block.signature):
        raise bad("validator signature invalid")
    if tx_root([t.id for t in block.txs]) != h.get("tx_root"):
        raise bad("tx_root does not match the transactions (transactions edited)")
    if prev is None:
        if height != 0 or h.get("prev_hash") != ZERO_HASH:
            raise bad("genesis must be height 0 with a zero prev_hash")
        return
    if h.get("prev_hash") != prev.hash:
        raise bad("prev_hash does not link to the previous block")
    if h.get("chain") != chain:
        raise bad("wrong chain id")
    if not isinstance(h.get("time_ms"), int) or h["time_ms"] < prev.header["time_ms"]:
        raise bad("time goes backwards")
    if set(h) != {"height", "prev_hash", "tx_root", "time_ms", "validator", "chain"}:
        raise bad("unexpected header fields")
