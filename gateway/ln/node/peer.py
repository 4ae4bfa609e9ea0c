"""One connected peer: decodes its messages and dispatches them to ``on_<message_name>`` handlers.

Handlers live on the node (they touch several channels); this module owns the connection loop,
the outbox, and the commit-before-send rule: `Peer.flush()` asks the node to commit its store
before any queued message leaves. What a peer sends that we refuse (malformed, rejected by a
handler) is logged rate-limited per peer and kind (`reject`): a peer cannot flood the journal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.ln.channel import messages as m
from gateway.ln.channel import messages_wire as channel_wire
from gateway.ln.codec.wire import TABLE, must_close
from gateway.ln.errors import ChannelError, LnError, TransportError, UnknownMessageError, WireError
from gateway.ln.node.timeline import Timeline
from gateway.log_budget import LogBudget

log = logging.getLogger(__name__)

MAX_BURST = 64  # messages already received that are handled before one commit and send
# sg_preimages: what a payer and the upstream hops wait for. It leaves ahead of the other
# messages of its flush, and a burst ends after one that a handler marks `end_burst` (a
# forwarder's: its commit and its hint upstream do not wait for the signatures of the
# messages behind it)
PREIMAGES_TYPE = channel_wire.SPECS["sg_preimages"][0].to_bytes(2, "big")
REJECT_BURST, REJECT_WINDOW_S = 10, 10.0  # log lines per kind of refusal per peer and window


class Peer:
    def __init__(
        self,
        node_id: bytes,
        conn: Any,
        commit: Callable[[], None],
        timeline: Timeline | None = None,
        rejections: LogBudget | None = None,
    ) -> None:
        self.node_id = node_id
        self.timeline = timeline or Timeline()
        self.conn = conn
        self._commit = commit
        self.outbox: list[bytes] = []
        # the outbox holds what moves a payment on (an UpdateBatch: a forwarded add, a fulfil;
        # sg_preimages): the node flushes such peers before those owed only acks and revokes
        self.moves_payments = False
        self._hints_queued = 0  # sg_preimages at the head of the outbox
        self.end_burst = False  # set by a handler: commit and send before the next message
        self.reestablish_sent: set[bytes] = set()  # channels we sent a Reestablish for, here
        self.closed = asyncio.Event()
        # the node's, keyed by peer and kind: a reconnect starts no new budget
        self.rejections = rejections or LogBudget(REJECT_BURST, REJECT_WINDOW_S)

    def reject(self, kind: str, detail: str) -> bool:
        """Log one refusal of what the peer sent (nothing changed), at most REJECT_BURST lines
        per `kind` per REJECT_WINDOW_S, the rest counted. True if logged."""
        admitted = self.rejections.admit(f"{self.node_id.hex()} {kind}")
        if admitted is None:
            return False
        more = admitted.unlogged("refusals of other kinds")
        log.warning("peer %s: %s: %s%s", self.short, kind, detail, more)
        return True

    @property
    def short(self) -> str:
        return self.node_id.hex()[:12]

    def queue(self, msg: Any) -> None:
        if isinstance(msg, bytes):
            raw = msg
        else:
            self.moves_payments |= isinstance(msg, m.UpdateBatch | m.Preimages)
            raw = channel_wire.to_wire(msg)
        if raw[:2] == PREIMAGES_TYPE:  # ahead of the acks, revokes and proposals queued so far
            self.outbox.insert(self._hints_queued, raw)
            self._hints_queued += 1
        else:
            self.outbox.append(raw)

    def queue_named(self, name: str, **fields: Any) -> None:
        self.outbox.append(TABLE.encode(name, **fields))

    def flush(self) -> None:
        """Commit the node's store, then send what is queued (persist before sign is sent)."""
        if not self.outbox:
            return
        self._commit()
        out, self.outbox = self.outbox, []
        self.moves_payments, self._hints_queued = False, 0
        self.timeline.mark("send", f"{len(out)} to {self.short}")
        try:
            self.conn.send_all(out)  # together: the peer handles them as one burst
        except TransportError as exc:
            log.info("peer %s: send failed: %s", self.short, exc)

    async def run(
        self, dispatch: Callable[[Peer, Any], Awaitable[None]], settle: Callable[[], None]
    ) -> None:
        """Read messages until the connection ends. Every message that has already arrived
        (at most MAX_BURST) is handled before `settle()` lets the node react, commit and send
        once: a burst costs one fsync, and a proposal of ours that the peer's next message,
        already here, would supersede is not signed in between. A burst ends early after a
        message whose handler set `end_burst` (a forwarder's sg_preimages): the node commits
        and hints upstream before it handles the messages behind it."""
        try:
            while True:
                burst = [await self.conn.receive()]
                self.end_burst = False
                handled = 0
                try:
                    while True:
                        # what has arrived, up to a hint (which may end the burst)
                        while handled + len(burst) < MAX_BURST and burst[-1][:2] != PREIMAGES_TYPE:
                            raw = self.conn.receive_nowait()
                            if raw is None:
                                break
                            burst.append(raw)
                        self.timeline.mark("read", f"{len(burst)} from {self.short}")
                        for raw in burst:
                            if not await self._handle(raw, dispatch):
                                return
                        handled += len(burst)
                        if self.end_burst or burst[-1][:2] != PREIMAGES_TYPE:
                            break
                        # a hint that did not end the burst: go on with what is here
                        raw = self.conn.receive_nowait() if handled < MAX_BURST else None
                        if raw is None:
                            break
                        burst = [raw]
                finally:
                    settle()
                await self.conn.drain()
        except TransportError as exc:
            log.info("peer %s disconnected: %s", self.short, exc)
        finally:
            self.closed.set()

    async def _handle(self, raw: bytes, dispatch: Callable[[Peer, Any], Awaitable[None]]) -> bool:
        """Decode and dispatch one message; False if the connection must close."""
        try:
            msg = channel_wire.from_wire(TABLE.decode(raw))
        except UnknownMessageError as exc:
            if must_close(exc.type_num):
                log.warning("peer %s: unknown even message %d", self.short, exc.type_num)
                return False
            return True
        except WireError as exc:
            self.reject("malformed message", str(exc))
            return True
        tl = self.timeline
        if tl.enabled:
            tl.mark("recv", f"{type(msg).__name__} from {self.short}")
        try:
            await dispatch(self, msg)
            tl.mark("handled", f"{type(msg).__name__} from {self.short}")
        except ChannelError as exc:
            self.reject(f"rejected {type(msg).__name__}", str(exc))
        except LnError as exc:
            log.warning("peer %s: %s", self.short, exc)
        return True
