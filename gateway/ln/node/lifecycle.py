"""The channel lifecycle part of the node: opening and closing channels with a peer.

A component of `gateway.ln.node.node.Node`, handed the node's core (store, switch, peers, ledger)
and the gossip component; the node dispatches the peer messages named ``on_<message>`` here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from gateway.ln.channel import data_loss
from gateway.ln.channel import messages as m
from gateway.ln.channel.channel import Channel, ChannelState, secret_index
from gateway.ln.channel.commitment import sign, verify
from gateway.ln.channel.ledger_bodies import (
    DISPUTE_BLOCKS,
    close_body,
    digest,
    force_close_body,
    funding_body,
)
from gateway.ln.codec import bolt3
from gateway.ln.codec.wire import Message
from gateway.ln.errors import ChannelRefused, LedgerPortError, ProtocolViolation
from gateway.ln.node.core import NodeCore
from gateway.ln.node.gossip import Gossip
from gateway.ln.node.ledger_port import Signed
from gateway.ln.node.peer import Peer

log = logging.getLogger("gateway.ln.node")
ERROR_TEXT_MAX = 200  # bytes of reason in the BOLT #1 error we send for a refused open


class ChannelLifecycle:
    def __init__(self, core: NodeCore, gossip: Gossip) -> None:
        self.core = core
        self.gossip = gossip

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
        ids = (self.core.node_id, peer_id) if me == 0 else (peer_id, self.core.node_id)
        ch = Channel.create(
            channel_id=cid,
            me=me,
            funding_priv=self.core.keys.funding_priv(cid),
            shachain_seed=self.core.keys.shachain_seed(cid),
            node_ids=ids,
            chain=self.core.ledger.chain,
            node_priv=self.core.keys.node_priv,
            funding_pubs=funding_pubs,
            amounts=amounts,
            remote_hashes=remote_hashes,
        )
        ch.on_persist = self.core.store.mark
        return ch

    def _local_hashes(self, cid: bytes) -> tuple[bytes, bytes]:
        seed = self.core.keys.shachain_seed(cid)
        return tuple(  # type: ignore[return-value]
            hashlib.sha256(bolt3.generate_from_seed(seed, secret_index(n))).digest() for n in (0, 1)
        )

    async def open_channel(
        self, peer_id: bytes, amount: int, push: int = 0, timeout: float = 20
    ) -> bytes:
        peer = self.core.peers.get(peer_id)
        if peer is None:
            raise LedgerPortError("peer_offline", "connect to the peer first")
        nonce = secrets.token_hex(8)
        body = funding_body(
            self.core.ledger.chain,
            self.core.node_id,
            peer_id,
            (amount, push),
            nonce,
            DISPUTE_BLOCKS,
        )
        cid = digest(body)
        self.core.opening[cid] = body
        peer.queue(
            m.OpenChannel(
                cid,
                nonce,
                DISPUTE_BLOCKS,
                (amount, push),
                self.core.keys.funding_pub(cid),
                self._local_hashes(cid),
            )
        )
        peer.flush()
        await self.core.wait_for(cid, timeout)
        return cid

    async def on_OpenChannel(self, peer: Peer, msg: m.OpenChannel) -> None:
        try:
            body = self._check_open(peer, msg)
        except ProtocolViolation as exc:
            # BOLT #1: an error naming the channel; the opener stops waiting for our accept
            reason = str(exc).encode()[:ERROR_TEXT_MAX]
            peer.queue_named("error", channel_id=msg.channel_id, data=reason)
            peer.flush()
            raise
        self._accept(peer, msg, body)

    def _check_open(self, peer: Peer, msg: m.OpenChannel) -> dict[str, Any]:
        """The channel's funding body, if we accept the open; ProtocolViolation if not."""
        # our policy, not the opener's: how much of our balance we lock, how long disputes last
        if msg.amounts[1] > self.core.accept_max_msat:
            raise ProtocolViolation(
                f"the opener asks us to commit {msg.amounts[1]} msat; we accept at most "
                f"{self.core.accept_max_msat}"
            )
        if msg.dispute_blocks < DISPUTE_BLOCKS:
            raise ProtocolViolation(
                f"dispute window {msg.dispute_blocks} < {DISPUTE_BLOCKS} blocks"
            )
        body = funding_body(
            self.core.ledger.chain,
            peer.node_id,
            self.core.node_id,
            msg.amounts,
            msg.nonce,
            msg.dispute_blocks,
        )
        if digest(body) != msg.channel_id or msg.channel_id in self.core.switch.channels:
            raise ProtocolViolation("channel id is not the digest of the funding body")
        return body

    def _accept(self, peer: Peer, msg: m.OpenChannel, body: dict[str, Any]) -> None:
        ch = self._new_channel(
            msg.channel_id,
            1,
            peer.node_id,
            msg.amounts,
            (msg.funding_pub, self.core.keys.funding_pub(msg.channel_id)),
            msg.rev_hashes,
        )
        ch.extra["funding"] = body
        self.core.switch.channels[ch.channel_id] = ch
        self.core.store.mark(ch)
        sig, lsig = ch.initial_sig()
        peer.queue(
            m.AcceptChannel(
                ch.channel_id,
                self.core.keys.funding_pub(ch.channel_id),
                self._local_hashes(ch.channel_id),
                sig,
                lsig,
            )
        )

    async def on_error(self, peer: Peer, msg: Message) -> None:
        """A BOLT #1 error from the peer. For a channel we are opening with it, the open fails now
        (not after open_channel's timeout); any other error is only logged."""
        cid, text = msg["channel_id"], msg["data"][:ERROR_TEXT_MAX].decode(errors="replace")
        body = self.core.opening.get(cid)
        if body is not None and body["b"] == peer.node_id.hex():
            del self.core.opening[cid]
            log.warning("peer %s refused channel %s: %s", peer.short, cid.hex()[:16], text)
            self.core.fail(cid, ChannelRefused(f"the peer refused the channel: {text}"))
            return
        log.info("peer %s: error for %s: %s", peer.short, cid.hex()[:16], text)

    async def on_AcceptChannel(self, peer: Peer, msg: m.AcceptChannel) -> None:
        body = self.core.opening.pop(msg.channel_id, None)
        if body is None:
            raise ProtocolViolation("accept for a channel we did not open")
        amounts = (body["amount_a_msat"], body["amount_b_msat"])
        ch = self._new_channel(
            msg.channel_id,
            0,
            peer.node_id,
            amounts,
            (self.core.keys.funding_pub(msg.channel_id), msg.funding_pub),
            msg.rev_hashes,
        )
        ch.extra["funding"] = body
        ch.receive_initial_sig(msg.sig, msg.ledger_sig)
        self.core.switch.channels[ch.channel_id] = ch
        sig, lsig = ch.initial_sig()
        peer.queue_named(
            "sg_funding_signed",
            channel_id=ch.channel_id,
            sig=sig,
            ledger_sig=lsig,
            funding_sig=sign(self.core.keys.node_priv, digest(body)),
        )

    async def on_sg_funding_signed(self, peer: Peer, msg: Message) -> None:
        ch = self.core.channel(msg["channel_id"], peer)
        ch.receive_initial_sig(msg["sig"], msg["ledger_sig"])
        body = ch.extra["funding"]
        mine = sign(self.core.keys.node_priv, digest(body))
        if not verify(peer.node_id, digest(body), msg["funding_sig"]):
            raise ProtocolViolation("bad funding signature")
        ch.extra["funding_sigs"] = {
            peer.node_id.hex(): msg["funding_sig"].hex(),
            self.core.node_id.hex(): mine.hex(),
        }
        self.core.commit()  # both commitment-0 signatures are safe before money moves
        self._in_task(self._submit_funding(ch, body))

    def _in_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a handler's ledger submission or read in a task of its own, then react as a
        handler ends (`after`): it waits for a block (a slow ledger: its timeout), and neither
        the node nor the rest of this peer's messages must wait with it."""

        async def run() -> None:
            try:
                await coro
            finally:
                self.core.after()

        self.core.keep(asyncio.create_task(run()))

    async def _submit_funding(self, ch: Channel, body: dict[str, Any]) -> None:
        try:  # the watch may submit it too meanwhile (after a restart): the same tx, one answer
            await self.core.ledger_call(self.core.ledger.submit, body, ch.extra["funding_sigs"])
        except LedgerPortError as exc:
            self.funding_refused(ch, exc)
            return
        if ch.state == ChannelState.FUNDING:  # not opened by the watch while we waited
            self.opened(ch)
        peer = self.core.peers.get(ch.node_ids[ch.remote])
        if peer is not None:  # else the peer's watch sees the funding on the ledger
            peer.queue_named("sg_channel_ready", channel_id=ch.channel_id)

    def funding_refused(self, ch: Channel, exc: LedgerPortError) -> None:
        """The funding's submission failed. Undecided (the ledger slow or away), it may still
        commit: the channel stays FUNDING, the watch submits it again every tick. Refused by
        the ledger's rules, it never will: closed."""
        if exc.undecided:
            log.warning("funding %s not committed (%s); retrying", ch.short_id, exc)
        elif ch.state == ChannelState.FUNDING:
            log.warning("funding %s refused: %s", ch.short_id, exc)
            ch.set_state(ChannelState.CLOSED)

    async def on_sg_channel_ready(self, peer: Peer, msg: Message) -> None:
        ch = self.core.channel(msg["channel_id"], peer)
        if ch.state == ChannelState.FUNDING:
            self._in_task(self._open_if_funded(ch))

    async def _open_if_funded(self, ch: Channel) -> None:
        view = await self.core.ledger_call(self.core.ledger.channel, ch.channel_id)
        if ch.state == ChannelState.FUNDING and view is not None and view.status == "open":
            self.opened(ch)

    def opened(self, ch: Channel) -> None:
        ch.set_state(ChannelState.OPEN)
        self.core.reestablished.add(ch.channel_id)  # opened in this run: no backup's state
        self.gossip.announce_local(ch)
        for p in self.core.peers.values():
            self.gossip.send_graph(p)
        self.core.wake(ch.channel_id, ch)

    # --- closing -------------------------------------------------------------------------------
    async def close_channel(self, cid: bytes, force: bool, timeout: float = 20) -> None:
        ch = self.core.switch.channels[cid]
        if force:
            await self.force_close(ch)
            self.core.after()
            return
        self.core.switch.handle(ch.shutdown(), self.core.height)
        peer = self.core.peers.get(ch.node_ids[ch.remote])
        if peer is None:
            raise LedgerPortError("peer_offline", "cooperative close needs the peer; use --force")
        peer.queue(m.Shutdown(cid))
        self.core.after()
        await self.core.wait_for(b"closed" + cid, timeout)

    async def force_close(self, ch: Channel) -> None:
        """Publish our latest state. The signed body is stored first, and the channel takes
        no update from then on (FORCE_CLOSING), while the submission waits for its block; one
        that fails is retried every tick until it commits (watch.py). Our HTLCs are unwound,
        or left to their HTLC outputs, once the ledger shows the published state. Never a
        state the peer proved stale (`behind`): that one is revoked, the ledger would give the
        peer it all."""
        signed = self.sign_force_close(ch)
        (refused,) = await self.core.ledger_call(self.core.ledger.submit_many, [signed])
        self.force_close_submitted(ch, refused)

    def sign_force_close(self, ch: Channel) -> Signed:
        """`force_close` up to its submission: the signed body, stored (the watch submits
        the force closes of one tick together)."""
        if "behind" in ch.extra:
            raise ChannelRefused(
                f"channel {ch.short_id}: our state (commitment {ch.latest.number}) is stale, "
                f"the peer is at {ch.extra['behind']['peer_latest']} (restored from an old "
                "backup?): publishing it would lose the channel; the peer was asked to close"
            )
        state, sig = ch.force_close()
        body = force_close_body(self.core.ledger.chain, state, sig)
        sigs = {self.core.node_id.hex(): sign(self.core.keys.node_priv, digest(body)).hex()}
        ch.extra["force_close"] = [body, sigs]
        ch.extra["published"] = state["number"]
        self.core.store.mark(ch)
        self.core.commit()
        return body, sigs

    def force_close_submitted(self, ch: Channel, refused: LedgerPortError | None) -> None:
        """What the ledger answered to the submission of `sign_force_close`'s body."""
        if refused is None:
            number = ch.extra["published"]
            log.warning("channel %s force-closed at commitment %d", ch.short_id, number)
        elif refused.reason == "channel_not_open":  # the peer published (or it closed) first
            del ch.extra["force_close"]
            self.core.store.mark(ch)
            log.warning("channel %s: force close refused: %s", ch.short_id, refused)
        else:
            log.warning(
                "channel %s: force close not committed (%s); retrying", ch.short_id, refused
            )

    def behind(self, ch: Channel, peer: Peer, msg: m.Reestablish) -> None:
        """The peer proved our state stale (data_loss.we_are_behind): we stop using the channel,
        never publish it, and ask the peer to close with its newest state, which pays us our
        true balance once settled (watch.py sees it on the ledger as any close by the peer)."""
        data_loss.mark_behind(ch, msg)
        log.error("channel %s: our state (commitment %d) is stale, the peer is at %d: restored "
                  "from an old backup? We will not publish it; the peer is asked to close",
                  ch.short_id, ch.latest.number, msg.latest)  # fmt: skip
        self.core.switch.handle(ch.drop_pending_adds("channel state lost"), self.core.height)
        ch.set_state(ChannelState.FORCE_CLOSING)  # waits for the peer's state on the ledger
        self.core.store.mark(ch)
        text = b"data loss: our channel state is stale; please close with your newest state"
        peer.queue_named("error", channel_id=ch.channel_id, data=text)

    async def on_Shutdown(self, peer: Peer, msg: m.Shutdown) -> None:
        ch = self.core.channel(msg.channel_id, peer)
        if ch.state == ChannelState.OPEN:
            self.core.switch.handle(ch.shutdown(), self.core.height)
            peer.queue(m.Shutdown(ch.channel_id))

    async def on_ClosingSigned(self, peer: Peer, msg: m.ClosingSigned) -> None:
        ch = self.core.channel(msg.channel_id, peer)
        if ch.state == ChannelState.CLOSED:
            return
        ch.receive_closing_signed(msg)
        if ch.me == 1:
            peer.queue(ch.closing_signed())
        self.core.commit()
        self._in_task(self._submit_close(ch))

    async def _submit_close(self, ch: Channel) -> None:
        sigs = {ch.node_ids[i].hex(): ch.closing_sigs[i].hex() for i in (0, 1)}
        body = close_body(self.core.ledger.chain, ch.channel_id, ch.latest.balances)
        try:
            await self.core.ledger_call(self.core.ledger.submit, body, sigs)
        except LedgerPortError as exc:  # both signatures are stored: retried every tick
            log.warning("channel %s: close not committed (%s); retrying", ch.short_id, exc)
            return
        if ch.state != ChannelState.CLOSED:  # the watch may have seen it closed meanwhile
            self.closed_cooperatively(ch)

    def closed_cooperatively(self, ch: Channel) -> None:
        """Closed on the ledger with the final split: our held HTLCs, in no state that can
        reach the ledger now, are failed upstream (`Channel.release_held`)."""
        self.core.switch.handle(ch.release_held("channel closed"), self.core.height)
        self.closed(ch)

    def closed(self, ch: Channel) -> None:
        ch.mark_closed()
        self.core.switch.graph.remove_channel(ch.channel_id)
        self.core.wake(b"closed" + ch.channel_id, ch)
