"""The gateway's payment-channel node: asyncio process with BOLT-8 peers and a control API.

    uv run python -m gateway.ln.node --data-dir D --ledger-file L [--port 9735 --control-port 9736]

It prints one line ``READY {"node_id": ..., "port": ..., "control": ...}`` once listening.
Every handler follows one pattern: change channels -> let the switch react -> commit the store
(one fsync) -> send. See docs/channels.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from gateway.ln import bolt8, bolt11, receipt
from gateway.ln import channel_msgs as m
from gateway.ln.channel import Channel, ChannelState
from gateway.ln.channel_errors import ProtocolViolation
from gateway.ln.control import serve_control
from gateway.ln.htlc import FeePolicy
from gateway.ln.keys import load_or_create
from gateway.ln.ledger_port import LedgerPort
from gateway.ln.node_channels import LIVE, ChannelLifecycle
from gateway.ln.peer import Peer
from gateway.ln.store import Store
from gateway.ln.switch import Switch
from gateway.ln.wire import Message

log = logging.getLogger(__name__)


class Node(ChannelLifecycle):
    def __init__(
        self,
        data_dir: Path,
        ledger: LedgerPort,
        policy: FeePolicy,
        host: str = "127.0.0.1",
        accept_max_msat: int = 0,
        control_host: str = "127.0.0.1",
    ) -> None:
        # how much of our own ledger balance we lock into a channel that a peer opens to us:
        # the opener proposes it, we decide (default: nothing, only the opener's funds)
        self.accept_max_msat = accept_max_msat
        self.keys = load_or_create(data_dir)
        self.node_id = self.keys.node_id
        self.ledger = ledger
        self.host = host
        self.control_host = control_host
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
        self._servers: list[asyncio.Server] = []

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, port: int, control_port: int, tick_s: float = 0.2) -> None:
        from gateway.ln.node_api import routes

        server = await bolt8.serve(self.host, port, self.keys.node_priv, self._on_connection)
        self.port = server.sockets[0].getsockname()[1]
        ctl = await serve_control(self.control_host, control_port, routes(self))
        self.control_port = ctl.sockets[0].getsockname()[1]
        self._servers = [server, ctl]
        for ch in self.switch.channels.values():
            if ch.state in LIVE:
                self._announce_local(ch)
        self._tasks.append(asyncio.create_task(self._ticker(tick_s)))

    async def stop(self) -> None:
        """Stop listening, close every peer connection, commit and close the store."""
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        for peer in list(self.peers.values()):
            await peer.conn.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.commit()
        self.store.close()
        log.info("node %s stopped", self.node_id.hex()[:12])

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

    # --- invoices and payments ---------------------------------------------------------------------
    def create_invoice(
        self,
        amount_msat: int,
        memo: receipt.EnergyMemo,
        now: int | None = None,
        commit: bool = True,
    ) -> receipt.Receipt:
        now = int(time.time()) if now is None else now
        if memo.end <= now:
            raise receipt.ReceiptError("delivery window has already ended: nothing to sell")
        preimage = secrets.token_bytes(32)
        inv = self.switch.add_invoice(preimage, amount_msat)
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
        return await self.pay(
            inv.payee, inv.payment_hash, inv.amount_msat, timeout, inv.min_final_cltv
        )

    async def pay(
        self, payee: bytes, hash_: bytes, amount: int, timeout: float, final_cltv: int = 18
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.switch.pay(payee, hash_, amount, self.height, final_cltv)
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


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--listen", default="127.0.0.1", help="peer port address (0.0.0.0: all)")
    ap.add_argument("--port", type=int, default=0, help="BOLT-8 peer port (0: any free one)")
    ap.add_argument("--control-port", type=int, default=0, help="control API port on 127.0.0.1")
    ap.add_argument("--ledger-file", type=Path, help="shared SQLite ledger (tests, demos)")
    ap.add_argument("--ledger-url", help="the real ledger node's HTTP API")
    ap.add_argument("--base-fee-msat", type=int, default=1000)
    ap.add_argument("--fee-ppm", type=int, default=100)
    ap.add_argument("--cltv-delta", type=int, default=6)
    ap.add_argument("--refuse-forwarding", action="store_true")
    ap.add_argument(
        "--accept-max-msat",
        type=int,
        default=0,
        help="most of our balance to commit to a channel a peer opens to us (default 0)",
    )
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
        node = Node(
            args.data_dir, ledger, policy, host=args.listen, accept_max_msat=args.accept_max_msat
        )
        node.switch.refuse_forwarding = args.refuse_forwarding
        await node.start(args.port, args.control_port, args.tick)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        info = {"node_id": node.node_id.hex(), "port": node.port, "control": node.control_port}
        print("READY " + json.dumps(info), flush=True)
        await stop.wait()
        await node.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
