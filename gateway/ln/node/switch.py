"""The HTLC switch of one node: pays, forwards, accepts and unwinds HTLCs across its channels.

Pure (no I/O): it reacts to channel events by queueing updates on channels; the node then runs
the update rounds and persists. Records that must survive a crash (invoices, forwarding links,
payments) are kept here and written by the store in the same transaction as the channels.

Atomicity: an incoming HTLC is fulfilled upstream only with the preimage learnt downstream, and
failed upstream when the downstream HTLC fails, cannot be added (no capacity, peer offline, bad
fee or expiry) or is about to expire; so either every hop settles or none does.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from gateway.ln.channel.channel import (
    Channel,
    ChannelState,
    Event,
    IncomingHtlc,
    OutgoingSettled,
    PreimageLearned,
)
from gateway.ln.channel.commitment import Htlc
from gateway.ln.channel.htlc import FailHtlc, FeePolicy
from gateway.ln.errors import ChannelError, NoRoute, PaymentFailed
from gateway.ln.node.event_failures import EventFailureLog
from gateway.ln.node.router import (
    ChannelGraph,
    ForwardInstruction,
    decode_onion,
    encode_onion,
    next_payloads,
)

log = logging.getLogger(__name__)

MIN_FINAL_CLTV = 18  # blocks the payee wants left when it receives the HTLC
FAIL_MARGIN = 2  # fail an incoming HTLC this many blocks before it expires
PRUNE_MIN = (
    4  # preimages kept with a channel before a pruning pass (each ~134 bytes of its document)
)


def link_key(channel_id: bytes, htlc_id: int) -> bytes:
    return channel_id + htlc_id.to_bytes(8, "big")


@dataclass
class Invoice:
    payment_hash: bytes
    preimage: bytes
    amount_msat: int
    min_final_cltv: int = MIN_FINAL_CLTV
    paid: bool = False
    payment_secret: bytes = b""  # the payer must send it in the final payload (BOLT-11 `s`)
    expires_at: int = 0  # unix seconds after which the invoice is not paid (0: never)


@dataclass
class Payment:
    payment_hash: bytes
    amount_msat: int
    fee_msat: int
    status: str = "pending"  # pending | succeeded | failed
    preimage: bytes = b""
    reason: str = ""


@dataclass
class Switch:
    node_id: bytes
    policy: FeePolicy = field(default_factory=FeePolicy)
    channels: dict[bytes, Channel] = field(default_factory=dict)
    graph: ChannelGraph = field(default_factory=ChannelGraph)
    invoices: dict[bytes, Invoice] = field(default_factory=dict)
    payments: dict[bytes, Payment] = field(default_factory=dict)
    # (out channel, out htlc id) -> (in channel, in htlc id)
    links: dict[tuple[bytes, int], tuple[bytes, int]] = field(default_factory=dict)
    refuse_forwarding: bool = False  # a node that will not forward (tests, maintenance)
    online: set[bytes] = field(default_factory=set)  # peers with a live connection
    dirty: set[tuple[str, bytes]] = field(default_factory=set)  # (table, key) to rewrite
    resolved: list[bytes] = field(default_factory=list)  # payment hashes that just settled
    clock: Callable[[], float] = time.time  # unix seconds, for invoice expiry
    # per channel: the size of its preimage map that starts the next pruning pass
    _prune_at: dict[bytes, int] = field(default_factory=dict, repr=False)
    failures: EventFailureLog = field(default_factory=EventFailureLog, repr=False)

    def __post_init__(self) -> None:
        self.graph.default_policy = self.policy  # a forwarder not heard from charges as we do

    # --- invoices and payments --------------------------------------------------------------
    def add_invoice(
        self,
        preimage: bytes,
        amount_msat: int,
        payment_secret: bytes = b"",
        expires_at: int = 0,
    ) -> Invoice:
        inv = Invoice(
            hashlib.sha256(preimage).digest(),
            preimage,
            amount_msat,
            payment_secret=payment_secret,
            expires_at=expires_at,
        )
        self.invoices[inv.payment_hash] = inv
        self.dirty.add(("invoices", inv.payment_hash))
        return inv

    def pay(
        self,
        dst: bytes,
        payment_hash: bytes,
        amount_msat: int,
        height: int,
        final_cltv: int = MIN_FINAL_CLTV,
        payment_secret: bytes = b"",
    ) -> Payment:
        """Start paying ``amount_msat`` to ``dst`` over the cheapest route; the payee receives
        an expiry ``final_cltv`` blocks (the invoice's min_final_cltv_expiry) plus our own
        ``cltv_delta`` ahead of the height now, and the invoice's payment secret.

        The payee refuses an HTLC whose expiry is less than ``final_cltv`` - FAIL_MARGIN blocks
        ahead of the height when it arrives (BOLT 4), so a payer sending exactly ``final_cltv``
        ahead leaves the payment FAIL_MARGIN blocks to travel. The ledger seals a block for
        every batch of transactions (about one a real second at 56 nodes, five while a channel
        closes) and a hop of a loaded grid takes seconds: a 1-hop payment met "final expiry too
        soon" that way. The payer adds a margin (BOLT 11 leaves it to the payer) of one hop's
        ``cltv_delta``, the blocks a node already allows per hop on this ledger."""
        if payment_hash in self.payments and self.payments[payment_hash].status != "failed":
            raise PaymentFailed("this payment hash is already paid or in flight")
        self._refresh_own_edges()
        final_expiry = height + final_cltv + self.policy.cltv_delta
        hops = self.graph.find_route(self.node_id, dst, amount_msat, final_expiry)
        first = hops[0]
        ch = self.channels.get(first.channel_id)
        if ch is None or ch.state != ChannelState.OPEN:
            raise NoRoute("first hop channel is not open")
        payload = encode_onion(hops, payment_secret)[0]
        ch.queue_add(first.amount_msat, payment_hash, first.cltv_expiry, payload)
        pay = Payment(payment_hash, amount_msat, first.amount_msat - amount_msat)
        self.payments[payment_hash] = pay
        self.dirty.add(("payments", payment_hash))
        log.info("pay %s: %d msat over %d hops", payment_hash.hex()[:12], amount_msat, len(hops))
        return pay

    def _refresh_own_edges(self) -> None:
        for ch in self.channels.values():
            if ch.state == ChannelState.OPEN:
                remote = ch.node_ids[ch.remote]
                spend = ch.spendable_msat() if remote in self.online else 0
                self.graph.add_channel(
                    ch.channel_id, self.node_id, remote, spend, ch.remote_balance
                )
            else:
                self.graph.remove_channel(ch.channel_id)

    # --- events from channels ---------------------------------------------------------------
    def handle(self, events: list[Event], height: int) -> None:
        """React to each event on its own: one that raises is logged (rate-limited) and
        counted, and the others, drained from the channels with it, are still handled."""
        for ev in events:
            try:
                if isinstance(ev, IncomingHtlc):
                    self._incoming(ev, height)
                elif isinstance(ev, OutgoingSettled):
                    self._settled(ev)
                elif isinstance(ev, PreimageLearned):
                    self._settled(OutgoingSettled(ev.channel_id, ev.htlc, ev.preimage))
            except Exception as exc:  # noqa: BLE001 - isolated per event, logged
                ch = self.channels.get(ev.channel_id)
                name = ch.short_id if ch else ev.channel_id.hex()[:12]
                self.failures.failed(type(ev).__name__, name, exc)

    def _fail_in(self, ch: Channel, htlc_id: int, reason: str) -> None:
        log.info("fail incoming %s/%d: %s", ch.short_id, htlc_id, reason)
        ch.queue_fail(htlc_id, reason)

    def _incoming(self, ev: IncomingHtlc, height: int) -> None:
        ch = self.channels[ev.channel_id]
        add = ev.add
        if ch.is_settling((ch.remote, add.htlc_id)):
            return  # check_timeouts already failed it for expiry before it was locked in
        if ch.state == ChannelState.SHUTDOWN:  # added as our shutdown crossed it: BOLT 2 says
            return self._fail_in(ch, add.htlc_id, "channel closing")  # not to route it
        try:
            instr = decode_onion(add.onion)
        except ChannelError as exc:
            self._fail_in(ch, add.htlc_id, str(exc))
            return
        if instr.final:
            inv = self.invoices.get(add.payment_hash)
            if inv is None:
                return self._fail_in(ch, add.htlc_id, "unknown payment hash")
            if inv.paid:  # its one paying HTLC was fulfilled in the same write as `paid`
                return self._fail_in(ch, add.htlc_id, "invoice already paid")
            if add.amount_msat < inv.amount_msat or add.amount_msat < instr.amount_msat:
                return self._fail_in(ch, add.htlc_id, "amount below the invoice")
            if add.cltv_expiry < height + inv.min_final_cltv - FAIL_MARGIN:
                return self._fail_in(ch, add.htlc_id, "final expiry too soon")
            if inv.payment_secret and instr.payment_secret != inv.payment_secret:
                return self._fail_in(ch, add.htlc_id, "payment secret missing or wrong")
            if inv.expires_at and not inv.paid and self.clock() > inv.expires_at:
                return self._fail_in(ch, add.htlc_id, "invoice expired")
            ch.queue_fulfill(add.htlc_id, inv.preimage)
            inv.paid = True
            self.dirty.add(("invoices", inv.payment_hash))
            return
        self._forward(ch, add.htlc_id, add.amount_msat, add.cltv_expiry, instr, height)

    def _forward(
        self,
        ch_in: Channel,
        htlc_id: int,
        amount_in: int,
        expiry_in: int,
        instr: ForwardInstruction,
        height: int,
    ) -> None:
        out = self._next_channel(instr)
        if self.refuse_forwarding:
            return self._fail_in(ch_in, htlc_id, "forwarding refused")
        if out is None:
            return self._fail_in(ch_in, htlc_id, "unknown next channel")
        if out.node_ids[out.remote] not in self.online:
            return self._fail_in(ch_in, htlc_id, "next hop offline")
        if amount_in - instr.amount_msat < self.policy.fee(instr.amount_msat):
            return self._fail_in(ch_in, htlc_id, "fee insufficient")
        if expiry_in - instr.cltv_expiry < self.policy.cltv_delta or instr.cltv_expiry <= height:
            return self._fail_in(ch_in, htlc_id, "expiry too soon")
        incoming = ch_in.htlc((ch_in.remote, htlc_id))
        assert incoming is not None
        try:
            add = out.queue_add(
                instr.amount_msat, incoming.payment_hash, instr.cltv_expiry, next_payloads(instr)
            )
        except ChannelError as exc:
            return self._fail_in(ch_in, htlc_id, f"cannot forward: {exc}")
        self.links[(out.channel_id, add.htlc_id)] = (ch_in.channel_id, htlc_id)
        self.dirty.add(("links", link_key(out.channel_id, add.htlc_id)))

    def _next_channel(self, instr: ForwardInstruction) -> Channel | None:
        """The open channel to forward over: the one the route names, or else (BOLT 4's
        non-strict forwarding) another open channel to the same next node that can carry the
        amount. The payer's graph may name a channel that was closed and reopened under a new
        id (the graph learns remote channels by gossip and never forgets one): at 56 nodes
        1,599 of 1,700 multi-hop payments failed with "unknown next channel" that way."""
        named = self.channels.get(instr.channel_id)
        if named is not None and named.state == ChannelState.OPEN:
            return named
        others = [
            c
            for c in self.channels.values()
            if c.state == ChannelState.OPEN
            and c.node_ids[c.remote] == instr.node
            and c.spendable_msat() >= instr.amount_msat
        ]
        return max(others, key=lambda c: c.spendable_msat(), default=None)

    def _prune_preimages(self, ch: Channel, known: dict[str, str]) -> None:
        """Forget the preimages of incoming HTLCs that left both our latest commitment and our
        proposal: our fulfil is then in a commitment the peer signed, and it revoked every
        state of its own holding the HTLC (it sent that secret with its ack), so no state the
        peer may publish has its output. Runs when the map doubled since the last pass (the
        channel document carries it in every commit)."""
        live = {h.payment_hash.hex() for h in ch.latest.htlcs if h.offerer == ch.remote}
        if ch.proposal is not None:
            live.update(
                h.payment_hash.hex() for h in ch.proposal.commitment.htlcs if h.offerer == ch.remote
            )
        for key in [k for k in known if k not in live]:
            del known[key]
        self._prune_at[ch.channel_id] = max(PRUNE_MIN, 2 * len(known))

    def _settled(self, ev: OutgoingSettled) -> None:
        """Our HTLC settled (or its preimage is known): settle upstream / finish the payment.
        Runs at most once per HTLC: the link and the pending status are consumed."""
        link = self.links.pop((ev.channel_id, ev.htlc.htlc_id), None)
        if link is not None:
            self.dirty.add(("links", link_key(ev.channel_id, ev.htlc.htlc_id)))
            ch_in = self.channels[link[0]]
            if ev.preimage is not None:
                # kept with the channel: if it is force-closed before the fulfil is signed, the
                # node claims the HTLC output on the ledger with it
                known = ch_in.extra.setdefault("preimages", {})
                known[ev.htlc.payment_hash.hex()] = ev.preimage.hex()
                if len(known) > self._prune_at.get(ch_in.channel_id, PRUNE_MIN):
                    self._prune_preimages(ch_in, known)
                if ch_in.state in (ChannelState.OPEN, ChannelState.SHUTDOWN):
                    ch_in.queue_fulfill(link[1], ev.preimage)
                else:
                    ch_in._queued()  # persist the preimage; the ledger claim settles it
            elif ch_in.state in (ChannelState.OPEN, ChannelState.SHUTDOWN):
                self._fail_in(ch_in, link[1], ev.reason)
            return
        pay = self.payments.get(ev.htlc.payment_hash)
        if pay is None or pay.status != "pending":
            return
        if ev.preimage is not None:
            pay.status, pay.preimage = "succeeded", ev.preimage
        else:
            pay.status, pay.reason = "failed", ev.reason
        self.dirty.add(("payments", pay.payment_hash))
        self.resolved.append(pay.payment_hash)
        log.info("payment %s %s %s", pay.payment_hash.hex()[:12], pay.status, pay.reason)

    # --- time ---------------------------------------------------------------------------------
    def check_timeouts(self, height: int) -> list[bytes]:
        """Fail incoming HTLCs about to expire; the channels whose outgoing HTLCs expired must
        be force-closed (the ledger then refunds them to us). Returns those channel ids."""
        to_close = []
        waiting = set(self.links.values())
        for ch in self.channels.values():
            if ch.state not in (ChannelState.OPEN, ChannelState.SHUTDOWN):
                continue
            for h in ch.latest.htlcs:
                if h.offerer == ch.remote and not ch.is_settling(h.key):
                    linked = (ch.channel_id, h.htlc_id) in waiting
                    if height >= h.cltv_expiry - FAIL_MARGIN and not linked:
                        self._fail_in(ch, h.htlc_id, "expired")
                elif h.offerer == ch.me and height >= h.cltv_expiry:
                    to_close.append(ch.channel_id)
                    break
        return to_close

    def fail_unsent(self, channel_id: bytes, reason: str) -> None:
        """The peer went offline: HTLCs we queued but never proposed are failed back now."""
        ch = self.channels[channel_id]
        self.handle(ch.drop_pending_adds(reason), 0)

    def on_published(
        self,
        channel_id: bytes,
        outputs: set[tuple[int, int]] | None,
        keep: Collection[tuple[int, int]] = (),
    ) -> list[tuple[int, int]]:
        """A state of the channel is on the ledger with HTLC outputs ``outputs`` ((offerer, id);
        None: the channel was penalized, nothing is paid per HTLC). Queued adds never proposed
        fail at once. Our HTLCs the channel may still hold (`Channel.offered_htlcs`) without an
        output and not in ``keep`` (already reported, or a state we signed with a higher number
        may still bring them onto the ledger) failed and are unwound upstream now; those with an
        output wait for their claim or expiry. Returns the (offerer, id) of those failed. Called
        again when the published state changes (a supersede): each HTLC is failed once."""
        ch = self.channels[channel_id]
        self.handle(ch.drop_pending_adds("channel force-closed"), 0)
        ours = ch.offered_htlcs()
        gone = [
            h
            for k, h in sorted(ours.items())
            if (outputs is None or k not in outputs) and k not in keep
        ]
        self.handle([OutgoingSettled(channel_id, h, None, "channel force-closed") for h in gone], 0)
        return [h.key for h in gone]

    def invoice_paid(self, payment_hash: bytes) -> None:
        """Our claim of an HTLC output paying this invoice is final on the ledger (the watch
        calls it once the window is over with the output fulfilled, or the channel penalized):
        a claim recorded while the window runs may still be dropped by a supersede."""
        inv = self.invoices.get(payment_hash)
        if inv is not None and not inv.paid:
            inv.paid = True
            self.dirty.add(("invoices", payment_hash))

    def preimage_for(self, ch: Channel, htlc: Htlc) -> bytes | None:
        """The preimage of an incoming HTLC, if we hold it and may claim it on the ledger: our
        invoice (paid in full), or one learnt downstream while forwarding it. None for an HTLC
        we fail (queued or proposed: the peer may supersede with the state where it went back,
        dropping our claim, and would hold the preimage from the ledger) or that was settled in
        the channel (added before our latest commitment and gone from it: every state the peer
        holds with it is revoked, the penalty answers it). One added after our latest (a state
        newer than ours is on the ledger: we run from a backup) is claimed."""
        if _failing(ch, htlc.key):
            return None
        if ch.htlc(htlc.key) is None and htlc.htlc_id < ch.latest.next_htlc_ids[ch.remote]:
            return None
        inv = self.invoices.get(htlc.payment_hash)
        if inv is not None and htlc.amount_msat >= inv.amount_msat:
            return inv.preimage
        known = ch.extra.get("preimages", {}).get(htlc.payment_hash.hex())
        return bytes.fromhex(known) if known else None


def _failing(ch: Channel, key: tuple[int, int]) -> bool:
    """Whether we queued or proposed a fail of incoming HTLC ``key``."""
    ups = list(ch.pending) + (list(ch.proposal.updates) if ch.proposal else [])
    return any(isinstance(u, FailHtlc) and (u.offerer, u.htlc_id) == key for u in ups)
