"""Watching time and the ledger: funding seen, closes (re)submitted and settled, revoked states
penalized, HTLC outputs of force-closed channels claimed, refunded, and reported to the switch.

A component of `gateway.ln.node.node.Node`, handed the node's core and the lifecycle component.
Each tick of the node reads the ledger in a worker thread (`read`: its height and the views of
the channels `to_read` names; blocking calls, up to the ledger client's timeout and retries
when the ledger is slow or gone) and then acts on what it read on the event loop (`act`). Its
submissions (closes, penalties, claims, a supersede, a settle) and the re-reads right after
them (a channel this tick force-closed is read again before it is watched: the peer's close may
have landed first; the claims after a supersede go in the same tick) are awaited in a worker
thread too (`NodeCore.ledger_call`): each waits for a block, up to `idle_block_ms` while a
channel closes, and the node goes on paying meanwhile. `act` watches the channels side by
side, so that their submissions wait for one block together. The node runs one `act` at a time
(`Node.watch_ledger`); between its awaits other handlers run, so each step after one reads the
channel's state afresh (a channel whose close the ledger shows is FORCE_CLOSING before the
first await: it takes no new HTLC while the watch waits).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.ln.channel.channel import Channel, ChannelState, OutgoingSettled, secret_index
from gateway.ln.channel.commitment import Htlc, sign
from gateway.ln.channel.ledger_bodies import (
    close_body,
    digest,
    htlc_claim_body,
    htlc_refund_body,
    penalty_body,
    settle_body,
    supersede_body,
)
from gateway.ln.errors import LedgerPortError, LnError
from gateway.ln.node.core import LIVE, NodeCore
from gateway.ln.node.ledger_port import ChannelView, Signed
from gateway.ln.node.lifecycle import ChannelLifecycle

log = logging.getLogger("gateway.ln.node")
T = TypeVar("T")
# blocks a forwarder needs after a downstream HTLC's expiry to settle the upstream one on the
# ledger: its force close (or a supersede of the upstream peer's older state), its claim, a
# block for the peer's own close landing just before ours (ours is refused and the supersede
# takes a block), and a block of slack for a slow tick; the node's cltv_delta must be >= this
UPSTREAM_BLOCKS = 4
# a claim recorded on an output of a channel in one of these states is final
FINAL = ("settled", "closed", "penalized")
WATCHED = (
    ChannelState.OPEN,
    ChannelState.SHUTDOWN,
    ChannelState.CLOSING,
    ChannelState.FORCE_CLOSING,
)


@dataclass(frozen=True)
class LedgerReads:
    """What one tick read from the ledger: its height and, for each channel it asked for, the
    channel's view (None: unknown to the ledger) or the error that reading it raised."""

    height: int
    views: dict[bytes, ChannelView | None | LedgerPortError]


@dataclass(frozen=True)
class Due:
    """A claim or refund of an HTLC output, to submit at the end of the tick."""

    ch: Channel
    view: ChannelView
    body: dict[str, Any]
    claim: tuple[int, Htlc] | None = None  # a claim's output index and HTLC


