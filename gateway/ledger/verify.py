"""Re-validate a whole stored chain from genesis: hashes, links, signatures, rules, conservation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.ledger import blocks, rules
from gateway.ledger.blocks import Block
from gateway.ledger.errors import ChainInvalid, StorageError, TxRejected
from gateway.ledger.state import LedgerState


@dataclass(frozen=True)
class VerifyReport:
    height: int
    transactions: int
    tip_hash: str


def verify_chain(
    chain: Iterable[Block], name: str, operator: str, validator: str, genesis_time_ms: int
) -> VerifyReport:
    """Raises ChainInvalid naming the first bad block; the expected genesis comes from the config."""
    expected = blocks.header_hash(blocks.genesis_header(name, operator, validator, genesis_time_ms))
    prev: Block | None = None
    state = LedgerState.genesis(expected, operator, validator)
    count = 0
    try:
        for block in chain:
            blocks.check_link(block, prev, expected, validator)
            if prev is None and block.hash != expected:
                raise ChainInvalid(
                    0, "genesis differs from the configuration (operator, validator, name or time)"
                )
            for index, tx in enumerate(block.txs):
                try:
                    rules.apply(state, tx, block.height)
                except TxRejected as exc:
                    raise ChainInvalid(
                        block.height, f"tx {index} ({tx.id[:16]}...) invalid: {exc}"
                    ) from exc
            state.height = block.height
            problem = state.conservation_error()
            if problem:
                raise ChainInvalid(block.height, f"money not conserved: {problem}")
            count += len(block.txs)
            prev = block
    except StorageError as exc:
        raise ChainInvalid(prev.height + 1 if prev is not None else 0, str(exc)) from exc
    if prev is None:
        raise ChainInvalid(0, "no genesis block")
    return VerifyReport(prev.height, count, prev.hash)
