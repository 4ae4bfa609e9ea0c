"""The grid node inside `sgrid gateway run`: channel node, credit delivery, anchoring, channels.

Started by the gateway service when `node.enabled = true`. The meter bridge runs whatever happens
here: until the ledger answers, the node waits (retrying every few seconds) and readings are still
ingested and acknowledged. Loops:

* credit: every second (and at once after each payment) reconcile the credit book with the
  node's payments and publish the tokens that are due (gateway/grid/credit_desk.py);
* anchor: every `anchor.interval_s` anchor the readings stored since the last batch
  (gateway/grid/anchor_loop.py);
* channels: connect to and open the channels the topology asks for (gateway/grid/channel_loop.py);
* surplus: after each settlement period, sell the meter's unsold export to the POD, or (the POD)
  keep its surplus purchases up to date (gateway/grid/surplus_link.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from gateway import clock
from gateway.config import GatewayConfig
from gateway.credit.issuer import TokenIssuer
from gateway.crypto import SiteKey
from gateway.grid import anchoring
from gateway.grid.anchor_loop import Anchorer
from gateway.grid.channel_loop import channel_loop
from gateway.grid.credit_book import CreditBook
from gateway.grid.credit_desk import CreditDesk
from gateway.grid.exchange import Exchange
from gateway.grid.node import GridNode
from gateway.grid.pod_surplus import MeterEntry
from gateway.grid.startup import listening, log_failure
from gateway.grid.surplus_book import PodPurchases, SurplusBook
from gateway.ingest.store import ReadingStore
from gateway.ledger.client import LedgerClient, NotFound
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.codec import bolt11, receipt
from gateway.ln.errors import LedgerPortError, LnError
from gateway.ln.node.api import routes
from gateway.ln.node.control import serve_control
from gateway.ln.node.control_guard import load_or_create_token
from sgcore import token as tk
from sgcore import topics

log = logging.getLogger("gateway.grid")

Publish = Callable[[str, bytes], None]
LEDGER_RETRY_S = 5.0


class NoCreditMeter(LnError):
    """This node is asked to buy energy but its meter (node.meter) is not enrolled here."""


class GridRuntime:
    def __init__(
        self, cfg: GatewayConfig, store: ReadingStore, site_key: SiteKey, publish: Publish
    ) -> None:
        self.cfg = cfg
        self.grid = cfg.grid
        self.publish = publish
        self._store_path = store.path
        self._site_key = site_key
        # SQLite objects are made on the node's own thread, in _open()
        self.store: ReadingStore
        self.issuer: TokenIssuer
        self.book: CreditBook
        self.desk: CreditDesk
        self.anchors: anchoring.AnchorBook
        self.sales: SurplusBook
        self.purchases: PodPurchases | None = None
        urls = [u.strip() for u in self.grid.ledger.url.split(",") if u.strip()]
        self.ledger = LedgerClient(urls, timeout=self.grid.ledger.timeout_s, retries=1)
        self.node: GridNode | None = None
        self._control: asyncio.Server | None = None
        self.control_port = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake_credit = asyncio.Event()
        self._tag_keys: dict[bytes, bytes] = {}  # meter id -> delivery-tag key
        self._stop_requested = asyncio.Event()
        self.exchange: Exchange | None = None
        self.anchorer: Anchorer | None = None

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the grid node on its own thread and event loop: the channel node's ledger calls
        block (urllib), and must never hold up the meter bridge's ingest loop."""
        self._loop = asyncio.new_event_loop()
        self._stop_requested = asyncio.Event()
        self._thread = threading.Thread(target=self._thread_main, name="grid-node", daemon=True)
        self._thread.start()

    def _thread_main(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except Exception:
            log.exception("the grid node stopped on an error")
        finally:
            self._loop.close()

    def _open(self) -> None:
        cfg = self.cfg
        # its own connection to the reading store (WAL: readers never block the ingest's writes)
        self.store = ReadingStore(self._store_path)
        tokens_db = cfg.state_dir / "tokens.sqlite3"
        self.issuer = TokenIssuer(self._site_key, tokens_db)
        self.book = CreditBook(tokens_db)
        self.desk = CreditDesk(  # token expiry in the meters' time (virtual on a bench)
            self.book,
            self.issuer,
            self.grid.credit.token_expiry_s,
            self.grid.credit.resend_s,
            wall=clock.now,
        )
        self.anchors = anchoring.AnchorBook(cfg.state_dir / "anchors.sqlite3")
        self.sales = SurplusBook(cfg.state_dir / "surplus.sqlite3")
        if self.grid.market.role == "pod":
            self.purchases = PodPurchases(cfg.state_dir / "pod_surplus.sqlite3")

    async def _main(self) -> None:
        self._open()
        self._wake_credit = asyncio.Event()
        bring_up = asyncio.create_task(self._bring_up(), name="grid-node")
        bring_up.add_done_callback(log_failure)
        self._tasks.append(bring_up)
        await self._stop_requested.wait()
        await self._stop_here()

    def _in_node_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn` on the grid node's loop (called from the gateway's loop)."""
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop closed meanwhile: we are stopping
                pass

    async def stop(self) -> None:
        """From the gateway's loop: stop the node thread and wait for it."""
        if self._thread is None:
            return
        self._in_node_loop(self._stop_requested.set)
        await asyncio.to_thread(self._thread.join, 30)

    async def _stop_here(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.exchange is not None:
            await self.exchange.stop()
        if self._control is not None:
            self._control.close()
        if self.node is not None:
            await self.node.stop()
        self.book.close()
        self.issuer.close()
        self.anchors.close()
        self.sales.close()
        if self.purchases is not None:
            self.purchases.close()
        self.store.close()

    async def _bring_up(self) -> None:
        node = await self._make_node()
        node.on_purchase = self._on_purchase
        node.on_outcome = self._on_outcome
        node.on_issued = lambda rec: self.sales.record_sale(rec.payment_hash, rec.memo)
        n = self.grid.node
        await listening(lambda: node.start(n.port, n.tick_s),
                        f"node.port: the channel node cannot listen on {n.listen}:{n.port}")  # fmt: skip
        self.exchange = Exchange(self.cfg, node, self.store, self.book, self.credit_meter,
                                 self.sales, self.purchases, self._ledger_meter)  # fmt: skip
        api = routes(node) | self.exchange.routes()
        token = load_or_create_token(n.data_dir)
        self._control = await listening(
            lambda: serve_control(n.control_listen, n.control_port, api, token),
            f"node.control_port: the control API cannot listen on "
            f"{n.control_listen}:{n.control_port}",
        )
        self.control_port = self._control.sockets[0].getsockname()[1]
        self.node = node
        made = self.desk.reconcile(node.payment_outcome, startup=True)
        log.info("channel node %s on %s:%d (control %s:%d); %d tokens to issue after restart",
                 node.node_id.hex(), n.listen, node.port, n.control_listen, self.control_port,
                 made)  # fmt: skip
        self._tasks.append(asyncio.create_task(self._credit_loop(), name="grid-credit"))
        if self.grid.anchor.enabled:
            self.anchorer = Anchorer(self.cfg, self.store, self.anchors, self.ledger,
                                     lambda: node.keys.node_priv)  # fmt: skip
            self._tasks.append(asyncio.create_task(self.anchorer.run(), name="grid-anchor"))
        if self.grid.topology.nodes:
            channels = channel_loop(node, self.grid)
            self._tasks.append(asyncio.create_task(channels, name="grid-channels"))
        if self.exchange.producer is not None:
            produce = asyncio.create_task(self.exchange.producer_loop(), name="grid-producer")
            self._tasks.append(produce)
        if self.exchange.seller is not None or self.exchange.buyer is not None:
            surplus = asyncio.create_task(self.exchange.surplus_loop(), name="grid-surplus")
            self._tasks.append(surplus)
        if self.grid.node.meter and self.grid.market.forward_to:
            settle = asyncio.create_task(self.exchange.settle_loop(), name="grid-settle")
            self._tasks.append(settle)
            m = self.grid.market
            if m.last_resort and (m.need_wh_per_hour or m.forecast_file is not None):
                topup = asyncio.create_task(self.exchange.topup_loop(), name="grid-topup")
                self._tasks.append(topup)

    async def _make_node(self) -> GridNode:
        from gateway.ln.node.ledger_http import HttpLedger

        n = self.grid.node
        while True:
            try:
                ledger = await asyncio.to_thread(
                    HttpLedger, self.grid.ledger.url, self.grid.ledger.timeout_s
                )
                policy = FeePolicy(n.base_fee_msat, n.fee_ppm, n.cltv_delta)
                return GridNode(n.data_dir, ledger, policy, host=n.listen,
                                accept_max_msat=n.accept_max_msat)  # fmt: skip
            except LedgerPortError as exc:
                log.warning("ledger %s: %s (retrying in %gs)", self.grid.ledger.url, exc,
                            LEDGER_RETRY_S)  # fmt: skip
                await asyncio.sleep(LEDGER_RETRY_S)

    # --- payment -> credit -----------------------------------------------------------------------

    def credit_meter(self) -> bytes | None:
        """The meter credited with the energy this node buys (None: this node buys for none)."""
        name = self.grid.node.meter
        if not name:
            return None
        if len(name) == 32 and all(c in "0123456789abcdef" for c in name):
            mid = bytes.fromhex(name)
            return mid if self.store.meter(mid) is not None else None
        return next((m.meter_id for m in self.store.meters() if m.label == name), None)

    def _on_purchase(self, inv: bolt11.Invoice, memo: receipt.EnergyMemo) -> None:
        if not self.grid.node.meter:
            return
        meter = self.credit_meter()
        if meter is None:
            raise NoCreditMeter(
                f"node.meter {self.grid.node.meter!r} is not enrolled at this gateway: "
                "refusing to pay for energy no meter would release"
            )
        assert inv.amount_msat is not None
        self.desk.purchase(inv.payment_hash, meter, memo, inv.amount_msat)

    def _on_outcome(self, payment_hash: bytes) -> None:
        assert self.node is not None
        outcome = self.node.payment_outcome(payment_hash)
        if outcome is not None and outcome[0] == "succeeded":
            self.node.commit()  # the settled payment is on disk before its token exists
        if outcome is not None:
            self.desk.settle(payment_hash, *outcome)
        elif (row := self.book.get(payment_hash)) is not None and row.status == "paying":
            self.book.set_status(payment_hash, "failed", "not sent")
        self._wake_credit.set()

    def _send_due(self, now_for: bytes | None = None) -> None:
        for meter_id, token in self.desk.due(now_for):
            payload = token + self._delivery_tag(meter_id, token)
            self.publish(topics.meter_topic(self.cfg.site, meter_id.hex(), "token"), payload)

    def _delivery_tag(self, meter_id: bytes, token: bytes) -> bytes:
        """The token's delivery tag (sgcore.token): the meter verifies tagged tokens before a
        flood of forgeries. b"" when the meter is not enrolled here (it still verifies)."""
        key = self._tag_keys.get(meter_id)
        if key is None:
            row = self.store.meter(meter_id)
            if row is None:
                return b""
            key = self._tag_keys[meter_id] = self._site_key.delivery_key(row.pubkey)
        return tk.delivery_tag(key, token)

    async def _credit_loop(self) -> None:
        assert self.node is not None
        while True:
            try:
                if self.book.in_status("paying"):
                    self.node.commit()
                self.desk.reconcile(self.node.payment_outcome)
                self._send_due()
            except Exception:  # the loop must survive one bad row; it is retried next round
                log.exception("credit delivery round failed")
            self._wake_credit.clear()
            try:
                await asyncio.wait_for(self._wake_credit.wait(), timeout=1.0)
            except TimeoutError:
                pass

    def on_event(self, meter_hex: str, payload: bytes) -> None:
        """A meter event (from the gateway's loop)."""
        self._in_node_loop(self._on_event, meter_hex, payload)

    def meter_online(self, meter_id: bytes) -> None:
        """A meter came online (from the gateway's loop): its due token goes at once."""
        self._in_node_loop(self._send_due, meter_id)

    def _on_event(self, meter_hex: str, payload: bytes) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if isinstance(event, dict) and self.desk.on_event(bytes.fromhex(meter_hex), event):
            self._send_due()  # the next token for this meter, if any, goes now

    def _ledger_meter(self, meter_id: bytes) -> MeterEntry | None:
        """The ledger's entry of a meter (blocking: called off the loop), None if not enrolled."""
        try:
            m = self.ledger.meter(meter_id.hex())
        except NotFound:
            return None
        return MeterEntry(bytes.fromhex(str(m["pubkey"])), bytes.fromhex(str(m["owner"])))
