"""sg_preimages is what a payer and the upstream hops wait for: a flush sends it ahead of the
acks, revokes and proposals queued before it, and a burst of received messages ends after it, so
its commit and its effects do not wait for the signatures of the messages behind it."""

from __future__ import annotations

import asyncio

from gateway.ln.channel import messages as m
from gateway.ln.channel import messages_wire
from gateway.ln.codec.wire import TABLE
from gateway.ln.errors import TransportError
from gateway.ln.node.peer import Peer

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


def test_a_burst_ends_after_a_preimage_hint():
    wire = [messages_wire.to_wire(x) for x in (_revoke(1), _hint(1), _revoke(2), _revoke(3))]
    conn = _Conn(wire)
    seen: list[list[str]] = []
    burst: list[str] = []

    async def dispatch(peer: Peer, msg) -> None:
        burst.append(type(msg).__name__)

    def settle() -> None:
        seen.append(list(burst))
        burst.clear()

    peer = Peer(b"\x02" * 33, conn, commit=lambda: None)
    asyncio.run(peer.run(dispatch, settle))
    assert seen == [["Revoke", "Preimages"], ["Revoke", "Revoke"]]
