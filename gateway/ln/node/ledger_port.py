"""What the channel node needs from the ledger (docs/ledger-api.md), and an in-memory ledger.

The port speaks the ledger's own vocabulary: transaction bodies in canonical JSON signed over their
digest (built by `gateway.ln.channel.ledger_bodies`). `MemoryLedger` applies the channel rules of
the real ledger (funding, cooperative close, force close with a dispute window in blocks, penalty,
settle) for tests and the file ledger; `gateway.ln.node.ledger_http.HttpLedger` adapts the real
node's client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.ledger.canonical import digest
from gateway.ledger.errors import TxRejected
from gateway.ln.channel.commitment import verify
from gateway.ln.errors import LedgerPortError


@dataclass
class ChannelView:
    """The ledger's record of a channel (GET /v1/channels/{id})."""

    channel: str
    a: str
    b: str
    capacity_msat: int
    status: str  # open | closing | closed | penalized
    dispute_blocks: int
    close_height: int | None = None
    state: dict[str, Any] | None = None


class LedgerPort(Protocol):
    chain: str

    def height(self) -> int: ...

    def submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        """Record a signed transaction; idempotent; raises LedgerPortError(reason) if refused."""

    def channel(self, channel_id: bytes) -> ChannelView | None: ...

    def balance(self, account: bytes) -> int: ...


@dataclass
class MemoryLedger:
    """The channel rules of docs/ledger-api.md in memory: one block per transaction or mine()."""

    chain: str = "memory"
    accounts: dict[str, int] = field(default_factory=dict)
    channels: dict[str, ChannelView] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)
    tip: int = 0

    def height(self) -> int:
        return self.tip

    def mine(self, blocks: int = 1) -> None:
        self.tip += blocks

    def deposit(self, account: bytes, amount: int) -> None:
        self.accounts[account.hex()] = self.accounts.get(account.hex(), 0) + amount

    def balance(self, account: bytes) -> int:
        return self.accounts.get(account.hex(), 0)

    def channel(self, channel_id: bytes) -> ChannelView | None:
        return self.channels.get(channel_id.hex())

    def submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        try:
            d = digest(body)
        except TxRejected as exc:
            raise LedgerPortError("malformed", str(exc)) from exc
        if d in self.seen:
            return
        if body.get("chain") != self.chain:
            raise LedgerPortError("wrong_chain")
        handler = getattr(self, "_" + str(body.get("kind")), None)
        if handler is None:
            raise LedgerPortError("malformed")
        handler(body, sigs, d)
        self.seen.add(d)
        self.tip += 1

    def _signed(self, d: bytes, sigs: dict[str, str], *signers: str) -> None:
        if set(sigs) != set(signers):
            raise LedgerPortError("missing_signature")
        for pub in signers:
            if not verify(bytes.fromhex(pub), d, bytes.fromhex(sigs[pub])):
                raise LedgerPortError("bad_signature")

    def _open(self, cid: str, status: str) -> ChannelView:
        ch = self.channels.get(cid)
        if ch is None:
            raise LedgerPortError("unknown_channel")
        if ch.status != status:
            raise LedgerPortError(f"channel_not_{status}")
        return ch

    def _channel_fund(self, body: dict, sigs: dict[str, str], d: bytes) -> None:
        a, b = body["a"], body["b"]
        self._signed(d, sigs, a, b)
        amt_a, amt_b = body["amount_a_msat"], body["amount_b_msat"]
        if self.accounts.get(a, 0) < amt_a or self.accounts.get(b, 0) < amt_b:
            raise LedgerPortError("insufficient_funds")
        self.accounts[a] -= amt_a
        self.accounts[b] -= amt_b
        self.channels[d.hex()] = ChannelView(
            d.hex(), a, b, amt_a + amt_b, "open", body["dispute_blocks"]
        )

    def _pay_out(self, ch: ChannelView, bal_a: int, bal_b: int, status: str) -> None:
        if bal_a + bal_b != ch.capacity_msat or min(bal_a, bal_b) < 0:
            raise LedgerPortError("bad_state")
        self.accounts[ch.a] = self.accounts.get(ch.a, 0) + bal_a
        self.accounts[ch.b] = self.accounts.get(ch.b, 0) + bal_b
        ch.status = status

    def _channel_close(self, body: dict, sigs: dict[str, str], d: bytes) -> None:
        ch = self._open(body["channel"], "open")
        self._signed(d, sigs, ch.a, ch.b)
        self._pay_out(ch, body["balance_a_msat"], body["balance_b_msat"], "closed")

    def _channel_force_close(self, body: dict, sigs: dict[str, str], d: bytes) -> None:
        ch = self._open(body["channel"], "open")
        state = body["state"]
        holder = state.get("holder")
        if holder not in (ch.a, ch.b) or state.get("channel") != ch.channel:
            raise LedgerPortError("bad_state")
        if state["balance_a_msat"] + state["balance_b_msat"] != ch.capacity_msat:
            raise LedgerPortError("bad_state")
        self._signed(d, sigs, holder)
        other = ch.b if holder == ch.a else ch.a
        if not verify(bytes.fromhex(other), digest(state), bytes.fromhex(body["state_sig"])):
            raise LedgerPortError("bad_state")
        ch.status, ch.state, ch.close_height = "closing", state, self.tip + 1

    def _channel_penalty(self, body: dict, sigs: dict[str, str], d: bytes) -> None:
        ch = self._open(body["channel"], "closing")
        assert ch.state is not None and ch.close_height is not None
        claimant = ch.a if body["party"] == "a" else ch.b
        if claimant == ch.state["holder"]:
            raise LedgerPortError("not_channel_party")
        self._signed(d, sigs, claimant)
        if self.tip + 1 > ch.close_height + ch.dispute_blocks:
            raise LedgerPortError("dispute_window_closed")
        secret = bytes.fromhex(body["secret"])
        if hashlib.sha256(secret).hexdigest() != ch.state["revocation_hash"]:
            raise LedgerPortError("bad_secret")
        cap = ch.capacity_msat
        self._pay_out(ch, cap if claimant == ch.a else 0, cap if claimant == ch.b else 0, "")
        ch.status = "penalized"

    def _channel_settle(self, body: dict, sigs: dict[str, str], d: bytes) -> None:
        ch = self._open(body["channel"], "closing")
        assert ch.state is not None and ch.close_height is not None
        self._signed(d, sigs, ch.a if body["party"] == "a" else ch.b)
        if self.tip + 1 <= ch.close_height + ch.dispute_blocks:
            raise LedgerPortError("dispute_window_open")
        self._pay_out(ch, ch.state["balance_a_msat"], ch.state["balance_b_msat"], "closed")