class Watcher:
    def __init__(self, core: NodeCore, lifecycle: ChannelLifecycle) -> None:
        self.core = core
        self.lifecycle = lifecycle
        self._waiting: set[bytes] = set()  # expired HTLCs waiting for a reestablish (logged once)
        self._refused: set[tuple[bytes, str]] = set()  # supersede/penalty refusals logged
        self._unsure: set[bytes] = set()  # supersedes waiting for a reestablish (logged once)
        self._outputs_due: list[Due] = []  # this tick's claims and refunds (`_outputs`)
        problem = cltv_delta_problem(core.switch.policy.cltv_delta)
        if problem is not None:
            log.warning("configuration: %s", problem)

    # --- time and the ledger ---------------------------------------------------------------------
    def to_read(self) -> list[bytes]:
        """The channels whose ledger view the next tick needs (call on the event loop)."""
        return [
            cid
            for cid, ch in self.core.switch.channels.items()
            if ch.state == ChannelState.FUNDING or ch.state in WATCHED
        ]

    def read(self, channel_ids: list[bytes]) -> LedgerReads:
        """The ledger's height and the views of `channel_ids`: blocking I/O and nothing else,
        safe in a worker thread. LedgerPortError if the height cannot be read."""
        views: dict[bytes, ChannelView | None | LedgerPortError] = {}
        height = self.core.ledger.height()
        for cid in channel_ids:
            try:
                views[cid] = self.core.ledger.channel(cid)
            except LedgerPortError as exc:
                views[cid] = exc
        return LedgerReads(height, views)

    def tick(self, reads: LedgerReads | None = None) -> None:
        """`act` here, every ledger call blocking (None: read now): for a node not running on
        its event loop (the watch's unit tests drive it so); the node awaits `act`."""
        if reads is None:
            reads = self.read(self.to_read())
        run_now(self.act(reads))

    async def act(self, reads: LedgerReads) -> None:
        """Act on what `read` returned. A channel it did not read (it changed state meanwhile)
        waits for the next tick."""
        self.core.height = reads.height
        to_close = self.core.switch.check_timeouts(self.core.height)
        for ch in self.core.switch.channels.values():
            if ch.state in LIVE and ch.channel_id not in to_close:
                late = ch.fulfils_past_deadline(self.core.height, UPSTREAM_BLOCKS)
                if late and ch.channel_id in self.core.reestablished:
                    log.warning("channel %s: the peer has not signed our fulfil of HTLC %d, "
                                "%d blocks before it expires: closing to claim it on the ledger",
                                ch.short_id, late[0].htlc_id, UPSTREAM_BLOCKS)  # fmt: skip
                if late:
                    to_close.append(ch.channel_id)
        closing: list[tuple[Channel, Signed]] = []
        for cid in to_close:
            # the state we started from may come from an old backup: only the peer's reestablish
            # tells (data_loss.py), and publishing a stale state hands the peer the channel.
            # Waiting costs little: nobody can claim an expired HTLC on the ledger, our refund
            # only comes later (or an operator's explicit force close publishes the state).
            if cid in self.core.reestablished:
                ch = self.core.switch.channels[cid]
                try:
                    closing.append((ch, self.lifecycle.sign_force_close(ch)))
                except LnError as exc:  # a state the peer proved stale: never published
                    log.warning("channel %s: not force-closed: %s", ch.short_id, exc)
            elif cid not in self._waiting:
                self._waiting.add(cid)
                log.warning("channel %s: an HTLC expired or a fulfil is past its deadline; not "
                            "closing it before the peer reestablished it (our state may be "
                            "stale)", cid.hex()[:16])  # fmt: skip
        # together, as the claims below: a submission waits for a block, and the claims of a
        # channel closed at its deadline need the blocks before the expiry
        txs = [tx for _, tx in closing]
        answers = await self.core.ledger_call(self.core.ledger.submit_many, txs) if txs else []
        for (ch, _), refused in zip(closing, answers, strict=True):
            self.lifecycle.force_close_submitted(ch, refused)
        closed_now = {ch.channel_id for ch, _ in closing}  # read again below
        watched = [
            self._tick_read(ch, reads.views[ch.channel_id], ch.channel_id in closed_now)
            for ch in list(self.core.switch.channels.values())
            if ch.channel_id in reads.views
        ]
        if self.core.ledger_in_thread:
            # the channels side by side: their submissions (supersedes, penalties, settles)
            # wait for one block together, not for a block each, one after the other; the
            # claims after a supersede need the blocks before their HTLCs' expiry
            await asyncio.gather(*watched)
        else:
            for one in watched:  # each ledger call made in place (`tick`)
                await one
        try:
            await self._submit_outputs()
        except Exception:
            log.exception("claims and refunds: submission failed")
        self.core.after()
        self.core.commit()

    async def _tick_read(
        self, ch: Channel, view: ChannelView | None | LedgerPortError, again: bool
    ) -> None:
        """`_tick_channel` on the view read (`again`: read it again first, the peer's own close
        may have beaten the one we just submitted). A channel's trouble is logged: it must not
        stop the others being watched."""
        try:
            if again:
                view = await self._read(ch.channel_id)
            if isinstance(view, LedgerPortError):
                raise view
            await self._tick_channel(ch, view)
        except Exception:
            log.exception("channel %s: tick failed", ch.short_id)

    async def _read(self, channel_id: bytes) -> ChannelView | None:
        return await self.core.ledger_call(self.core.ledger.channel, channel_id)

    async def _submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        await self.core.ledger_call(self.core.ledger.submit, body, sigs)

    async def _tick_channel(self, ch: Channel, view: ChannelView | None) -> None:
        if ch.state == ChannelState.FUNDING:
            if view is None and ch.me == 1 and "funding_sigs" in ch.extra:
                # not committed yet (the ledger was away, or we crashed between storing both
                # signatures and submitting): submit again
                try:
                    await self._submit(ch.extra["funding"], ch.extra["funding_sigs"])
                except LedgerPortError as exc:
                    self.lifecycle.funding_refused(ch, exc)
                    return
                view = await self._read(ch.channel_id)
            if view is not None and view.status == "open" and ch.state == ChannelState.FUNDING:
                self.lifecycle.opened(ch)
        elif ch.state in WATCHED:
            await self._watch(ch, view)

    async def _watch(self, ch: Channel, view: ChannelView | None) -> None:
        if view is None or ch.state == ChannelState.CLOSED:  # closed meanwhile: nothing to do
            return
        me = "ab"[ch.me]
        if view.status == "open":
            await self._resubmit_close(ch)
            return
        if view.status == "penalized":
            self._outputs(ch, view)  # a preimage claimed before the penalty still settles ours
            self._unwind(ch, view, penalized=True)
            self.lifecycle.closed(ch)
            return
        if view.status == "closed" and view.state is None:  # cooperative: nothing in flight
            if ch.state in LIVE:
                ch.set_state(ChannelState.FORCE_CLOSING)  # closed while we were away
            self.lifecycle.closed_cooperatively(ch)
            return
        if view.state is None or view.close_height is None:
            return
        if view.status == "closing":
            self._revoked_earlier(ch, view)
        if view.status == "closing" and view.state["holder"] != self.core.node_id.hex():
            number = view.state["number"]
            if number in ch.extra.get("revoked_published", ()):
                pass  # its penalty is submitted below, every tick
            elif ch.on_remote_published(number) is not None:  # FORCE_CLOSING from now on
                self._hold_revoked(ch, number)
            else:
                self._supersede(ch, view)
        if await self._penalize(ch, view):
            # penalized: handled as such (the view shows it now)
            await self._watch(ch, await self._read(ch.channel_id))
            return
        # A revoked state is unwound as any other until the penalty commits: the peer may still
        # supersede it with a state holding our HTLCs (and claim them) before our penalty lands
        if await self._resubmit_supersede(ch, view):
            # the claims of the new state's outputs go in this tick, not the next: an HTLC near
            # its expiry may have a block or two left
            view = await self._read(ch.channel_id) or view
        if ch.state == ChannelState.CLOSED:  # closed by another handler while we waited
            return
        self._unwind(ch, view)
        self._outputs(ch, view)
        end = None if view.close_height is None else view.close_height + view.dispute_blocks
        if view.status == "closing" and end is not None and self.core.height > end:
            await self._submit_signed(settle_body(self.core.ledger.chain, ch.channel_id, me))
        if view.status == "closed" and ch.state != ChannelState.CLOSED:
            self.lifecycle.closed(ch)

    # --- a revoked state on the ledger: the penalty ----------------------------------------
    def _revoked_earlier(self, ch: Channel, view: ChannelView) -> None:
        """A revoked state the peer published earlier in this close and already replaced by a
        supersede (both may land before our tick reads the ledger): its penalty is still ours
        (the ledger takes the secret of any state the peer published, docs/ledger-api.md §3)."""
        peer, held = ch.node_ids[ch.remote].hex(), ch.extra.get("revoked_published", ())
        current = view.state["number"] if view.state else None
        for p in view.published:
            n = p["number"]
            if p["holder"] == peer and n != current and n not in held:
                if n <= ch.remote_revoked_through:
                    if ch.state != ChannelState.FORCE_CLOSING:
                        ch.set_state(ChannelState.FORCE_CLOSING)
                    self._hold_revoked(ch, n)
                    held = ch.extra["revoked_published"]

    def _hold_revoked(self, ch: Channel, number: int) -> None:
        """The peer published commitment ``number``, which it revoked: remember the number
        (committed before the penalty is submitted), so the penalty is still submitted after a
        supersede replaced that state on the ledger (the ledger takes the secret of any state
        the peer published in the close, docs/ledger-api.md §3)."""
        held = ch.extra.setdefault("revoked_published", [])
        held.append(number)
        self.core.store.mark(ch)
        self.core.commit()
        log.warning("channel %s: the peer published its revoked commitment %d: claiming the "
                    "penalty (the whole channel)", ch.short_id, number)  # fmt: skip

    async def _penalize(self, ch: Channel, view: ChannelView) -> bool:
        """Submit the penalty with the secret of each revoked state the peer published in this
        close, every tick while the channel is closing, until one commits (idempotent bodies);
        whether one committed now. A refusal is logged once per reason."""
        held = ch.extra.get("revoked_published")
        if not held or view.status != "closing":
            return False
        chain, me = self.core.ledger.chain, "ab"[ch.me]
        for number in sorted(held, reverse=True):
            secret = ch.remote_secrets.derive(secret_index(number))
            try:
                await self._submit_signed(penalty_body(chain, ch.channel_id, me, secret))
            except LedgerPortError as exc:
                if (ch.channel_id, f"penalty {number} {exc.reason}") not in self._refused:
                    self._refused.add((ch.channel_id, f"penalty {number} {exc.reason}"))
                    log.warning("channel %s: penalty with the secret of commitment %d not "
                                "committed: %s (submitted again every tick)", ch.short_id,
                                number, exc)  # fmt: skip
                continue
            log.warning("channel %s: penalty committed (the peer's revoked commitment %d): the "
                        "whole channel is ours", ch.short_id, number)  # fmt: skip
            return True
        return False

    # --- a state on the ledger older than ours: supersede it --------------------------------
    def _supersede(self, ch: Channel, view: ChannelView) -> None:
        """The peer published a state older than our latest and not revoked: sign and store
        `channel_supersede` with our latest state (the peer's signature of it), once; it is
        submitted every tick until the ledger shows it (`_resubmit_supersede`). Never from a
        state the peer proved stale (restored from an old backup): that one is revoked. Only
        once the peer reestablished the channel since our start (as the close for an expired
        HTLC): a node run from an old backup may hold a latest state it has since revoked, and
        the peer would take the whole channel with the penalty (docs/channels.md, Closing)."""
        assert view.state is not None
        if "supersede" in ch.extra or "behind" in ch.extra:
            return
        newer = ch.supersede_state(view.state["number"])
        if newer is None:
            return
        if ch.channel_id not in self.core.reestablished:
            if ch.channel_id not in self._unsure:
                self._unsure.add(ch.channel_id)
                log.warning("channel %s: the peer published commitment %d, ours is %d; not "
                            "superseding it before the peer reestablished the channel since our "
                            "start (our state may come from an old backup)", ch.short_id,
                            view.state["number"], newer[0]["number"])  # fmt: skip
            return
        body = supersede_body(self.core.ledger.chain, *newer)
        sigs = {self.core.node_id.hex(): sign(self.core.keys.node_priv, digest(body)).hex()}
        ch.extra["supersede"] = [body, sigs]
        self.core.store.mark(ch)
        self.core.commit()  # stored before it is submitted, as a force close
        log.warning("channel %s: the peer published commitment %d, ours is %d: superseding it",
                    ch.short_id, view.state["number"], body["state"]["number"])  # fmt: skip

    async def _resubmit_supersede(self, ch: Channel, view: ChannelView) -> bool:
        """Submit our stored supersede while the ledger shows an older state (idempotent: the
        same body and signature every time); whether it committed now. A refusal is logged
        once per reason until one commits."""
        stored = ch.extra.get("supersede")
        if stored is None or view.status != "closing" or view.state is None:
            return False
        body, sigs = stored
        if view.state["number"] >= body["state"]["number"]:
            return False  # ours, or a newer one the peer holds, is on the ledger
        try:
            await self._submit(body, sigs)
        except LedgerPortError as exc:
            if (ch.channel_id, exc.reason) not in self._refused:
                self._refused.add((ch.channel_id, exc.reason))
                log.warning("channel %s: supersede not committed: %s", ch.short_id, exc)
            return False
        self._refused = {r for r in self._refused if r[0] != ch.channel_id}
        log.warning(
            "channel %s: superseded with commitment %d", ch.short_id, body["state"]["number"]
        )
        return True

    # --- unwinding our HTLCs ----------------------------------------------------------------
    def _unwind(self, ch: Channel, view: ChannelView, penalized: bool = False) -> None:
        """A state is on the ledger: our HTLCs that no state can pay to the peer any more are
        failed upstream, each once. One without an output in the published state waits while a
        state we signed for the peer with a higher number holds it and it can still be claimed
        (a supersede may bring it onto the ledger); once the window is over (settled, closed,
        penalized) or no such state is left, it is failed. Those with an output wait for their
        claim or expiry (`_outputs`). Keyed by (offerer, id): a superseded state may add or drop
        outputs and renumber them."""
        if not ch.extra.get("unwound"):
            if ch.state != ChannelState.FORCE_CLOSING:
                ch.set_state(ChannelState.FORCE_CLOSING)
            ch.extra["unwound"] = True  # the channel takes no more updates: queued adds fail
            self.core.store.mark(ch)
        assert view.state is not None
        penalized = penalized or view.status == "penalized"
        outputs = None if penalized else {_key(o) for o in view.htlcs}
        reported = self._reported(ch, view)
        keep = set(reported)
        if not penalized and view.status == "closing":
            keep |= ch.may_come_back(view.state["number"], self.core.height)
        failed = self.core.switch.on_published(ch.channel_id, outputs, keep)
        if failed:
            self._save_reported(ch, reported | set(failed))

    def _reported(self, ch: Channel, view: ChannelView) -> set[tuple[int, int]]:
        stored = ch.extra.get("outputs_reported", [])
        reported = reported_keys(stored, view.htlcs)
        if any(isinstance(r, int) for r in stored):  # indexes of an earlier version: rewritten
            self._save_reported(ch, reported)  # before a supersede can renumber the outputs
        return reported

    def _save_reported(self, ch: Channel, reported: set[tuple[int, int]]) -> None:
        ch.extra["outputs_reported"] = [list(k) for k in sorted(reported)]
        self.core.store.mark(ch)

    def _outputs(self, ch: Channel, view: ChannelView) -> None:
        """The HTLC outputs of the published state: claim those we can, learn the fate of ours.

        Ours (we offered): fulfilled on the ledger -> the preimage settles it upstream; expired
        unclaimed (no block <= its expiry is left) -> failed upstream, refunded once settled.
        Theirs: claimed with the preimage while blocks up to its expiry are still to come.
        The claims and refunds go to `self._outputs_due`, submitted together at the end of the
        tick (`_submit_outputs`).
        """
        batch = self._outputs_due
        reported = self._reported(ch, view)
        chain, me, height = self.core.ledger.chain, "ab"[ch.me], self.core.height
        assert view.state is not None
        number = view.state["number"]  # a claim names its state (htlc_claim_body)
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
                if htlc.key not in reported and (not pending or height >= htlc.cltv_expiry):
                    preimage = bytes.fromhex(out["preimage"]) if out["preimage"] else None
                    reason = "" if preimage else "expired unclaimed on the ledger"
                    if not preimage and out["outcome"] == "penalized":
                        reason = "channel penalized"
                    reported.add(htlc.key)
                    self._save_reported(ch, reported)
                    self.core.switch.handle(
                        [OutgoingSettled(ch.channel_id, htlc, preimage, reason)], height
                    )
                if pending and view.status == "settled" and height > htlc.cltv_expiry:
                    batch.append(Due(ch, view, htlc_refund_body(chain, ch.channel_id, me, i)))
            elif out["preimage"] and view.status in FINAL:
                # our claim stands: paid (while the window runs a supersede may still drop it)
                self.core.switch.invoice_paid(htlc.payment_hash)
            elif pending and height < htlc.cltv_expiry:
                preimage = self.core.switch.preimage_for(ch, htlc)
                if preimage is not None:
                    body = htlc_claim_body(chain, ch.channel_id, me, i, preimage, number=number)
                    batch.append(Due(ch, view, body, (i, htlc)))

    async def _submit_outputs(self) -> None:
        """The tick's claims and refunds, of every channel, in one submission (`submit_many`):
        each submission waits for a block, and claims due at one expiry submitted one by one
        took a block each, those past the expiry refused (the peer took back HTLCs whose
        preimages we had given). A refused one is submitted again next tick."""
        batch, self._outputs_due = self._outputs_due, []
        if not batch:
            return
        signed = [(d.body, self._sigs(d.body)) for d in batch]
        answers = await self.core.ledger_call(self.core.ledger.submit_many, signed)
        for d, refused in zip(batch, answers, strict=True):
            if refused is not None:  # a refusal or an outage: submitted again next tick
                log.warning(
                    "channel %s: %s not committed: %s", d.ch.short_id, d.body["kind"], refused
                )
            elif d.claim is not None:  # a "duplicate" answer is this very claim, committed before
                i, htlc = d.claim
                if d.view.status in FINAL:  # settled: the claim paid us at once
                    self.core.switch.invoice_paid(htlc.payment_hash)
                log.warning(
                    "channel %s: claimed HTLC output %d (%d msat) with its preimage",
                    d.ch.short_id,
                    i,
                    htlc.amount_msat,
                )

    async def _resubmit_close(self, ch: Channel) -> None:
        """A close we signed is not on the ledger yet (the submission failed): submit it again,
        every tick, until it commits (the bodies are idempotent)."""
        if ch.state == ChannelState.FORCE_CLOSING and "force_close" in ch.extra:
            body, sigs = ch.extra["force_close"]
            await self._submit(body, sigs)
            log.warning("channel %s: force close submitted again", ch.short_id)
        elif ch.state == ChannelState.CLOSING and ch.closing_sigs[0] and ch.closing_sigs[1]:
            sigs = {ch.node_ids[i].hex(): ch.closing_sigs[i].hex() for i in (0, 1)}
            await self._submit(
                close_body(self.core.ledger.chain, ch.channel_id, ch.latest.balances), sigs
            )
            log.warning("channel %s: cooperative close submitted again", ch.short_id)

    def _sigs(self, body: dict[str, Any]) -> dict[str, str]:
        return {self.core.node_id.hex(): sign(self.core.keys.node_priv, digest(body)).hex()}

    async def _submit_signed(self, body: dict[str, Any]) -> None:
        await self._submit(body, self._sigs(body))


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (every ledger call made in place) to its end."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("the watch waited for a worker thread outside the node's event loop")


