"""The channel graph (it mirrors the electrical topology) and cheapest-route search. Pure.

Fees and expiries are computed backwards from the payee: a forwarding node ``u`` sending
``x`` msat on to ``v`` must itself receive ``x + fee_u(x)`` and an expiry ``cltv_delta_u`` blocks
later. Dijkstra minimises what the payer sends, over edges with enough capacity.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.errors import NoRoute, ProtocolViolation

MAX_HOPS = 20


class Edge(NamedTuple):
    """One direction of a channel (a tuple: a payer's own edges are rebuilt for every payment,
    their capacity being what it can still spend)."""

    channel_id: bytes
    src: bytes  # node id that sends over this direction
    dst: bytes
    capacity_msat: int  # what src can send (its balance for our own channels)


@dataclass(frozen=True)
class Hop:
    """One HTLC of a route: over ``channel_id`` to ``node``, carrying amount and expiry."""

    channel_id: bytes
    node: bytes
    amount_msat: int
    cltv_expiry: int


@dataclass
class ChannelGraph:
    edges: dict[tuple[bytes, bytes], Edge] = field(default_factory=dict)  # (channel, src)
    policies: dict[bytes, FeePolicy] = field(default_factory=dict)  # node id -> its grid charge
    # a node whose signed policy has not reached us (policies travel one hop: a node announces
    # its own to its peers) is taken to charge what we do: the grid's operator sets one policy
    # for its nodes. With FeePolicy()'s 6 blocks, a route over a forwarder asking 34 (a
    # 56-node grid) was refused at it: "expiry too soon"
    default_policy: FeePolicy = field(default_factory=FeePolicy)

    def add_channel(
        self, channel_id: bytes, a: bytes, b: bytes, capacity_a: int, capacity_b: int
    ) -> None:
        self.edges[(channel_id, a)] = Edge(channel_id, a, b, capacity_a)
        self.edges[(channel_id, b)] = Edge(channel_id, b, a, capacity_b)

    def remove_channel(self, channel_id: bytes) -> None:
        for key in [k for k in self.edges if k[0] == channel_id]:
            del self.edges[key]

    def set_policy(self, node: bytes, policy: FeePolicy) -> None:
        self.policies[node] = policy

    def policy(self, node: bytes) -> FeePolicy:
        return self.policies.get(node, self.default_policy)

    def find_route(
        self,
        src: bytes,
        dst: bytes,
        amount_msat: int,
        final_expiry: int,
        exclude: frozenset[bytes] = frozenset(),
    ) -> list[Hop]:
        """Cheapest route; ``final_expiry`` is the absolute expiry the payee must receive."""
        if src == dst:
            raise NoRoute("cannot pay ourselves")
        incoming: dict[bytes, list[Edge]] = {}
        for e in self.edges.values():
            if e.channel_id not in exclude:
                incoming.setdefault(e.dst, []).append(e)
        # best[node] = (amount node must receive, expiry it must receive, next edge from node)
        best: dict[bytes, tuple[int, int, Edge | None]] = {dst: (amount_msat, final_expiry, None)}
        heap = [(amount_msat, final_expiry, dst)]
        done: set[bytes] = set()
        while heap:
            amt, exp, v = heapq.heappop(heap)
            if v in done:
                continue
            done.add(v)
            if v == src:
                break
            for e in incoming.get(v, []):
                u = e.src
                if u in done or e.capacity_msat < amt:
                    continue
                if u == src:
                    need, need_exp = amt, exp
                else:
                    pol = self.policy(u)
                    need, need_exp = amt + pol.fee(amt), exp + pol.cltv_delta
                if u not in best or need < best[u][0]:
                    best[u] = (need, need_exp, e)
                    heapq.heappush(heap, (need, need_exp, u))
        if src not in best:
            raise NoRoute(f"no route to {dst.hex()[:16]} for {amount_msat} msat")
        hops: list[Hop] = []
        node = src
        while node != dst:
            edge = best[node][2]
            assert edge is not None
            amt, exp, _ = best[edge.dst]
            hops.append(Hop(edge.channel_id, edge.dst, amt, exp))
            node = edge.dst
            if len(hops) > MAX_HOPS:
                raise NoRoute("route too long")
        return hops


def encode_onion(hops: list[Hop], payment_secret: bytes = b"") -> list[bytes]:
    """Per-HTLC routing payloads: for hop i, what its receiver forwards (or accepts, if last).

    Not onion-encrypted: each payload travels over the BOLT-8 encrypted link to the next node only
    and tells it the next hop alone (documented limitation: a node sees its neighbours only).
    """
    out = []
    for i in range(len(hops)):
        if i + 1 < len(hops):
            nxt = hops[i + 1]
            p = {"c": nxt.channel_id.hex(), "n": nxt.node.hex(), "a": nxt.amount_msat}
            p["e"] = nxt.cltv_expiry
            p["r"] = [
                {"c": h.channel_id.hex(), "n": h.node.hex(), "a": h.amount_msat, "e": h.cltv_expiry}
                for h in hops[i + 2 :]
            ]
        elif type(hops[i].amount_msat) is int and type(hops[i].cltv_expiry) is int:
            # the payee's payload, one per payment: the bytes json.dumps gives, formatted
            tail = b',"s":"%s"}' % payment_secret.hex().encode() if payment_secret else b"}"
            out.append(b'{"a":%d,"e":%d' % (hops[i].amount_msat, hops[i].cltv_expiry) + tail)
            continue
        else:
            p = {"a": hops[i].amount_msat, "e": hops[i].cltv_expiry}
        if payment_secret:  # for the payee; forwarders carry it on (not onion-encrypted)
            p["s"] = payment_secret.hex()
        out.append(json.dumps(p, separators=(",", ":")).encode())
    return out


@dataclass(frozen=True)
class ForwardInstruction:
    final: bool
    amount_msat: int
    cltv_expiry: int
    channel_id: bytes = b""
    node: bytes = b""
    rest: tuple[Hop, ...] = ()
    payment_secret: bytes = b""  # final hop only: the invoice's payment secret


def decode_onion(payload: bytes) -> ForwardInstruction:
    try:
        p = json.loads(payload)
        secret = bytes.fromhex(p["s"]) if "s" in p else b""
        if "c" not in p:
            return ForwardInstruction(True, int(p["a"]), int(p["e"]), payment_secret=secret)
        rest = tuple(
            Hop(bytes.fromhex(h["c"]), bytes.fromhex(h["n"]), int(h["a"]), int(h["e"]))
            for h in p["r"]
        )
        return ForwardInstruction(
            False,
            int(p["a"]),
            int(p["e"]),
            bytes.fromhex(p["c"]),
            bytes.fromhex(p["n"]),
            rest,
            secret,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolViolation(f"malformed routing payload: {exc}") from exc


def next_payloads(instr: ForwardInstruction) -> bytes:
    """The payload to attach to the HTLC we forward (the rest of the route)."""
    hops = [Hop(instr.channel_id, instr.node, instr.amount_msat, instr.cltv_expiry), *instr.rest]
    return encode_onion(hops, instr.payment_secret)[0]
