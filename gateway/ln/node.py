"""The gateway's payment-channel node: asyncio process with BOLT-8 peers and a control API.

    uv run python -m gateway.ln.node --data-dir D --ledger-file L [--port 9735 --control-port 9736]

It prints one line ``READY {"node_id": ..., "port": ..., "control": ...}`` once listening.
Every handler follows one pattern: change channels -> let the switch react -> commit the store
(one fsync) -> send. See docs/channels.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import secrets
import struct
import time
from pathlib import Path
from typing import Any

from gateway.ln import bolt8, bolt11, receipt
from gateway.ln import channel_msgs as m
from gateway.ln.channel import Channel, ChannelState
from gateway.ln.channel_errors import LedgerPortError, ProtocolViolation
from gateway.ln.commitment import sign, verify
from gateway.ln.control import serve_control
from gateway.ln.htlc import FeePolicy
from gateway.ln.keys import load_or_create
from gateway.ln.ledger_port import (
    DISPUTE_BLOCKS,
    LedgerPort,
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

log = logging.getLogger(__name__)
LIVE = (ChannelState.OPEN, ChannelState.SHUTDOWN)
WATCHED = (
    ChannelState.OPEN,
    ChannelState.SHUTDOWN,
    ChannelState.CLOSING,
    ChannelState.FORCE_CLOSING,
)


def _policy_digest(node: bytes, p: FeePolicy) -> bytes:
    return hashlib.sha256(
        b"sgrid/policy/v1" + node + struct.pack(">QIH", p.base_msat, p.ppm, p.cltv_delta)
    ).digest()


class Node:
    def __init__(
        self, data_dir: Path, ledger: LedgerPort, policy: FeePolicy, host: str = "127.0.0.1"
    ) -> None:
        self.keys = load_or_create(data_dir)
        self.node_id = self.keys.node_id
        self.ledger = ledger
        self.host = host
        self.store = Store(data_dir / "channels.sqlite", self.keys)
        self.switch = Switch(self.node_id, policy)
        self.store.load(self.switch)
        self.switch.graph.set_policy(self.node_id, policy)
        self.peers: dict[bytes, Peer] = {}
        self.addresses: dict[bytes, tuple[str, int]] = {
            bytes.fromhex(k): (v[0], v[1]) for k, v in self.store.get_meta("peers", {}).items()
        }
        self.opening: dict[bytes, dict[str, Any]] = {}
        self.waiters: dict[bytes, list[asyncio.Future[Any]]] = {}
        self.height = ledger.height()
        self.port = 0
        self.control_port = 0
        self._tasks: list[asyncio.Task[Any]] = []

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, port: int, control_port: int, tick_s: float = 0.2) -> None:
        from gateway.ln.node_api import routes

        server = await bolt8.serve(self.host, port, self.keys.node_priv, self._on_connection)
        self.port = server.sockets[0].getsockname()[1]
        ctl = await serve_control("127.0.0.1", control_port, routes(self))
        self.control_port = ctl.sockets[0].getsockname()[1]
        for ch in self.switch.channels.values():
            if ch.state in LIVE:
                self._announce_local(ch)
        self._tasks.append(asyncio.create_task(self._ticker(tick_s)))

    def commit(self) -> None:
        self.store.commit(self.switch)

    # --- connections ---------------------------------------------------------------------------
    async def connect(self, host: str, port: int, node_id: bytes) -> None:
        if node_id in self.peers:
            return
        conn = await bolt8.connect(host, port, self.keys.node_priv, node_id)
        self.addresses[node_id] = (host, port)
        self.store.set_meta("peers", {k.hex(): list(v) for k, v in self.addresses.items()})
        self._tasks.append(asyncio.create_task(self._on_connection(conn)))
        for _ in range(100):
            if node_id in self.peers:
                return
            await asyncio.sleep(0.01)

    async def _on_connection(self, conn: Any) -> None:
        nid = conn.remote_pub
        old = self.peers.get(nid)
        if old is not None:
            await old.conn.close()
        peer = Peer(nid, conn, self.commit)
        self.peers[nid] = peer
        self.switch.online.add(nid)
        log.info("peer %s up", peer.short)
        peer.queue_named("init", globalfeatures=b"", features=b"")
        for ch in self._channels_with(nid):
            if ch.state in LIVE:
                peer.queue(ch.reestablish_msg())
            if ch.state == ChannelState.SHUTDOWN:
                peer.queue(m.Shutdown(ch.channel_id))
        self._send_graph(peer)
        peer.flush()
        try:
            await peer.run(self._dispatch)
        finally:
            if self.peers.get(nid) is peer:
                del self.peers[nid]
                self.switch.online.discard(nid)
                for ch in self._channels_with(nid):
                    self.switch.fail_unsent(ch.channel_id, "peer offline")
                self._after()
            log.info("peer %s down", peer.short)

    def _channels_with(self, nid: bytes) -> list[Channel]:
        return [c for c in self.switch.channels.values() if c.node_ids[c.remote] == nid]

    def _channel(self, cid: bytes, peer: Peer) -> Channel:
        ch = self.switch.channels.get(cid)
        if ch is None or ch.node_ids[ch.remote] != peer.node_id:
            raise ProtocolViolation(f"no channel {cid.hex()[:12]} with this peer")
        return ch

    async def _dispatch(self, peer: Peer, msg: Any) -> None:
        name = msg.name if isinstance(msg, Message) else type(msg).__name__
        handler = getattr(self, f"on_{name}", None)
        if handler is None:
            log.debug("peer %s: ignoring %s", peer.short, name)
            return
        await handler(peer, msg)
        self._after()

    def _after(self) -> None:
        """Let the switch react to settled updates, start new rounds, commit, then send."""
        for _ in range(1000):
            events = [e for ch in self.switch.channels.values() for e in ch.drain_events()]
            if events:
                self.switch.handle(events, self.height)
            moved = bool(events)
            for ch in self.switch.channels.values():
                peer = self.peers.get(ch.node_ids[ch.remote])
                if peer is None:
                    continue
                msg = ch.propose()
                if msg is not None:
                    peer.queue(msg)
                    moved = True
                if ch.state == ChannelState.SHUTDOWN and ch.me == 0 and ch.ready_to_close():
                    if not ch.extra.get("closing_sent"):
                        ch.extra["closing_sent"] = True
                        self.store.mark(ch)
                        peer.queue(ch.closing_signed())
            if not moved:
                break
        for peer in list(self.peers.values()):
            peer.flush()  # commits first when it has something to send
        self._wake_payments()

    def _wake_payments(self) -> None:
        done, self.switch.resolved = self.switch.resolved, []
        done = [h for h in done if h in self.waiters]
        if done:
            self.commit()  # the outcome is durable before anyone is told
        for h in done:
            pay = self.switch.payments[h]
            for fut in self.waiters.pop(h):
                if not fut.done():
                    fut.set_result(pay)

    def _wake(self, key: bytes, value: Any) -> None:
        for fut in self.waiters.pop(key, []):
            if not fut.done():
                fut.set_result(value)

    async def wait_for(self, key: bytes, timeout: float) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pay = self.switch.payments.get(key)
        if pay is not None and pay.status != "pending":
            return pay
        self.waiters.setdefault(key, []).append(fut)
        return await asyncio.wait_for(fut, timeout)

    # --- update protocol ----------------------------------------------------------------------
    async def on_UpdateBatch(self, peer: Peer, msg: m.UpdateBatch) -> None:
        ack = self._channel(msg.channel_id, peer).receive_update(msg)
        if ack is not None:
            peer.queue(ack)

    async def on_AckBatch(self, peer: Peer, msg: m.AckBatch) -> None:
        peer.queue(self._channel(msg.channel_id, peer).receive_ack(msg))

    async def on_Revoke(self, peer: Peer, msg: m.Revoke) -> None:
        self._channel(msg.channel_id, peer).receive_revoke(msg)

    async def on_Reestablish(self, peer: Peer, msg: m.Reestablish) -> None:
        ch = self._channel(msg.channel_id, peer)
        if ch.state in LIVE:
            for out in ch.on_reestablish(msg):
                peer.queue(out)

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
        from gateway.ln import bolt3
        from gateway.ln.channel import secret_index

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
        from gateway.ln.ledger_port import close_body

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
            if ch.state == ChannelState.FUNDING:
                view = self.ledger.channel(ch.channel_id)
                if view is not None and view.status == "open":
                    self._opened(ch)
            elif ch.state in WATCHED:
                self._watch(ch)
        self._after()
        self.commit()

    def _watch(self, ch: Channel) -> None:
        view = self.ledger.channel(ch.channel_id)
        if view is None:
            return
        me = "ab"[ch.me]
        if view.status in ("closed", "penalized"):
            if ch.state in LIVE:
                self.switch.on_force_closed(ch.channel_id)
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

    # --- invoices and payments ---------------------------------------------------------------------
    def create_invoice(
        self,
        amount_msat: int,
        memo: receipt.EnergyMemo,
        now: int | None = None,
        commit: bool = True,
    ) -> receipt.Receipt:
        preimage = secrets.token_bytes(32)
        inv = self.switch.add_invoice(preimage, amount_msat)
        now = int(time.time()) if now is None else now
        rec = receipt.create_receipt(
            memo,
            amount_msat,
            inv.payment_hash,
            self.keys.node_priv,
            now,
            expiry_s=max(memo.start - now, 60),
        )
        if commit:
            self.commit()
        return rec

    async def pay_invoice(self, text: str, timeout: float = 30) -> dict[str, Any]:
        inv = bolt11.decode(text)
        if inv.payee is None or inv.amount_msat is None:
            raise ProtocolViolation("invoice lacks payee or amount")
        if inv.is_expired(int(time.time())):
            raise ProtocolViolation("invoice expired")
        return await self.pay(inv.payee, inv.payment_hash, inv.amount_msat, timeout)

    async def pay(self, payee: bytes, hash_: bytes, amount: int, timeout: float) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.switch.pay(payee, hash_, amount, self.height)
        self._after()
        pay = await self.wait_for(hash_, timeout)
        return {
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
            "payment_hash": pay.payment_hash.hex(),
            "status": pay.status,
            "preimage": pay.preimage.hex(),
            "fee_msat": pay.fee_msat,
            "reason": pay.reason,
        }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--ledger-file", type=Path, help="shared SQLite ledger (tests, demos)")
    ap.add_argument("--ledger-url", help="the real ledger node's HTTP API")
    ap.add_argument("--base-fee-msat", type=int, default=1000)
    ap.add_argument("--fee-ppm", type=int, default=100)
    ap.add_argument("--cltv-delta", type=int, default=6)
    ap.add_argument("--refuse-forwarding", action="store_true")
    ap.add_argument("--tick", type=float, default=0.2)
    ap.add_argument("-v", "--verbose", action="count", default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    ledger: LedgerPort
    if args.ledger_url:
        from gateway.ln.ledger_http import HttpLedger

        ledger = HttpLedger(args.ledger_url)
    elif args.ledger_file:
        from gateway.ln.ledger_file import FileLedger

        ledger = FileLedger(args.ledger_file)
    else:
        ap.error("give --ledger-file or --ledger-url")
    policy = FeePolicy(args.base_fee_msat, args.fee_ppm, args.cltv_delta)

    async def run() -> None:
        node = Node(args.data_dir, ledger, policy)
        node.switch.refuse_forwarding = args.refuse_forwarding
        await node.start(args.port, args.control_port, args.tick)
        info = {"node_id": node.node_id.hex(), "port": node.port, "control": node.control_port}
        print("READY " + json.dumps(info), flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
