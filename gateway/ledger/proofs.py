"""Anchors of meter-reading batches and their offline inclusion proofs (docs/ledger-api.md §5).

A proof chains: signed meter record -> anchor's merkle_root -> anchor tx signature -> block
tx_root -> block header hash -> validator signature. Checking it needs no network.
"""

from __future__ import annotations

from typing import Any

from gateway.ledger import blocks, canonical, keys, merkle
from gateway.ledger.errors import ProofInvalid
from sgcore import reading as sgreading

RECORD_LEN = sgreading.RECORD_LEN


def split_records(data: bytes) -> list[bytes]:
    if len(data) % RECORD_LEN:
        raise ProofInvalid(f"a batch file is a multiple of {RECORD_LEN}-byte records")
    return [data[i : i + RECORD_LEN] for i in range(0, len(data), RECORD_LEN)]


def anchor_fields(records: list[bytes]) -> dict[str, Any]:
    """The anchor body fields (merkle_root, count, ranges) describing a batch of records."""
    if not records:
        raise ProofInvalid("an anchor needs at least one record")
    parsed = [sgreading.decode(r)[0] for r in records]
    meters = sorted(p.meter_id.hex() for p in parsed)
    seqs = [p.seq for p in parsed]
    return {
        "merkle_root": merkle.root(records).hex(),
        "count": len(records),
        "meter_first": meters[0],
        "meter_last": meters[-1],
        "seq_first": min(seqs),
        "seq_last": max(seqs),
    }


def reading_proof(records: list[bytes], index: int, tx_proof: dict[str, Any]) -> dict[str, Any]:
    """Combine a batch (kept by the gateway) with the ledger's tx proof of its anchor."""
    return {
        "record": records[index].hex(),
        "index": index,
        "count": len(records),
        "path": [h.hex() for h in merkle.audit_path(records, index)],
        "tx_proof": tx_proof,
    }


def _root(data: bytes, index: int, count: int, path: list[str]) -> str | None:
    try:
        found = merkle.root_from_path(data, index, count, [bytes.fromhex(h) for h in path])
    except (ValueError, TypeError):
        return None
    return found.hex() if found else None


def verify_reading_proof(proof: dict[str, Any], validator: str) -> dict[str, Any]:
    """Check every link; returns a summary or raises ProofInvalid saying which link broke."""
    try:
        record = bytes.fromhex(proof["record"])
        txp = proof["tx_proof"]
        anchor = txp["tx"]["body"]
        sigs = txp["tx"]["sigs"]
        header = txp["header"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofInvalid(f"proof file is missing {exc}") from exc
    if anchor.get("kind") != "anchor":
        raise ProofInvalid("the transaction is not an anchor")
    if proof.get("count") != anchor.get("count"):
        raise ProofInvalid("batch size differs from the anchored count")
    if _root(record, proof["index"], proof["count"], proof["path"]) != anchor.get("merkle_root"):
        raise ProofInvalid(
            "record is not in the anchored batch (merkle path does not lead to merkle_root)"
        )
    try:
        parsed = sgreading.decode(record)[0]
    except sgreading.ReadingFormatError as exc:
        raise ProofInvalid(f"record does not decode: {exc}") from exc
    if not anchor["meter_first"] <= parsed.meter_id.hex() <= anchor["meter_last"]:
        raise ProofInvalid("record's meter is outside the anchored meter range")
    if not anchor["seq_first"] <= parsed.seq <= anchor["seq_last"]:
        raise ProofInvalid("record's sequence is outside the anchored range")
    tx_id = canonical.digest(anchor).hex()
    submitter = anchor.get("submitter", "")
    if tx_id != txp.get("tx_id") or not keys.verify_digest(
        submitter, bytes.fromhex(tx_id), sigs.get(submitter, "")
    ):
        raise ProofInvalid("anchor transaction signature does not verify")
    if _root(bytes.fromhex(tx_id), txp["index"], txp["count"], txp["path"]) != header.get(
        "tx_root"
    ):
        raise ProofInvalid("anchor is not in the block (tx path does not lead to tx_root)")
    if blocks.header_hash(header) != txp.get("hash"):
        raise ProofInvalid("block header hash mismatch")
    if header.get("validator") != validator or not keys.verify_digest(
        validator, bytes.fromhex(txp["hash"]), txp.get("signature", "")
    ):
        raise ProofInvalid("block is not signed by the given validator")
    return {
        "meter_id": parsed.meter_id.hex(),
        "seq": parsed.seq,
        "anchor_tx": tx_id,
        "height": header["height"],
        "block_hash": txp["hash"],
        "chain": header.get("chain"),
    }
