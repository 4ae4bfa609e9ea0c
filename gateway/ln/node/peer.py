"""One connected peer: decodes its messages and dispatches them to ``on_<message_name>`` handlers.

Handlers live on the node (they touch several channels); this module owns the connection loop,
the outbox, and the commit-before-send rule: `Peer.flush()` asks the node to commit its store
before any queued message leaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.ln.channel import messages_wire as channel_wire
from gateway.ln.codec.wire import TABLE, must_close
from gateway.ln.errors import ChannelError, LnError, TransportError, UnknownMessageError, WireError

log = logging.getLogger(__name__)


class Peer:
    def __init__(self, node_id: bytes, conn: Any, commit: Callable[[], None]) -> None:
        self.node_id = node_id
        self.conn = conn
        self._commit = commit
        self.outbox: list[bytes] = []
        self.closed = asyncio.Event()

    @property
    def short(self) -> str:
        return self.node_id.hex()[:12]

    def queue(self, msg: Any) -> None:
        self.outbox.append(msg if isinstance(msg, bytes) else channel_wire.to_wire(msg))

    def queue_named(self, name: str, **fields: Any) -> None:
        self.outbox.append(TABLE.encode(name, **fields))

    def flush(self) -> None:
        """Commit the node's store, then send what is queued (persist before sign is sent)."""
        if not self.outbox:
            return
        self._commit()
        out, self.outbox = self.outbox, []
        try:
            for raw in out:
                self.conn.send(raw)
        except TransportError as exc:
            log.info("peer %s: send failed: %s", self.short, exc)

    async def run(self, dispatch: Callable[[Peer, Any], Awaitable[None]]) -> None:
        """Read messages until the connection ends."""
        try:
            while True:
                raw = await self.conn.receive()
                try:
                    msg = channel_wire.from_wire(TABLE.decode(raw))
                except UnknownMessageError as exc:
                    if must_close(exc.type_num):
                        log.warning("peer %s: unknown even message %d", self.short, exc.type_num)
                        return
                    continue
                except WireError as exc:
                    log.warning("peer %s: malformed message: %s", self.short, exc)
                    continue
                try:
                    await dispatch(self, msg)
                except ChannelError as exc:
                    log.warning("peer %s: rejected %s: %s", self.short, type(msg).__name__, exc)
                except LnError as exc:
                    log.warning("peer %s: %s", self.short, exc)
                await self.conn.drain()
        except TransportError as exc:
            log.info("peer %s disconnected: %s", self.short, exc)
        finally:
            self.closed.set()
