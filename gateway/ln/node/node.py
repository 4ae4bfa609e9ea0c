"""The gateway's payment-channel node: asyncio process with BOLT-8 peers.

Run it with `sgrid channel node` or ``python -m gateway.ln.node`` (see `main.py`, which also
starts the control API). Every handler follows one pattern: change channels -> let the switch
react -> commit the store (one fsync) -> send. See docs/channels.md.

The node is its core (`core.NodeCore`: store, switch, peers, ledger) plus the network side here,
composed with three components it dispatches peer messages to: `lifecycle` (open, close),
`gossip` (channel and policy announcements) and `watch` (time and the ledger).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from typing import Any

from gateway import clock
from gateway.ln.channel import data_loss
from gateway.ln.channel import messages as m
from gateway.ln.channel.channel import Channel, ChannelState
from gateway.ln.codec import bolt8_transport, bolt11, receipt
from gateway.ln.codec.wire import Message
from gateway.ln.errors import LedgerPortError, LnError, ProtocolViolation
from gateway.ln.node.core import LIVE, NodeCore
from gateway.ln.node.gossip import Gossip
from gateway.ln.node.invoice_batch import BatchDecoder
from gateway.ln.node.lifecycle import ChannelLifecycle
from gateway.ln.node.peer import REJECT_BURST, REJECT_WINDOW_S, Peer
from gateway.ln.node.watch import Watcher
from gateway.log_budget import LogBudget

log = logging.getLogger(__name__)


class Node(NodeCore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The arguments of `NodeCore` (data dir, ledger, fee policy, host, accept_max_msat)."""
        super().__init__(*args, **kwargs)
        self.gossip = Gossip(self)
        self.lifecycle = ChannelLifecycle(self, self.gossip)
        self.watch = Watcher(self, self.lifecycle)
        self.decoder = BatchDecoder()
        self.port = 0
        self._handlers: tuple[Any, ...] = (self, self.lifecycle, self.gossip)
        self._servers: list[asyncio.Server] = []
        self._dials: dict[bytes, asyncio.Task[None]] = {}  # peer -> its dial under way
        self.rejections = LogBudget(REJECT_BURST, REJECT_WINDOW_S)  # what peers sent, refused
        self._watching = asyncio.Lock()  # one tick of the watch at a time (ticker, POST /tick)

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, port: int, tick_s: float = 0.2) -> None:
        """Listen for peers on ``port`` (0: any free port) and start the ticker."""
        server = await bolt8_transport.serve(
            self.host, port, self.keys.node_priv, self._on_connection
        )
        self.port = server.sockets[0].getsockname()[1]
        self._servers = [server]
        self.ledger_in_thread = True  # from now on the ledger is called off the event loop
        for ch in self.switch.channels.values():
            if ch.state in LIVE:
                self.gossip.announce_local(ch)
        self.keep(asyncio.create_task(self._ticker(tick_s)))
        self.keep(asyncio.create_task(self._ledger_ticker(tick_s)))

    async def stop(self) -> None:
        """Stop listening, close every peer connection, commit and close the store."""
        for server in self._servers:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for peer in list(self.peers.values()):
            await peer.conn.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.decoder.close()
        self.commit()
        self.store.close()
        log.info("node %s stopped", self.node_id.hex()[:12])

    async def _ledger_ticker(self, tick_s: float) -> None:
        """The watch and gossip's re-checks: a task of their own, so that a ledger slow to
        answer delays neither the checkpoints nor the redials of `_ticker`."""
        while True:
            await asyncio.sleep(tick_s)
            try:
                await self.watch_ledger()
                await self.gossip.forget_closed()
            except LedgerPortError as exc:
                log.warning("ledger: %s", exc)
            except Exception:  # the ticker is the node's heartbeat: it must never stop
                log.exception("tick failed")

    async def _ticker(self, tick_s: float) -> None:
        while True:
            await asyncio.sleep(tick_s)
            try:  # off the event loop: the node keeps paying while the WAL is copied
                await asyncio.to_thread(self.store.checkpoint)
            except LnError as exc:
                log.warning("store: %s", exc)
            except Exception:  # e.g. no thread to run it at shutdown: the ticker goes on
                log.exception("checkpoint failed")
            await self._reconnect()

    async def watch_ledger(self) -> None:
        """One tick of the watch: the ledger read in a worker thread (a slow or unreachable
        ledger must not stall the node's payments while it waits), then acted on here, its
        submissions awaited in worker threads too. One tick at a time: the next waits."""
        async with self._watching:
            reads = await self.ledger_call(self.watch.read, self.watch.to_read())
            await self.watch.act(reads)

    async def _reconnect(self) -> None:
        """Dial, every tick, each known peer a channel needs (`_needs_peer`), closing ones
        included: before, when both ends restarted at once (a power cut) and the publisher's
        watch saw its own close before it dialled, neither dialled again."""
        for nid, (host, port) in list(self.addresses.items()):
            wanted = any(self._needs_peer(c) for c in self.channels_with(nid))
            if wanted and nid not in self.peers:
                try:
                    await self.connect(host, port, nid)
                except Exception as exc:  # noqa: BLE001 - any failure: retry next tick
                    log.debug("reconnect %s failed: %s", nid.hex()[:12], exc)

    # --- connections ---------------------------------------------------------------------------
    async def connect(self, host: str, port: int, node_id: bytes) -> None:
        """Connect to `node_id` unless connected. Callers that dial one peer at once (the grid's
        channel loop, its exchange, the reconnect tick) share one dial: a second connection
        would replace the first and lose what was sent on it (an open_channel, seen)."""
        if node_id in self.peers:
            return
        dial = self._dials.get(node_id)
        if dial is None:
            dial = self._dials[node_id] = asyncio.create_task(self._dial(host, port, node_id))
            dial.add_done_callback(lambda done: self._dial_done(node_id, done))
            self.keep(dial, report=False)  # stop() cancels a dial still under way
        await asyncio.shield(dial)

    def _dial_done(self, node_id: bytes, dial: asyncio.Future[None]) -> None:
        self._dials.pop(node_id, None)
        if not dial.cancelled():
            dial.exception()  # every caller got it; none left to retrieve it is no error

    async def _dial(self, host: str, port: int, node_id: bytes) -> None:
        conn = await bolt8_transport.connect(host, port, self.keys.node_priv, node_id)
        if self.addresses.get(node_id) != (host, port):  # a redial of a known one writes nothing
            self.addresses[node_id] = (host, port)
            self.store.set_meta("peers", {k.hex(): list(v) for k, v in self.addresses.items()})
        self.keep(asyncio.create_task(self._on_connection(conn)))
        for _ in range(100):
            if node_id in self.peers:
                return
            await asyncio.sleep(0.01)

    async def _on_connection(self, conn: Any) -> None:
        nid = conn.remote_pub
        old = self.peers.get(nid)
        if old is not None:
            await old.conn.close()
        peer = Peer(nid, conn, self.commit, self.timeline, self.rejections)
        self.peers[nid] = peer
        self.switch.online.add(nid)
        log.info("peer %s up", peer.short)
        peer.queue_named("init", globalfeatures=b"", features=b"")
        for ch in self.channels_with(nid):
            if self._needs_peer(ch):
                peer.queue(ch.reestablish_msg())
                peer.reestablish_sent.add(ch.channel_id)
            if ch.state == ChannelState.SHUTDOWN:
                peer.queue(m.Shutdown(ch.channel_id))
        self.gossip.send_graph(peer)
        peer.flush()
        try:
            await peer.run(self._dispatch, self.after)
        finally:
            if self.peers.get(nid) is peer:
                del self.peers[nid]
                self.switch.online.discard(nid)
                for ch in self.channels_with(nid):
                    self.switch.fail_unsent(ch.channel_id, "peer offline")
                self.after()
            log.info("peer %s down", peer.short)

    async def _dispatch(self, peer: Peer, msg: Any) -> None:
        name = msg.name if isinstance(msg, Message) else type(msg).__name__
        for part in self._handlers:
            handler = getattr(part, f"on_{name}", None)
            if handler is not None:
                break
        else:
            log.debug("peer %s: ignoring %s", peer.short, name)
            return
        await handler(peer, msg)  # `peer.run` runs `after()` once the burst is handled

    # --- update protocol ----------------------------------------------------------------------
    async def on_UpdateBatch(self, peer: Peer, msg: m.UpdateBatch) -> None:
        ack = self.channel(msg.channel_id, peer).receive_update(msg)
        if ack is not None:
            peer.queue(ack)

    async def on_AckBatch(self, peer: Peer, msg: m.AckBatch) -> None:
        peer.queue(self.channel(msg.channel_id, peer).receive_ack(msg))

    async def on_Revoke(self, peer: Peer, msg: m.Revoke) -> None:
        self.channel(msg.channel_id, peer).receive_revoke(msg)

    async def on_Preimages(self, peer: Peer, msg: m.Preimages) -> None:
        """The peer fulfils HTLCs we offered (sg_preimages, a hint ahead of its FulfillHtlc
        batch): each good preimage is learnt (the switch settles upstream or the payment);
        an unknown channel or HTLC or a wrong preimage is a rate-limited rejection, no change."""
        ch = self.switch.channels.get(msg.channel_id)
        if ch is None or ch.node_ids[ch.remote] != peer.node_id:
            peer.reject("refused sg_preimages", f"no channel {msg.channel_id.hex()[:12]} with us")
            return
        reasons = ch.receive_preimages(msg)
        links = self.switch.links
        if any((ch.channel_id, htlc_id) in links for htlc_id, _ in msg.preimages):
            peer.end_burst = True  # we forwarded: the hint upstream leaves before the rest
        if reasons:  # one line per message, whatever its length
            n, first = len(reasons), reasons[0]
            why = f"channel {ch.short_id}: {n} of {len(msg.preimages)} entries, first: {first}"
            peer.reject("refused sg_preimages", why)

    def _needs_peer(self, ch: Channel) -> bool:
        """`ch` needs its peer connected and a reestablish sent: it is live; or our state is
        stale and the peer must hear it to close (`_asks_close`); or it is closing and the
        peer's answer may show our state fresh, which a supersede needs (`_unsure_closing`,
        `_on_closing_reestablish`)."""
        return ch.state in LIVE or _asks_close(ch) or self._unsure_closing(ch)

    def _unsure_closing(self, ch: Channel) -> bool:
        """A closing channel whose state no reestablish has shown fresh since our start."""
        return (
            ch.state in (ChannelState.CLOSING, ChannelState.FORCE_CLOSING)
            and "behind" not in ch.extra
            and ch.channel_id not in self.reestablished
        )

    async def on_Reestablish(self, peer: Peer, msg: m.Reestablish) -> None:
        ch = self.channel(msg.channel_id, peer)
        if ch.state in (ChannelState.CLOSING, ChannelState.FORCE_CLOSING):
            self._on_closing_reestablish(ch, peer, msg)
            return
        if ch.state not in LIVE:
            return
        if data_loss.we_are_behind(ch, msg):  # restored from an old backup: never publish it
            self.lifecycle.behind(ch, peer, msg)
        elif data_loss.peer_is_behind(ch, msg):  # our newest state pays it its true balance
            log.warning("channel %s: the peer lost its state (it is at commitment %d, we hold "
                        "its secret through %d): we close with our newest state", ch.short_id,
                        msg.latest, ch.remote_revoked_through)  # fmt: skip
            await self.lifecycle.force_close(ch)
        else:
            for out in ch.on_reestablish(msg):
                peer.queue(out)
            self.reestablished.add(ch.channel_id)

    def _on_closing_reestablish(self, ch: Channel, peer: Peer, msg: m.Reestablish) -> None:
        """The peer's reestablish of a channel that is closing here: no update is sent again
        (it takes none), but the data-loss check runs, as on a live channel. Not behind: our
        state is fresh, so the watch may supersede an older state the peer published (after a
        restart it waited for this; the peer's side was live, or also closing and sent one).
        Behind: never published nor superseded. Answered with ours, once per connection."""
        if "behind" not in ch.extra and ch.channel_id not in self.reestablished:
            if data_loss.we_are_behind(ch, msg):
                data_loss.mark_behind(ch, msg)
                self.store.mark(ch)
                log.error("channel %s: our state (commitment %d) is stale, the peer is at %d: "
                          "restored from an old backup? We will not supersede with it",
                          ch.short_id, ch.latest.number, msg.latest)  # fmt: skip
            else:
                self.reestablished.add(ch.channel_id)
                log.info("channel %s: reestablished while closing", ch.short_id)
        if ch.channel_id not in peer.reestablish_sent:
            peer.queue(ch.reestablish_msg())
            peer.reestablish_sent.add(ch.channel_id)

    # --- invoices and payments ---------------------------------------------------------------------
    def create_invoice(
        self,
        amount_msat: int,
        memo: receipt.EnergyMemo,
        now: int | None = None,
        commit: bool = True,
        settlement_expiry_s: int | None = None,
    ) -> receipt.Receipt:
        """A receipt for energy in `memo`'s window; it expires when the window starts (at least
        60 s). An imbalance receipt settles a window that is over: `settlement_expiry_s` then
        gives its expiry instead."""
        now = int(clock.now()) if now is None else now
        if settlement_expiry_s is None and memo.end <= now:
            raise receipt.ReceiptError("delivery window has already ended: nothing to sell")
        preimage, secret = secrets.token_bytes(32), secrets.token_bytes(32)
        expiry_s = settlement_expiry_s or max(memo.start - now, 60)
        inv = self.switch.add_invoice(preimage, amount_msat, secret, now + expiry_s)
        rec = receipt.create_receipt(
            memo,
            amount_msat,
            inv.payment_hash,
            self.keys.node_priv,
            now,
            expiry_s=expiry_s,
            payment_secret=secret,
        )
        if commit:
            self.commit()
        return rec

    async def pay_invoice(self, text: str, timeout: float = 30) -> dict[str, Any]:
        inv = bolt11.payment_terms(text)  # verified; no Invoice built (on the payment's path)
        if inv.amount_msat is None:
            raise ProtocolViolation("invoice lacks payee or amount")
        if int(clock.now()) >= inv.expires_at:
            raise ProtocolViolation("invoice expired")
        return await self.pay(
            inv.payee,
            inv.payment_hash,
            inv.amount_msat,
            timeout,
            inv.min_final_cltv,
            inv.payment_secret or b"",
        )

    async def pay_invoices(self, texts: list[str], timeout: float = 30) -> list[dict[str, Any]]:
        """Pay several invoices at once, one result each (an invoice that cannot be decoded,
        is expired or has no route gets a failed result; the others are paid). Large batches
        are decoded in worker processes (`invoice_batch`); the payments of each decoded chunk
        start at once, so their HTLCs share commitments."""
        if type(self).pay_invoice is not Node.pay_invoice:  # a node that adds to each payment
            return list(await asyncio.gather(*(self.pay_invoice(t, timeout) for t in texts)))
        t0 = time.perf_counter()
        results: list[dict[str, Any] | None] = [None] * len(texts)
        started: list[tuple[int, asyncio.Future[Any]]] = []
        done_at: dict[bytes, float] = {}
        async for offset, decoded in self.decoder.chunks(texts):
            now = int(clock.now())
            for i, d in enumerate(decoded, offset):
                if isinstance(d, tuple) and now >= d[5]:
                    d = "invoice expired"
                if isinstance(d, str):
                    results[i] = _failed(b"", d)
                    continue
                payee, hash_, amount, final_cltv, secret, _ = d
                try:
                    started.append(
                        (i, self._start(payee, hash_, amount, final_cltv, secret, done_at))
                    )
                except LnError as exc:
                    results[i] = _failed(hash_, f"{type(exc).__name__}: {exc}")
            self.after()  # this chunk's payments run while the next one is decoded
        await self._wait([f for _, f in started], timeout)
        for i, fut in started:
            results[i] = _result(fut.result(), done_at, t0)
        return [r for r in results if r is not None]

    async def pay_many(
        self, jobs: list[tuple[bytes, bytes, int, int, bytes]], timeout: float
    ) -> list[dict[str, Any]]:
        """Start every payment (payee, payment hash, amount, final expiry delta, payment
        secret), run the rounds once, and wait for all outcomes (TimeoutError after
        `timeout`). Starting payments one by one would run the rounds after each."""
        t0 = time.perf_counter()
        done_at: dict[bytes, float] = {}
        futs: list[asyncio.Future[Any]] = []
        try:
            for payee, hash_, amount, final_cltv, secret in jobs:
                futs.append(self._start(payee, hash_, amount, final_cltv, secret, done_at))
        finally:
            self.after()  # the payments started so far run, whatever stopped the others
        await self._wait(futs, timeout)
        return [_result(f.result(), done_at, t0) for f in futs]

    def _start(
        self,
        payee: bytes,
        hash_: bytes,
        amount: int,
        final_cltv: int,
        secret: bytes,
        done_at: dict[bytes, float],
    ) -> asyncio.Future[Any]:
        """Queue one payment's HTLC (the caller runs `after()`); its outcome's future."""
        self.switch.pay(payee, hash_, amount, self.height, final_cltv, secret)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(functools.partial(_stamp, done_at, hash_))
        self.waiters.setdefault(hash_, []).append(fut)
        return fut

    @staticmethod
    async def _wait(futs: list[asyncio.Future[Any]], timeout: float) -> None:
        if not futs:
            return
        _, pending = await asyncio.wait(futs, timeout=timeout)
        if pending:
            for f in pending:
                f.cancel()
            raise TimeoutError(f"{len(pending)} of {len(futs)} payments still pending")

    async def pay(
        self,
        payee: bytes,
        hash_: bytes,
        amount: int,
        timeout: float,
        final_cltv: int = 18,
        payment_secret: bytes = b"",
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.switch.pay(payee, hash_, amount, self.height, final_cltv, payment_secret)
        self.after()
        pay = await self.wait_for(hash_, timeout)
        return {
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
            "payment_hash": pay.payment_hash.hex(),
            "status": pay.status,
            "preimage": pay.preimage.hex(),
            "fee_msat": pay.fee_msat,
            "reason": pay.reason,
        }


def _stamp(done_at: dict[bytes, float], key: bytes, _: asyncio.Future[Any]) -> None:
    done_at.setdefault(key, time.perf_counter())


def _result(pay: Any, done_at: dict[bytes, float], t0: float) -> dict[str, Any]:
    h = pay.payment_hash
    return {
        "latency_ms": round((done_at.get(h, t0) - t0) * 1000, 3),
        "payment_hash": h.hex(),
        "status": pay.status,
        "preimage": pay.preimage.hex(),
        "fee_msat": pay.fee_msat,
        "reason": pay.reason,
    }


def _failed(hash_: bytes, reason: str) -> dict[str, Any]:
    return {
        "latency_ms": 0.0,
        "payment_hash": hash_.hex(),
        "status": "failed",
        "preimage": "",
        "fee_msat": 0,
        "reason": reason,
    }


def _asks_close(ch: Channel) -> bool:
    """Our state of `ch` is stale (data_loss.py): the peer must hear it until it closed."""
    return ch.state == ChannelState.FORCE_CLOSING and "behind" in ch.extra