def _key(out: dict[str, Any]) -> tuple[int, int]:
    """An HTLC output's (offerer, id), as the channel keys its HTLCs."""
    return "ab".index(out["offerer"]), int(out["id"])


def reported_keys(stored: list[Any], outputs: list[dict[str, Any]]) -> set[tuple[int, int]]:
    """The (offerer, id) of our HTLCs whose fate was reported to the switch, from the channel's
    ``outputs_reported``: [offerer, id] pairs. A node of an earlier version stored indexes into
    the outputs of the one state it saw (there was no supersede): read against ``outputs``."""
    out: set[tuple[int, int]] = set()
    for r in stored:
        if isinstance(r, int):
            if 0 <= r < len(outputs):
                out.add(_key(outputs[r]))
        else:
            out.add((int(r[0]), int(r[1])))
    return out


def cltv_delta_problem(cltv_delta: int) -> str | None:
    """Why ``cltv_delta`` leaves a forwarder too few blocks to settle an upstream HTLC after
    the fate of the downstream one is final (docs/channels.md, Closing: the watch waits for it
    at most until the downstream HTLC's expiry, whatever the dispute window); None if it does."""
    if cltv_delta >= UPSTREAM_BLOCKS:
        return None
    return (
        f"--cltv-delta {cltv_delta} < {UPSTREAM_BLOCKS}: a forwarder learns the fate of an HTLC "
        "it offered as late as that HTLC's expiry (a claim on the ledger, or none), and then "
        f"needs {UPSTREAM_BLOCKS} blocks to settle upstream on the ledger (force close or "
        "supersede, claim, a block for the peer's close racing ours, a tick's slack) before "
        "the upstream HTLC expires: it may pay downstream and lose the upstream amount"
    )
