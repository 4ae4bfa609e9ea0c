"""Two channel objects wired to each other in memory (no I/O): the harness of the channel tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from gateway.ln.channel.channel import Channel, ChannelState, secret_index
from gateway.ln.channel.commitment import sign
from gateway.ln.channel.ledger_bodies import DISPUTE_BLOCKS, digest, funding_body
from gateway.ln.codec import bolt3
from gateway.ln.node.keys import NodeKeys
from gateway.ln.node.ledger_port import MemoryLedger


def node_keys(name: str) -> NodeKeys:
    return NodeKeys(hashlib.sha256(name.encode()).digest())


def rev_hashes(keys: NodeKeys, channel_id: bytes) -> tuple[bytes, bytes]:
    seed = keys.shachain_seed(channel_id)
    return tuple(  # type: ignore[return-value]
        hashlib.sha256(bolt3.generate_from_seed(seed, secret_index(n))).digest() for n in (0, 1)
    )


def open_pair(
    ka: NodeKeys,
    kb: NodeKeys,
    amounts: tuple[int, int],
    chain: str,
    nonce: str,
    ledger=None,
    *,
    dispute_blocks: int = DISPUTE_BLOCKS,
    submit: Callable[[dict, dict], object] | None = None,
) -> tuple[Channel, Channel, bytes]:
    """Two OPEN channel ends between ka and kb (and their channel id); funded on ``ledger``
    (both parties sign channel_fund) when given, or through ``submit(body, sigs)``."""
    body = funding_body(chain, ka.node_id, kb.node_id, amounts, nonce, dispute_blocks)
    cid = digest(body)
    a, b = (
        Channel.create(
            channel_id=cid,
            me=me,
            funding_priv=k.funding_priv(cid),
            shachain_seed=k.shachain_seed(cid),
            node_ids=(ka.node_id, kb.node_id),
            chain=chain,
            node_priv=k.node_priv,
            funding_pubs=(ka.funding_pub(cid), kb.funding_pub(cid)),
            amounts=amounts,
            remote_hashes=rev_hashes(other, cid),
        )
        for me, k, other in ((0, ka, kb), (1, kb, ka))
    )
    sig_b = b.initial_sig()
    b.receive_initial_sig(*a.initial_sig())
    a.receive_initial_sig(*sig_b)
    if submit is None and ledger is not None:
        submit = ledger.submit
    if submit is not None:
        submit(body, {k.node_id.hex(): sign(k.node_priv, cid).hex() for k in (ka, kb)})
    a.set_state(ChannelState.OPEN)
    b.set_state(ChannelState.OPEN)
    return a, b, cid


def make_pair(
    amounts: tuple[int, int] = (100_000_000, 50_000_000), ledger: MemoryLedger | None = None
) -> tuple[Channel, Channel]:
    """Two OPEN channels; funded on ``ledger`` (both parties sign channel_fund) when given."""
    chain = ledger.chain if ledger else "memory"
    a, b, _ = open_pair(node_keys("alice"), node_keys("bob"), amounts, chain, "pair", ledger)
    return a, b


def run_round(proposer: Channel, acceptor: Channel) -> bool:
    """One full update round; False if the proposer had nothing to propose."""
    msg = proposer.propose()
    if msg is None:
        return False
    ack = acceptor.receive_update(msg)
    assert ack is not None
    rev = proposer.receive_ack(ack)
    acceptor.receive_revoke(rev)
    return True


def settle(a: Channel, b: Channel, preimages: dict[bytes, bytes]) -> None:
    """Run rounds until quiet; each side fulfills incoming HTLCs whose preimage it knows."""
    for _ in range(100):
        for ch in (a, b):
            for ev in ch.drain_events():
                add = getattr(ev, "add", None)
                if add is not None:
                    pre = preimages.get(add.payment_hash)
                    if pre is None:
                        ch.queue_fail(add.htlc_id, "unknown payment")
                    else:
                        ch.queue_fulfill(add.htlc_id, pre)
        if not (run_round(a, b) or run_round(b, a)) and not (a.events or b.events):
            return
    raise AssertionError("channels did not settle")
