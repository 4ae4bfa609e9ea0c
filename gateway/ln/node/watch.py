"""Watching time and the ledger: funding seen, closes settled, revoked states penalized.

A component of `gateway.ln.node.node.Node`, handed the node's core and the lifecycle component;
the node's ticker calls `tick()`.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.ln.channel.channel import Channel, ChannelState
from gateway.ln.channel.commitment import sign
from gateway.ln.channel.ledger_bodies import (
    digest,
    penalty_body,
    settle_body,
)
from gateway.ln.node.core import LIVE, NodeCore
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

    # --- time and the ledger ---------------------------------------------------------------------
    def tick(self) -> None:
        self.core.height = self.core.ledger.height()
        for cid in self.core.switch.check_timeouts(self.core.height):
            self.lifecycle.force_close(self.core.switch.channels[cid])
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
        if view.status in ("closed", "penalized"):
            if ch.state in LIVE:
                self.core.switch.on_force_closed(ch.channel_id)
            if ch.state in (ChannelState.OPEN, ChannelState.SHUTDOWN):
                # the peer closed it on the ledger (and it settled) while we were away
                ch.set_state(ChannelState.FORCE_CLOSING)
            self.lifecycle.closed(ch)
            return
        if view.status != "closing" or view.state is None or view.close_height is None:
            return
        if view.state["holder"] != self.core.node_id.hex():
            first = ch.state != ChannelState.FORCE_CLOSING
            secret = ch.on_remote_published(view.state["number"])
            if first:
                self.core.switch.on_force_closed(ch.channel_id)
            if secret is not None:
                self._submit_signed(penalty_body(self.core.ledger.chain, ch.channel_id, me, secret))
                log.warning("channel %s: penalty claimed, the whole channel is ours", ch.short_id)
                self.lifecycle.closed(ch)
                return
        if self.core.height > view.close_height + view.dispute_blocks:
            self._submit_signed(settle_body(self.core.ledger.chain, ch.channel_id, me))
            self.lifecycle.closed(ch)

    def _submit_signed(self, body: dict[str, Any]) -> None:
        self.core.ledger.submit(
            body, {self.core.node_id.hex(): sign(self.core.keys.node_priv, digest(body)).hex()}
        )
