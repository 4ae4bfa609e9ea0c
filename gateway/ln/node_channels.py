"""The channel lifecycle part of the node: opening, gossip, closing, and watching the ledger.

A mixin of `gateway.ln.node.Node` (kept apart so that each module stays small); it uses the
node's store, switch, peers and ledger, and its `_after()` commit-then-send step.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import struct
from typing import TYPE_CHECKING, Any

from gateway.ln import bolt3
from gateway.ln import channel_msgs as m
from gateway.ln.channel import Channel, ChannelState, secret_index
from gateway.ln.channel_errors import LedgerPortError, ProtocolViolation
from gateway.ln.commitment import sign, verify
from gateway.ln.htlc import FeePolicy
from gateway.ln.keys import NodeKeys
from gateway.ln.ledger_port import (
    DISPUTE_BLOCKS,
    LedgerPort,
    close_body,
    digest,
    force_close_body,
    funding_body,
    penalty_body,
    settle_body,
)
from gateway.ln.peer import Peer
from gateway.ln.store import Store
from gateway.ln.switch import Switch
from gateway.ln.wire import Message

log = logging.getLogger("gateway.ln.node")
LIVE = (ChannelState.OPEN, ChannelState.SHUTDOWN)
WATCHED = (
    ChannelState.OPEN,
    ChannelState.SHUTDOWN,
    ChannelState.CLOSING,
    ChannelState.FORCE_CLOSING,
)


def _policy_digest(node: bytes, p: FeePolicy) -> bytes:
    packed = struct.pack(">QIH", p.base_msat, p.ppm, p.cltv_delta)
    return hashlib.sha256(b"sgrid/policy/v1" + node + packed).digest()


class ChannelLifecycle:
    keys: NodeKeys
    node_id: bytes
    ledger: LedgerPort
    store: Store
    switch: Switch
    peers: dict[bytes, Peer]
    addresses: dict[bytes, tuple[str, int]]
    opening: dict[bytes, dict[str, Any]]
    height: int
    accept_max_msat: int

    if TYPE_CHECKING:

        def commit(self) -> None: ...
        def _after(self) -> None: ...
        def _wake(self, key: bytes, value: Any) -> None: ...
        async def wait_for(self, key: bytes, timeout: float) -> Any: ...
        def _channel(self, cid: bytes, peer: Peer) -> Channel: ...
        def _channels_with(self, nid: bytes) -> list[Channel]: ...
        async def connect(self, host: str, port: int, node_id: bytes) -> None: ...

    # --- opening -------------------------------------------------------------------------------
    def _new_channel(
        self,
        cid: bytes,
        me: int,
        peer_id: bytes,
        amounts: tuple[int, int],
        funding_pubs: tuple[bytes, bytes],
        remote_hashes: tuple[bytes, bytes],
    ) -> Channel:
        ids = (self.node_id, peer_id) if me == 0 else (peer_id, self.node_id)
        ch = Channel.create(
            channel_id=cid,
            me=me,
            funding_priv=self.keys.funding_priv(cid),
            shachain_seed=self.keys.shachain_seed(cid),
            node_ids=ids,
            chain=self.ledger.chain,
            node_priv=self.keys.node_priv,
            funding_pubs=funding_pubs,
            amounts=amounts,
            remote_hashes=remote_hashes,
        )
        ch.on_persist = self.store.mark
        return ch

    def _local_hashes(self, cid: bytes) -> tuple[bytes, bytes]:
        seed = self.keys.shachain_seed(cid)
        return tuple(  # type: ignore[return-value]
            hashlib.sha256(bolt3.generate_from_seed(seed, secret_index(n))).digest() for n in (0, 1)
        )

    async def open_channel(
        self, peer_id: bytes, amount: int, push: int = 0, timeout: float = 20
    ) -> bytes:
        peer = self.peers.get(peer_id)
        if peer is None:
            raise LedgerPortError("peer_offline", "connect to the peer first")
        nonce = secrets.token_hex(8)
        body = funding_body(
            self.ledger.chain, self.node_id, peer_id, (amount, push), nonce, DISPUTE_BLOCKS
        )
        cid = digest(body)
        self.opening[cid] = body
        peer.queue(
            m.OpenChannel(
                cid,
                nonce,
                DISPUTE_BLOCKS,
                (amount, push),
                self.keys.funding_pub(cid),
                self._local_hashes(cid),
            )
        )
        peer.flush()
        await self.wait_for(cid, timeout)
        return cid

    async def on_OpenChannel(self, peer: Peer, msg: m.OpenChannel) -> None:
        # our policy, not the opener's: how much of our balance we lock, how long disputes last
        if msg.amounts[1] > self.accept_max_msat:
            raise ProtocolViolation(
                f"the opener asks us to commit {msg.amounts[1]} msat; we accept at most "
                f"{self.accept_max_msat}"
            )
        if msg.dispute_blocks < DISPUTE_BLOCKS:
            raise ProtocolViolation(
                f"dispute window {msg.dispute_blocks} < {DISPUTE_BLOCKS} blocks"
            )
        body = funding_body(
            self.ledger.chain,
            peer.node_id,
            self.node_id,
            msg.amounts,
            msg.nonce,
            msg.dispute_blocks,
        )
        if digest(body) != msg.channel_id or msg.channel_id in self.switch.channels:
            raise ProtocolViolation("channel id is not the digest of the funding body")
        ch = self._new_channel(
            msg.channel_id,
            1,
            peer.node_id,
            msg.amounts,
            (msg.funding_pub, self.keys.funding_pub(msg.channel_id)),
            msg.rev_hashes,
        )
        ch.extra["funding"] = body
        self.switch.channels[ch.channel_id] = ch
        self.store.mark(ch)
        sig, lsig = ch.initial_sig()
        peer.queue(
            m.AcceptChannel(
                ch.channel_id,
                self.keys.funding_pub(ch.channel_id),
                self._local_hashes(ch.channel_id),
                sig,
                lsig,
            )
        )

    async def on_AcceptChannel(self, peer: Peer, msg: m.AcceptChannel) -> None:
        body = self.opening.pop(msg.channel_id, None)
        if body is None:
            raise ProtocolViolation("accept for a channel we did not open")
        amounts = (body["amount_a_msat"], body["amount_b_msat"])
        ch = self._new_channel(
            msg.channel_id,
            0,
            peer.node_id,
            amounts,
            (self.keys.funding_pub(msg.channel_id), msg.funding_pub),
            msg.rev_hashes,
        )
        ch.extra["funding"] = body
        ch.receive_initial_sig(msg.sig, msg.ledger_sig)
        self.switch.channels[ch.channel_id] = ch
        sig, lsig = ch.initial_sig()
        peer.queue_named(
            "sg_funding_signed",
            channel_id=ch.channel_id,
            sig=sig,
            ledger_sig=lsig,
            funding_sig=sign(self.keys.node_priv, digest(body)),
        )

    async def on_sg_funding_signed(self, peer: Peer, msg: Message) -> None:
        ch = self._channel(msg["channel_id"], peer)
        ch.receive_initial_sig(msg["sig"], msg["ledger_sig"])
        body = ch.extra["funding"]
        mine = sign(self.keys.node_priv, digest(body))
        if not verify(peer.node_id, digest(body), msg["funding_sig"]):
            raise ProtocolViolation("bad funding signature")
        ch.extra["funding_sigs"] = {
            peer.node_id.hex(): msg["funding_sig"].hex(),
            self.node_id.hex(): mine.hex(),
        }
        self.commit()  # both commitment-0 signatures are safe before money moves
        try:
            self.ledger.submit(body, ch.extra["funding_sigs"])
        except LedgerPortError as exc:
            log.warning("funding %s refused: %s", ch.short_id, exc)
            ch.set_state(ChannelState.CLOSED)
            return
        self._opened(ch)
        peer.queue_named("sg_channel_ready", channel_id=ch.channel_id)

    async def on_sg_channel_ready(self, peer: Peer, msg: Message) -> None:
        ch = self._channel(msg["channel_id"], peer)
        view = self.ledger.channel(ch.channel_id)
        if ch.state == ChannelState.FUNDING and view is not None and view.status == "open":
            self._opened(ch)

    def _opened(self, ch: Channel) -> None:
        ch.set_state(ChannelState.OPEN)
        self._announce_local(ch)
        for p in self.peers.values():
            self._send_graph(p)
        self._wake(ch.channel_id, ch)

    # --- gossip: channels mirror the grid; each node announces its grid charge ---------------------
    def _announce_local(self, ch: Channel) -> None:
        a, b = ch.node_ids
        self.switch.graph.add_channel(
            ch.channel_id, a, b, ch.latest.balances[0], ch.latest.balances[1]
        )

    def _send_graph(self, peer: Peer) -> None:
        seen: set[bytes] = set()
        for (cid, _src), e in self.switch.graph.edges.items():
            if cid in seen:
                continue
            seen.add(cid)
            a, b = sorted((e.src, e.dst))
            peer.queue_named("sg_channel_announce", channel_id=cid, node_a=a, node_b=b)
        p = self.switch.policy
        peer.queue_named(
            "sg_node_policy",
            node=self.node_id,
            base_msat=p.base_msat,
            ppm=p.ppm,
            cltv_delta=p.cltv_delta,
            sig=sign(self.keys.node_priv, _policy_digest(self.node_id, p)),
        )

    async def on_sg_channel_announce(self, peer: Peer, msg: Message) -> None:
        cid = msg["channel_id"]
        if any(k[0] == cid for k in self.switch.graph.edges):
            return
        view = self.ledger.channel(cid)
        if (
            view is None
            or view.status != "open"
            or {view.a, view.b} != {msg["node_a"].hex(), msg["node_b"].hex()}
        ):
            return  # not a channel the ledger knows: ignore
        self.switch.graph.add_channel(
            cid,
            bytes.fromhex(view.a),
            bytes.fromhex(view.b),
            view.capacity_msat,
            view.capacity_msat,
        )

    async def on_sg_node_policy(self, peer: Peer, msg: Message) -> None:
        pol = FeePolicy(msg["base_msat"], msg["ppm"], msg["cltv_delta"])
        if msg["node"] != self.node_id and verify(
            msg["node"], _policy_digest(msg["node"], pol), msg["sig"]
        ):
            self.switch.graph.set_policy(msg["node"], pol)

    # --- closing -------------------------------------------------------------------------------
    async def close_channel(self, cid: bytes, force: bool, timeout: float = 20) -> None:
        ch = self.switch.channels[cid]
        if force:
            self._force_close(ch)
            self._after()
            return
        self.switch.handle(ch.shutdown(), self.height)
        peer = self.peers.get(ch.node_ids[ch.remote])
        if peer is None:
            raise LedgerPortError("peer_offline", "cooperative close needs the peer; use --force")
        peer.queue(m.Shutdown(cid))
        self._after()
        await self.wait_for(b"closed" + cid, timeout)

    def _force_close(self, ch: Channel) -> None:
        state, sig = ch.force_close()
        self.commit()
        body = force_close_body(self.ledger.chain, state, sig)
        d = digest(body)
        self.ledger.submit(body, {self.node_id.hex(): sign(self.keys.node_priv, d).hex()})
        ch.extra["published"] = state["number"]
        self.store.mark(ch)
        self.switch.on_force_closed(ch.channel_id)
        log.warning("channel %s force-closed at commitment %d", ch.short_id, state["number"])

    async def on_Shutdown(self, peer: Peer, msg: m.Shutdown) -> None:
        ch = self._channel(msg.channel_id, peer)
        if ch.state == ChannelState.OPEN:
            self.switch.handle(ch.shutdown(), self.height)
            peer.queue(m.Shutdown(ch.channel_id))

    async def on_ClosingSigned(self, peer: Peer, msg: m.ClosingSigned) -> None:
        ch = self._channel(msg.channel_id, peer)
        if ch.state == ChannelState.CLOSED:
            return
        ch.receive_closing_signed(msg)
        if ch.me == 1:
            peer.queue(ch.closing_signed())
        self.commit()
        sigs = {ch.node_ids[i].hex(): ch.closing_sigs[i].hex() for i in (0, 1)}
        self.ledger.submit(close_body(self.ledger.chain, ch.channel_id, ch.latest.balances), sigs)
        self._closed(ch)

    def _closed(self, ch: Channel) -> None:
        ch.mark_closed()
        self.switch.graph.remove_channel(ch.channel_id)
        self._wake(b"closed" + ch.channel_id, ch)

    # --- time and the ledger ---------------------------------------------------------------------
    async def _ticker(self, tick_s: float) -> None:
        while True:
            await asyncio.sleep(tick_s)
            try:
                self.tick()
            except LedgerPortError as exc:
                log.warning("ledger: %s", exc)
            except Exception:  # the ticker is the node's heartbeat: it must never stop
                log.exception("tick failed")
            await self._reconnect()

    async def _reconnect(self) -> None:
        for nid, (host, port) in list(self.addresses.items()):
            wanted = any(c.state in LIVE for c in self._channels_with(nid))
            if wanted and nid not in self.peers:
                try:
                    await self.connect(host, port, nid)
                except Exception as exc:  # noqa: BLE001 - any failure: retry next tick
                    log.debug("reconnect %s failed: %s", nid.hex()[:12], exc)

    def tick(self) -> None:
        self.height = self.ledger.height()
        for cid in self.switch.check_timeouts(self.height):
            self._force_close(self.switch.channels[cid])
        for ch in list(self.switch.channels.values()):
            try:
                self._tick_channel(ch)
            except Exception:  # one channel's trouble must not stop the others being watched
                log.exception("channel %s: tick failed", ch.short_id)
        self._after()
        self.commit()

    def _tick_channel(self, ch: Channel) -> None:
        if ch.state == ChannelState.FUNDING:
            view = self.ledger.channel(ch.channel_id)
            if view is None and ch.me == 1 and "funding_sigs" in ch.extra:
                # we crashed between storing both signatures and submitting: submit again
                self.ledger.submit(ch.extra["funding"], ch.extra["funding_sigs"])
                view = self.ledger.channel(ch.channel_id)
            if view is not None and view.status == "open":
                self._opened(ch)
        elif ch.state in WATCHED:
            self._watch(ch)

    def _watch(self, ch: Channel) -> None:
        view = self.ledger.channel(ch.channel_id)
        if view is None:
            return
        me = "ab"[ch.me]
        if view.status in ("closed", "penalized"):
            if ch.state in LIVE:
                self.switch.on_force_closed(ch.channel_id)
            if ch.state in (ChannelState.OPEN, ChannelState.SHUTDOWN):
                # the peer closed it on the ledger (and it settled) while we were away
                ch.set_state(ChannelState.FORCE_CLOSING)
            self._closed(ch)
            return
        if view.status != "closing" or view.state is None or view.close_height is None:
            return
        if view.state["holder"] != self.node_id.hex():
            first = ch.state != ChannelState.FORCE_CLOSING
            secret = ch.on_remote_published(view.state["number"])
            if first:
                self.switch.on_force_closed(ch.channel_id)
            if secret is not None:
                self._submit_signed(penalty_body(self.ledger.chain, ch.channel_id, me, secret))
                log.warning("channel %s: penalty claimed, the whole channel is ours", ch.short_id)
                self._closed(ch)
                return
        if self.height > view.close_height + view.dispute_blocks:
            self._submit_signed(settle_body(self.ledger.chain, ch.channel_id, me))
            self._closed(ch)

    def _submit_signed(self, body: dict[str, Any]) -> None:
        self.ledger.submit(
            body, {self.node_id.hex(): sign(self.keys.node_priv, digest(body)).hex()}
        )
