"""Closing a channel: shutdown, the cooperative split, force close, and the penalty secret.

Builds on `core.ChannelCore`; `channel.Channel` builds on this (pure, no I/O).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.ln.channel.commitment import Commitment, Htlc, sign, verify
from gateway.ln.channel.core import ChannelCore
from gateway.ln.channel.htlc import AddHtlc, FulfillHtlc, decode_updates, encode_updates
from gateway.ln.channel.ledger_bodies import close_body, digest
from gateway.ln.channel.messages import ClosingSigned
from gateway.ln.channel.state import ChannelState, Event, OutgoingSettled, secret_index
from gateway.ln.errors import IllegalTransition, ProtocolViolation

log = logging.getLogger("gateway.ln.channel")
# `extra` key: [[number, our adds], ...] of our proposals dropped by a crossing batch (party 1's):
# the peer holds our signature of that state with these HTLCs until it revokes its number
HELD_ADDS = "held_adds"
# `extra` key: [[number, our HTLC as an add, reason], ...] of our HTLCs that the peer's batch
# which won a crossing failed: the dropped state of that number, which the peer holds signed
# and has not revoked, still holds them, so the fail is final (upstream) only at that revoke
HELD_FAILS = "held_fails"


class ChannelClosing(ChannelCore):
    """Shutdown, the cooperative close, force close, and the penalty secret."""

    # --- closing ---------------------------------------------------------------------------
    def drop_pending_adds(self, reason: str) -> list[Event]:
        """Forget HTLCs we queued but never proposed; returned as failed events to unwind. The
        adds of a dropped proposal the peer may still publish (`held_adds`) stay queued:
        failing them upstream while the peer may claim them on the ledger would pay twice, and
        their ids must not be reused (a shutdown holds them apart: `shutdown`)."""
        adds = [u for u in self.pending if isinstance(u, AddHtlc)]
        held = set(self.held_adds())
        top = max((k[1] for k in held), default=-1)
        dropped = [u for u in adds if u.htlc_id > top]  # the ids after them: kept consecutive
        if not dropped:
            return []
        gone = {u.htlc_id for u in dropped}
        self.pending = [
            u for u in self.pending if not (isinstance(u, AddHtlc) and u.htlc_id in gone)
        ]
        # ids must stay consecutive: the next add reuses the first dropped id
        self.next_local_htlc_id = dropped[0].htlc_id
        self._persist()
        return [OutgoingSettled(self.channel_id, u.htlc(), None, reason) for u in dropped]

    def shutdown(self) -> list[Event]:
        """Stop adding HTLCs. Queued adds never proposed are failed back (returned as events).
        Those of a dropped proposal the peer may still publish (`held_adds`) leave the queue
        too (no add is proposed after a shutdown), but fail only once the peer revoked that
        number (`held_fails`): the peer holds our signature of a state with them, and could
        claim them on the ledger after we failed them upstream."""
        if self.state == ChannelState.SHUTDOWN:
            return []
        queued = {u.htlc_id for u in self.pending if isinstance(u, AddHtlc)}
        for number, enc in self.extra.get(HELD_ADDS, ()):
            held = [u for u in _adds(enc) if u.htlc_id in queued]
            if held and number > self.remote_revoked_through:  # else: answered by the penalty
                entry = [number, encode_updates(tuple(held)).hex(), "shutdown"]
                self.extra.setdefault(HELD_FAILS, []).append(entry)
                queued -= {u.htlc_id for u in held}
        dropped = [u for u in self.pending if isinstance(u, AddHtlc) and u.htlc_id in queued]
        self.pending = [u for u in self.pending if not isinstance(u, AddHtlc)]
        self.set_state(ChannelState.SHUTDOWN)
        self._persist()
        return [OutgoingSettled(self.channel_id, u.htlc(), None, "shutdown") for u in dropped]

    def release_held(self, reason: str) -> list[Event]:
        """The channel closed cooperatively: no state but the final split can reach the ledger,
        so our held HTLCs (`held_adds`, `held_fails`), in none of it, are failed now."""
        held = {**self.held_adds(), **self.held_fails()}
        self.extra.pop(HELD_ADDS, None)
        self.extra.pop(HELD_FAILS, None)
        if held:
            self._persist()
        return [OutgoingSettled(self.channel_id, h, None, reason) for h in held.values()]

    def ready_to_close(self) -> bool:
        return (
            self.state in (ChannelState.SHUTDOWN, ChannelState.CLOSING)
            and not self.latest.htlcs
            and self.proposal is None
            and not self.pending
            and not self.awaiting_revoke
        )

    def _closing_digest(self, balances: tuple[int, int]) -> bytes:
        return digest(close_body(self.chain, self.channel_id, balances))

    def closing_signed(self) -> ClosingSigned:
        """Our node-key signature of the ledger's channel_close body with the final split."""
        if not self.ready_to_close():
            raise IllegalTransition(f"channel {self.short_id} has HTLCs or updates in flight")
        bal = self.latest.balances
        return ClosingSigned(self.channel_id, bal, sign(self.node_priv, self._closing_digest(bal)))

    def receive_closing_signed(self, msg: ClosingSigned) -> None:
        if not self.ready_to_close():
            raise ProtocolViolation("closing_signed while HTLCs or updates are in flight")
        if msg.balances != self.latest.balances:
            raise ProtocolViolation(f"closing split {msg.balances} != {self.latest.balances}")
        if not verify(self.node_ids[self.remote], self._closing_digest(msg.balances), msg.sig):
            raise ProtocolViolation("bad closing signature")
        mine = self.closing_signed().sig
        self.closing_sigs = (mine, msg.sig) if self.me == 0 else (msg.sig, mine)
        if self.state != ChannelState.CLOSING:
            self.set_state(ChannelState.CLOSING)
        else:
            self._persist()

    def force_close(self) -> tuple[dict, bytes]:
        """Give up on the peer: our newest ledger state and the peer's signature of it."""
        if self.state != ChannelState.FORCE_CLOSING:
            self.set_state(ChannelState.FORCE_CLOSING)
        return self.ledger_state(self.latest, self.me), self.remote_ledger_sig

    def on_remote_published(self, number: int) -> bytes | None:
        """The peer published commitment ``number``: the secret that proves it revoked, if so."""
        if self.state != ChannelState.FORCE_CLOSING:
            self.set_state(ChannelState.FORCE_CLOSING)
        if number <= self.remote_revoked_through:
            log.warning("channel %s: peer published revoked commitment %d", self.short_id, number)
            return self.remote_secrets.derive(secret_index(number))
        return None

    def supersede_state(self, number: int) -> tuple[dict, bytes] | None:
        """The peer published its commitment ``number`` and has not revoked it: our newer ledger
        state and the peer's signature of it, which the ledger's ``channel_supersede`` puts in
        its place while the dispute window runs (the latest state the peer signed wins). None
        if ours is not newer."""
        if number >= self.latest.number or not self.remote_ledger_sig:
            return None
        return self.ledger_state(self.latest, self.me), self.remote_ledger_sig

    def offered_htlcs(self) -> dict[tuple[int, int], Htlc]:
        """Our HTLCs the channel may still hold, by (offerer, id): those of our latest
        commitment, of our proposal, and those the peer's batch removed (fulfilled or failed)
        while the peer has not yet revoked the state before it."""
        ours = {h.key: h for h in self.unrevoked_removed if h.offerer == self.me}
        ours.update(self.held_adds())
        ours.update(self.held_fails())
        for c in self._signed_for_peer():
            ours.update({h.key: h for h in c.htlcs if h.offerer == self.me})
        return ours

    def may_come_back(self, number: int, height: int) -> set[tuple[int, int]]:
        """Our HTLCs that a state we signed for the peer with a number above ``number`` (the
        published one) holds and that can still be claimed at ``height``: a supersede (ours or
        the peer's) may still bring them onto the ledger as outputs. An HTLC past its expiry
        cannot come back claimable (claims end at the expiry), and a state where the peer
        fulfilled one gave us its preimage when we signed it (`PreimageLearned`)."""
        back = {
            h.key
            for c in self._signed_for_peer()
            if c.number > number
            for h in c.htlcs
            if h.offerer == self.me and height < h.cltv_expiry
        }
        for held in (self.held_adds(above=number), self.held_fails(above=number)):
            back.update(k for k, h in held.items() if height < h.cltv_expiry)
        return back

    def held_adds(self, above: int = -1) -> dict[tuple[int, int], Htlc]:
        """Our HTLCs in proposals a crossing batch dropped (numbered above ``above``) that the
        peer has not revoked yet: it holds our signature of that state, and may publish it (it
        has the same number as our latest, so no supersede replaces it)."""
        return self._held_htlcs(HELD_ADDS, above)

    def held_fails(self, above: int = -1) -> dict[tuple[int, int], Htlc]:
        """Our HTLCs that a crossing batch failed while our dropped state of its number
        (numbered above ``above``), not yet revoked by the peer, still holds them."""
        return self._held_htlcs(HELD_FAILS, above)

    def _held_htlcs(self, key: str, above: int) -> dict[tuple[int, int], Htlc]:
        out: dict[tuple[int, int], Htlc] = {}
        for entry in self.extra.get(key, ()):  # [number, encoded adds, ...]
            if entry[0] > above:
                for u in _adds(entry[1]):
                    out[(u.offerer, u.htlc_id)] = u.htlc()
        return out

    def _take_revoked(self, key: str) -> list[list[Any]]:
        """Remove and return the entries of ``extra[key]`` (each [number, ...]) whose number
        the peer has revoked."""
        held = self.extra.get(key)
        if not held:
            return []
        through = self.remote_revoked_through
        due = [x for x in held if x[0] <= through]
        if due:
            kept = [x for x in held if x[0] > through]
            if kept:
                self.extra[key] = kept
            else:
                del self.extra[key]
        return due

    def _release_held_fails(self) -> None:
        """The held fails whose number the peer revoked are final now: `OutgoingSettled`."""
        for _, enc, reason in self._take_revoked(HELD_FAILS):
            for u in _adds(enc):
                self.events.append(OutgoingSettled(self.channel_id, u.htlc(), None, reason))

    def _release_held_adds(self) -> None:
        """Forget the dropped proposals whose number the peer revoked (a penalty answers them)."""
        self._take_revoked(HELD_ADDS)

    def fulfils_past_deadline(self, height: int, blocks: int) -> list[Htlc]:
        """Incoming HTLCs we fulfil (queued or proposed) that are still in our latest commitment
        ``blocks`` or fewer blocks before their expiry: the peer has not signed the fulfil in
        time, so only a claim on the ledger (before the expiry) still pays us (BOLT 2's
        fulfilment deadline)."""
        near = [
            h
            for h in self.latest.htlcs
            if h.offerer == self.remote and height >= h.cltv_expiry - blocks
        ]
        if not near:  # every tick, for every channel: the updates are read only when needed
            return []
        ups = list(self.pending) + (list(self.proposal.updates) if self.proposal else [])
        fulfils = {(u.offerer, u.htlc_id) for u in ups if isinstance(u, FulfillHtlc)}
        return [h for h in near if h.key in fulfils]

    def _signed_for_peer(self) -> list[Commitment]:
        """The commitments whose ledger state we signed for the peer and it may still publish
        unrevoked: our latest and our proposal."""
        return [self.latest] + ([self.proposal.commitment] if self.proposal else [])

    def mark_closed(self) -> None:
        if self.state != ChannelState.CLOSED:
            self.set_state(ChannelState.CLOSED)


def _adds(enc: str) -> list[AddHtlc]:
    """The adds of an encoding kept in `extra` (hex of `encode_updates`, adds only)."""
    return [u for u in decode_updates(bytes.fromhex(enc)) if isinstance(u, AddHtlc)]
