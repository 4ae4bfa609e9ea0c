"""Watching time and the ledger: funding seen, closes (re)submitted and settled, revoked states
penalized, HTLC outputs of force-closed channels claimed, refunded, and reported to the switch.

A component of `gateway.ln.node.node.Node`, handed the node's core and the lifecycle component;
the node's ticker calls `tick()`.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.ln.channel.channel import Channel, ChannelState, OutgoingSettled
from gateway.ln.channel.commitment import Htlc, sign
from gateway.ln.channel.ledger_bodies import (
    close_body,
    digest,
    htlc_claim_body,
    htlc_refund_body,
    penalty_body,
    settle_body,
)
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.core import LIVE, NodeCore
from gateway.ln.node.ledger_port import ChannelView
from gateway.ln.node.lifecycle import ChannelLifecycle

log = logging.getLogger("gateway.ln.node")
WATCHED = (
    ChannelState.OPEN,
    ChannelState.SHUTDOWN,
    ChannelState.CLOSING,
    ChannelState.FORCE_CLOSING,
)


class Watcher:
    def __init__(self, core: NodeCore, lifecycle: ChannelLifecycle) -> None:
        self.core = core
        self.lifecycle = lifecycle
        self._waiting: set[bytes] = set()  # expired HTLCs waiting for a reestablish (logged once)

    # --- time and the ledger ---------------------------------------------------------------------
    def tick(self) -> None:
        self.core.height = self.core.ledger.height()
        for cid in self.core.switch.check_timeouts(self.core.height):
            # the state we started from may come from an old backup: only the peer's reestablish
            # tells (data_loss.py), and publishing a stale state hands the peer the channel.
            # Waiting costs little: nobody can claim an expired HTLC on the ledger, our refund
            # only comes later (or an operator's explicit force close publishes the state).
            if cid in self.core.reestablished:
                self.lifecycle.force_close(self.core.switch.channels[cid])
            elif cid not in self._waiting:
                self._waiting.add(cid)
                log.warning("channel %s: an HTLC expired; not closing it before the peer "
                            "reestablished it (our state may be stale)", cid.hex()[:16])  # fmt: skip
        for ch in list(self.core.switch.channels.values()):
            try:
                self._tick_channel(ch)
            except Exception:  # one channel's trouble must not stop the others being watched
                log.exception("channel %s: tick failed", ch.short_id)
        self.core.after()
        self.core.commit()

    def _tick_channel(self, ch: Channel) -> None:
        if ch.state == ChannelState.FUNDING:
            view = self.core.ledger.channel(ch.channel_id)
            if view is None and ch.me == 1 and "funding_sigs" in ch.extra:
                # we crashed between storing both signatures and submitting: submit again
                self.core.ledger.submit(ch.extra["funding"], ch.extra["funding_sigs"])
                view = self.core.ledger.channel(ch.channel_id)
            if view is not None and view.status == "open":
                self.lifecycle.opened(ch)
        elif ch.state in WATCHED:
            self._watch(ch)

    def _watch(self, ch: Channel) -> None:
        view = self.core.ledger.channel(ch.channel_id)
        if view is None:
            return
        me = "ab"[ch.me]
        if view.status == "open":
            self._resubmit_close(ch)
            return
        if view.status == "penalized":
            self._published(ch, view, penalized=True)
            self.lifecycle.closed(ch)
            return
        if view.status == "closed" and view.state is None:  # cooperative: nothing in flight
            if ch.state in LIVE:
                ch.set_state(ChannelState.FORCE_CLOSING)  # closed while we were away
            self.lifecycle.closed(ch)
            return
        if view.state is None or view.close_height is None:
            return
        if view.status == "closing" and view.state["holder"] != self.core.node_id.hex():
            secret = ch.on_remote_published(view.state["number"])
            if secret is not None:
                self._published(ch, view, penalized=True)
                self._submit_signed(penalty_body(self.core.ledger.chain, ch.channel_id, me, secret))
                log.warning("channel %s: penalty claimed, the whole channel is ours", ch.short_id)
                return  # closed once the ledger shows it penalized
        self._published(ch, view)
        self._outputs(ch, view)
        if view.status == "closing" and self.core.height > view.close_height + view.dispute_blocks:
            self._submit_signed(settle_body(self.core.ledger.chain, ch.channel_id, me))
        if view.status == "closed":
            self.lifecycle.closed(ch)

    def _published(self, ch: Channel, view: ChannelView, penalized: bool = False) -> None:
        """Once per channel: a state is on the ledger; unwind our HTLCs that have no output."""
        if ch.extra.get("unwound"):
            return
        if ch.state != ChannelState.FORCE_CLOSING:
            ch.set_state(ChannelState.FORCE_CLOSING)
        outputs = None if penalized else {("ab".index(o["offerer"]), o["id"]) for o in view.htlcs}
        ch.extra["unwound"] = True
        self.core.store.mark(ch)
        self.core.switch.on_published(ch.channel_id, outputs)

    def _outputs(self, ch: Channel, view: ChannelView) -> None:
        """The HTLC outputs of the published state: claim those we can, learn the fate of ours.

        Ours (we offered): fulfilled on the ledger -> the preimage settles it upstream; expired
        unclaimed (no block <= its expiry is left) -> failed upstream, refunded once settled.
        Theirs: claimed with the preimage while blocks up to its expiry are still to come.
        """
        reported = set(ch.extra.get("outputs_reported", []))
        chain, me, height = self.core.ledger.chain, "ab"[ch.me], self.core.height
        for i, out in enumerate(view.htlcs):
            htlc = Htlc(
                "ab".index(out["offerer"]),
                out["id"],
                out["amount_msat"],
                bytes.fromhex(out["payment_hash"]),
                out["cltv_expiry"],
            )
            pending = out["outcome"] == "pending"
            if htlc.offerer == ch.me:
                if i not in reported and (not pending or height >= htlc.cltv_expiry):
                    preimage = bytes.fromhex(out["preimage"]) if out["preimage"] else None
                    reason = "" if preimage else "expired unclaimed on the ledger"
                    reported.add(i)
                    ch.extra["outputs_reported"] = sorted(reported)
                    self.core.store.mark(ch)
                    self.core.switch.handle(
                        [OutgoingSettled(ch.channel_id, htlc, preimage, reason)], height
                    )
                if pending and view.status == "settled" and height > htlc.cltv_expiry:
                    self._try_submit(ch, htlc_refund_body(chain, ch.channel_id, me, i))
            elif pending and height < htlc.cltv_expiry:
                preimage = self.core.switch.preimage_for(ch, htlc)
                if preimage is not None and self._try_submit(
                    ch, htlc_claim_body(chain, ch.channel_id, me, i, preimage)
                ):
                    self.core.switch.invoice_paid(htlc.payment_hash)
                    log.warning(
                        "channel %s: claimed HTLC output %d (%d msat) with its preimage",
                        ch.short_id,
                        i,
                        htlc.amount_msat,
                    )

    def _try_submit(self, ch: Channel, body: dict[str, Any]) -> bool:
        """Submit one output's claim or refund; a refusal or outage is retried next tick."""
        try:
            self._submit_signed(body)
        except LedgerPortError as exc:
            log.warning("channel %s: %s not committed: %s", ch.short_id, body["kind"], exc)
            return False
        return True

    def _resubmit_close(self, ch: Channel) -> None:
        """A close we signed is not on the ledger yet (the submission failed): submit it again,
        every tick, until it commits (the bodies are idempotent)."""
        if ch.state == ChannelState.FORCE_CLOSING and "force_close" in ch.extra:
            body, sigs = ch.extra["force_close"]
            self.core.ledger.submit(body, sigs)
            log.warning("channel %s: force close submitted again", ch.short_id)
        elif ch.state == ChannelState.CLOSING and ch.closing_sigs[0] and ch.closing_sigs[1]:
            sigs = {ch.node_ids[i].hex(): ch.closing_sigs[i].hex() for i in (0, 1)}
            self.core.ledger.submit(
                close_body(self.core.ledger.chain, ch.channel_id, ch.latest.balances), sigs
            )
            log.warning("channel %s: cooperative close submitted again", ch.short_id)

    def _submit_signed(self, body: dict[str, Any]) -> None:
        self.core.ledger.submit(
            body, {self.core.node_id.hex(): sign(self.core.keys.node_priv, digest(body)).hex()}
        )
