"""What every part of the channel node shares: its keys, store, switch, peers and ledger, and the
one step every handler ends with (`after`: let the switch react, commit the store, then send).

`node.Node` extends this with the network side; `lifecycle`, `gossip` and `watch` are components
that are handed this core (composition: none of them imports the node).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway import clock
from gateway.ln.channel import messages as m
from gateway.ln.channel.channel import Channel, ChannelState
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.channel.messages_wire import MAX_PREIMAGES
from gateway.ln.errors import ProtocolViolation
from gateway.ln.node.daemon_threads import DaemonThreads
from gateway.ln.node.keys import load_or_create
from gateway.ln.node.ledger_port import LedgerPort
from gateway.ln.node.peer import Peer
from gateway.ln.node.store import Store
from gateway.ln.node.switch import Switch
from gateway.ln.node.timeline import Timeline

log = logging.getLogger("gateway.ln.node")
LIVE = (ChannelState.OPEN, ChannelState.SHUTDOWN)
CHECKPOINT_COMMITS = 64  # commits (a few hundred kB of WAL) between checkpoints at most
T = TypeVar("T")
LEDGER_THREADS = DaemonThreads("ledger-call")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("node task %s failed: %r", task.get_coro(), task.exception())


def _checkpoint_done(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("store: checkpoint failed: %s", fut.exception())


class NodeCore:
    def __init__(
        self,
        data_dir: Path,
        ledger: LedgerPort,
        policy: FeePolicy,
        host: str = "127.0.0.1",
        accept_max_msat: int = 0,
    ) -> None:
        # how much of our own ledger balance we lock into a channel that a peer opens to us:
        # the opener proposes it, we decide (default: nothing, only the opener's funds)
        self.accept_max_msat = accept_max_msat
        self.keys = load_or_create(data_dir)
        self.node_id = self.keys.node_id
        self.ledger = ledger
        self.host = host
        self.store = Store(data_dir / "channels.sqlite", self.keys)
        self.switch = Switch(self.node_id, policy, clock=clock.now)
        self.store.load(self.switch)
        self.switch.graph.set_policy(self.node_id, policy)
        self.peers: dict[bytes, Peer] = {}
        self.addresses: dict[bytes, tuple[str, int]] = {
            bytes.fromhex(k): (v[0], v[1]) for k, v in self.store.get_meta("peers", {}).items()
        }
        self.opening: dict[bytes, dict[str, Any]] = {}
        self.waiters: dict[bytes, list[asyncio.Future[Any]]] = {}
        self.height = ledger.height()
        # channels opened since this start, or whose peer reestablished them with no sign that
        # our state is stale (data_loss.py): only those are force-closed for an expired HTLC
        self.reestablished: set[bytes] = set()
        self.timeline = Timeline()  # off unless the process gives it a capacity (--timeline)
        self._checkpointed_at = 0  # store commits when the last checkpoint was started
        self._checkpoint: asyncio.Future[None] | None = None
        self.ledger_in_thread = False  # set once the node runs on its event loop (Node.start)
        self._tasks: set[asyncio.Task[Any]] = set()  # each leaves the set when it ends

    def keep(self, task: asyncio.Task[Any], *, report: bool = True) -> None:
        """Hold `task` until it ends (Node.stop cancels those still running): a redial every
        tick of an offline peer must not pile up finished tasks and their tracebacks. A failure
        is logged when `report` (a dial's goes to its callers instead)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if report:
            task.add_done_callback(_log_failure)

    async def ledger_call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, a blocking call of the ledger port: in a worker thread once the node
        runs (`ledger_in_thread`). A submission waits for its block, up to `idle_block_ms` while
        any channel on the ledger is closing, and a slow or hung ledger for the client's timeout
        and retries: the node's payments and peers must not wait with it. Before the node runs
        (its parts driven by hand, as the watch's unit tests do) the call is made here and the
        awaiting coroutine never suspends. The threads are daemons (`DaemonThreads`): a call
        hung on a dead ledger does not hold up the node's exit."""
        if self.ledger_in_thread:
            return await asyncio.get_running_loop().run_in_executor(LEDGER_THREADS, fn, *args)
        return fn(*args)

    def commit(self) -> None:
        """Commit the store, after the switch reacted to the channels' undrained events: a
        handler that commits in the middle of a burst (e.g. a close's ledger submit) must not
        store a commitment whose early-locked-in HTLCs (IncomingHtlc, never stored) a crash
        would then lose."""
        self._handle_events()
        tl = self.timeline
        if tl.enabled and (self.store.dirty_channels or self.switch.dirty):
            tl.mark("commit")
            self.store.commit(self.switch)
            tl.mark("committed")
        else:
            self.store.commit(self.switch)
        if self.store.commits - self._checkpointed_at >= CHECKPOINT_COMMITS:
            self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Checkpoint in a worker thread (the ticker does too, every tick): a WAL that was
        checkpointed is written again from its start, and a commit that overwrites the WAL's
        blocks syncs in about half the time of one that appends to it (its size changes)."""
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a node used synchronously): the ticker's are enough
            return
        self._checkpointed_at = self.store.commits
        self._checkpoint = loop.run_in_executor(None, self.store.checkpoint)
        self._checkpoint.add_done_callback(_checkpoint_done)

    def channels_with(self, nid: bytes) -> list[Channel]:
        return [c for c in self.switch.channels.values() if c.node_ids[c.remote] == nid]

    def channel(self, cid: bytes, peer: Peer) -> Channel:
        ch = self.switch.channels.get(cid)
        if ch is None or ch.node_ids[ch.remote] != peer.node_id:
            raise ProtocolViolation(f"no channel {cid.hex()[:12]} with this peer")
        return ch

    def _handle_events(self) -> bool:
        """Hand the channels' events to the switch; True if there were any."""
        events = [e for ch in self.switch.channels.values() for e in ch.drain_events()]
        if events:
            self.switch.handle(events, self.height)
        return bool(events)

    def after(self) -> None:
        """Let the switch react to settled updates, start new rounds, commit, then send."""
        for _ in range(1000):
            moved = self._handle_events()
            for ch in self.switch.channels.values():
                peer = self.peers.get(ch.node_ids[ch.remote])
                if peer is None:  # the queued fulfils are hinted again after the reestablish
                    ch.preimage_hints.clear()
                    continue
                try:
                    moved |= self._next_round(ch, peer)
                except Exception as exc:  # noqa: BLE001 - one channel must not stall the others
                    self.switch.failures.failed("propose", ch.short_id, exc)
            if not moved:
                break
        self.timeline.mark("react")
        if any(h in self.waiters for h in self.switch.resolved):
            # a payer waits for an outcome: it is committed with everything else, then the
            # payer is answered before the peers' messages go out (the answer would otherwise
            # wait for the socket writes, which wake the peers: on two cores, ~0.5 ms)
            self.commit()
            self._wake_payments()
            asyncio.get_running_loop().call_soon(self._flush_peers)
            return
        self._flush_peers()
        self._wake_payments()

    def _flush_peers(self) -> None:
        """Send every peer its outbox, first the peers owed what moves a payment on (a forwarded
        add, a fulfil, preimages), then those owed only acks or revokes: a forwarder's add
        leaves before its ack upstream, not one socket write later. The first flush commits
        (persist before send); the others find the store clean and do not sync again."""
        for peer in sorted(self.peers.values(), key=lambda p: not p.moves_payments):
            peer.flush()

    def _next_round(self, ch: Channel, peer: Peer) -> bool:
        """Queue the preimages of `ch`'s newly queued fulfils (sg_preimages: they leave after the
        commit that persists the fulfils), then its next update round (or its closing
        signature) for `peer`; True if a round."""
        hints = ch.take_preimage_hints()
        for i in range(0, len(hints), MAX_PREIMAGES):
            peer.queue(m.Preimages(ch.channel_id, tuple(hints[i : i + MAX_PREIMAGES])))
        msg = ch.propose()
        if msg is not None:
            peer.queue(msg)
        if ch.state == ChannelState.SHUTDOWN and ch.me == 0 and ch.ready_to_close():
            if not ch.extra.get("closing_sent"):
                ch.extra["closing_sent"] = True
                self.store.mark(ch)
                peer.queue(ch.closing_signed())
        return msg is not None

    def _wake_payments(self) -> None:
        done, self.switch.resolved = self.switch.resolved, []
        done = [h for h in done if h in self.waiters]
        if done:
            self.commit()  # the outcome is durable before anyone is told
        for h in done:
            self.timeline.mark("paid", h.hex()[:12])
            pay = self.switch.payments[h]
            for fut in self.waiters.pop(h):
                if not fut.done():
                    fut.set_result(pay)

    def wake(self, key: bytes, value: Any) -> None:
        for fut in self.waiters.pop(key, []):
            if not fut.done():
                fut.set_result(value)

    def fail(self, key: bytes, exc: Exception) -> None:
        """Whoever waits for `key` gets `exc` raised instead of a value."""
        for fut in self.waiters.pop(key, []):
            if not fut.done():
                fut.set_exception(exc)

    async def wait_for(self, key: bytes, timeout: float) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pay = self.switch.payments.get(key)
        if pay is not None and pay.status != "pending":
            return pay
        self.waiters.setdefault(key, []).append(fut)
        async with asyncio.timeout(timeout):  # the task wakes on `fut` itself: one loop turn
            return await fut
