"""sg_preimages is what a payer and the upstream hops wait for: a flush sends it ahead of the
acks, revokes and proposals queued before it, and a burst of received messages ends after it, so
its commit and its effects do not wait for the signatures of the messages behind it."""

from __future__ import annotations

import asyncio

from gateway.ln.channel import messages as m
from gateway.ln.channel import messages_wire
from gateway.ln.codec.wire import TABLE
from gateway.ln.errors import TransportError
from gateway.ln.node.peer import MAX_BURST, Peer

CID = b"\x07" * 32


class _Conn:
    """What Peer needs of a transport: messages already arrived, and a sink for sends."""

    def __init__(self, incoming: list[bytes]) -> None:
        self.incoming = list(incoming)
        self.sent: list[list[bytes]] = []

    async def receive(self) -> bytes:
        if not self.incoming:
            raise TransportError("closed")
        return self.incoming.pop(0)

    def receive_nowait(self) -> bytes | None:
        return self.incoming.pop(0) if self.incoming else None

    async def drain(self) -> None:
        return None

    def send_all(self, out: list[bytes]) -> None:
        self.sent.append(out)


def _names(raws: list[bytes]) -> list[str]:
    return [type(messages_wire.from_wire(TABLE.decode(r))).__name__ for r in raws]


def _revoke(n: int) -> m.Revoke:
    return m.Revoke(CID, n, bytes([n]) * 32, bytes([n + 1]) * 32)


def _hint(i: int) -> m.Preimages:
    return m.Preimages(CID, ((i, bytes([i]) * 32),))


def test_a_flush_sends_the_preimage_hints_first_in_the_order_they_were_queued():
    conn = _Conn([])
    commits = []
    peer = Peer(b"\x02" * 33, conn, commit=lambda: commits.append(1))
    peer.queue(_revoke(1))
    peer.queue(_hint(1))
    peer.queue(_revoke(2))
    peer.queue(_hint(2))
    peer.flush()
    assert commits == [1]  # one commit before anything leaves
    (out,) = conn.sent
    assert _names(out) == ["Preimages", "Preimages", "Revoke", "Revoke"]
    decoded = [messages_wire.from_wire(TABLE.decode(r)) for r in out]
    assert decoded == [_hint(1), _hint(2), _revoke(1), _revoke(2)]
    peer.queue(_revoke(3))  # the next flush starts afresh
    peer.queue(_hint(3))
    peer.flush()
    assert _names(conn.sent[1]) == ["Preimages", "Revoke"]


def _bursts(messages, end_on_hint: bool, commits: list | None = None) -> list[list[str]]:
    """The bursts Peer.run hands to the node (what is handled before each settle)."""
    conn = _Conn([messages_wire.to_wire(x) for x in messages])
    seen: list[list[str]] = []
    burst: list[str] = []

    async def dispatch(peer: Peer, msg) -> None:
        burst.append(type(msg).__name__)
        if isinstance(msg, m.Preimages) and end_on_hint:
            peer.end_burst = True  # as a forwarder's handler does

    def settle() -> None:
        seen.append(list(burst))
        burst.clear()

    peer = Peer(b"\x02" * 33, conn, commit=lambda: None)
    asyncio.run(peer.run(dispatch, settle))
    return seen


def test_a_forwarders_hint_ends_its_burst():
    msgs = (_revoke(1), _hint(1), _revoke(2), _revoke(3))
    assert _bursts(msgs, end_on_hint=True) == [["Revoke", "Preimages"], ["Revoke", "Revoke"]]


def test_a_hint_that_does_not_end_the_burst_is_handled_with_what_follows():
    """A payer's hint: it commits and answers with the fulfil batch behind it (one commit;
    its next request would otherwise wait for that batch's handling and commit)."""
    msgs = (_revoke(1), _hint(1), _revoke(2), _hint(2), _revoke(3))
    assert _bursts(msgs, end_on_hint=False) == [
        ["Revoke", "Preimages", "Revoke", "Preimages", "Revoke"]
    ]


def test_a_burst_is_still_at_most_max_burst_messages():
    msgs = [_hint(i % 250) for i in range(MAX_BURST + 5)]
    sizes = [len(b) for b in _bursts(msgs, end_on_hint=False)]
    assert sizes == [MAX_BURST, 5]


def test_only_a_hint_for_an_htlc_we_forwarded_ends_the_burst(tmp_path):
    """The node's handler: a forwarder hints upstream at once; a payer's hint does not end
    the burst (nothing waits upstream; its answer goes with the batch behind it)."""
    import hashlib

    from gateway.ln.channel.htlc import FeePolicy
    from gateway.ln.node.ledger_port import MemoryLedger
    from gateway.ln.node.node import Node
    from hil_tests.gateway.ln.channel_pair import node_keys, open_pair

    ledger = MemoryLedger()
    node = Node(tmp_path / "bob", ledger, FeePolicy())
    carol = node_keys("carol")
    for k in (carol, node.keys):
        ledger.deposit(k.node_id, 10**9)
    ours, theirs, cid = open_pair(node.keys, carol, (10**8, 10**8), ledger.chain, "bc", ledger)
    node.switch.channels[cid] = ours
    pres = [bytes([i]) * 32 for i in (1, 2)]
    for pre in pres:
        ours.queue_add(1000, hashlib.sha256(pre).digest(), 500)
    theirs.receive_update(ours.propose())
    peer = Peer(carol.node_id, _Conn([]), commit=lambda: None)
    node.switch.links[(cid, 1)] = (b"\x09" * 32, 7)  # HTLC 1 was forwarded from upstream
    asyncio.run(node.on_Preimages(peer, m.Preimages(cid, ((0, pres[0]),))))
    assert not peer.end_burst  # our own payment's
    asyncio.run(node.on_Preimages(peer, m.Preimages(cid, ((1, pres[1]),))))
    assert peer.end_burst
    node.store.close()
