"""The market agent of one node: the API the gateway service (issue 12) and `sgrid sim` use.

    agent = MarketAgent(node_id, strategy, MarketParams(gate_closure_s=300))
    specs   = agent.plan(now, forecast, state)          # receipts to issue now (ReceiptSpec)
    receipt = agent.issue(spec, node_key, payment_hash, now)   # a signed BOLT-11 energy receipt
    offered = agent.read(receipt.invoice, receipt.memo_json)   # decode one offered to us
    action  = agent.decide(offered, now, forecast, state)      # PAY (whole) or FORWARD to the POD
    agent.paid(offered, state) / agent.sold(spec, state)       # book the outcome in the state
    orders  = agent.orders(window, now, forecast, state)       # (offers, bids) for an auction round
    specs   = agent.receipts_for(clearing, window)             # matched trades -> receipts we issue

Settlement at delivery is `gateway.market.settlement.settle_period` (pure) fed from the reading
store by `gateway.market.readings.metered`. The agent does no I/O: the caller holds the node key,
makes payment hashes (preimages), sends and pays receipts over its channels.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.ln.codec import receipt as ln_receipt
from gateway.market.book import Clearing, Order
from gateway.market.errors import MarketError
from gateway.market.forecast import Forecast, NodeState, Window
from gateway.market.strategies import OfferedReceipt, Strategy
from gateway.market.units import amount_msat


class Action(enum.Enum):
    PAY = "pay"  # pay the receipt, whole (never partially)
    FORWARD = "forward"  # discard it towards the POD


@dataclass(frozen=True)
class MarketParams:
    gate_closure_s: int = 300  # receipts for a window expire this long before it starts
    horizon_s: int = 24 * 3600  # plan windows starting within this horizon (day-ahead)
    window_s: int = 900  # delivery windows (15-minute slots; 3600 for hourly)


@dataclass(frozen=True, slots=True)
class ReceiptSpec:
    """A receipt to issue: `wh` in `window` for `amount_msat`, optionally meant for `buyer`."""

    window: Window
    wh: int
    price_msat_per_kwh: int
    buyer: str | None = None
    profile_wh: tuple[int, ...] | None = None  # Wh per equal step of the window (sum == wh)

    def __post_init__(self) -> None:
        if self.profile_wh is not None:
            length = self.window.end - self.window.start
            if not self.profile_wh or length % len(self.profile_wh):
                raise MarketError("a profile needs steps that divide the window evenly")
            if sum(self.profile_wh) != self.wh or min(self.profile_wh) < 0:
                raise MarketError("a profile's steps must be >= 0 Wh and sum to its wh")

    @property
    def amount_msat(self) -> int:
        return amount_msat(self.wh, self.price_msat_per_kwh)


def wh_of(memo: ln_receipt.EnergyMemo) -> int:
    """The memo's energy in whole Wh. The memo carries kWh (or kW per step); Wh -> kWh -> Wh
    rounds back exactly: `round(kwh * 1000)`, per step `round(kw * step_s / 3.6)`."""
    return sum(profile_of(memo)) if memo.kw is not None else round(memo.energy_kwh * 1000)


def profile_of(memo: ln_receipt.EnergyMemo) -> tuple[int, ...]:
    """Wh per step of a profile memo (empty for an energy memo)."""
    if memo.kw is None or memo.step_s is None:
        return ()
    return tuple(round(kw * memo.step_s / 3.6) for kw in memo.kw)


class MarketAgent:
    def __init__(self, node: str, strategy: Strategy, params: MarketParams | None = None) -> None:
        self.node = node
        self.strategy = strategy
        self.params = params or MarketParams()

    def gate_closure(self, window: Window) -> int:
        return window.start - self.params.gate_closure_s

    def open_windows(self, now: int, forecast: Forecast) -> list[Window]:
        """Forecast windows still tradable: gate closure not passed, within the horizon."""
        return [
            w
            for w, _ in forecast.points
            if now < self.gate_closure(w) and w.start - now <= self.params.horizon_s
        ]

    def plan(self, now: int, forecast: Forecast, state: NodeState) -> list[ReceiptSpec]:
        """Receipts to issue now for every open window (day-ahead, then intraday updates)."""
        out = []
        for w in self.open_windows(now, forecast):
            position = state.position(w)
            for wh, price in self.strategy.offers(forecast.net_wh(w), position):
                out.append(ReceiptSpec(w, wh, price))
        return out

    def profile(
        self, window: Window, now: int, forecast: Forecast, state: NodeState
    ) -> ReceiptSpec | None:
        """One receipt with a power profile for a long window (e.g. an hour) from the forecast's
        shorter windows inside it: the surplus per step the strategy offers (None if nothing)."""
        steps = [w for w, _ in forecast.points if window.start <= w.start and w.end <= window.end]
        if not steps or now >= self.gate_closure(window):
            return None
        per_step, price = [], 0
        for w in steps:
            offers = self.strategy.offers(forecast.net_wh(w), state.position(w))
            per_step.append(sum(wh for wh, _ in offers))
            price = max([price, *(p for _, p in offers)])
        total = sum(per_step)
        if not total or (window.end - window.start) != len(steps) * (steps[0].end - steps[0].start):
            return None
        return ReceiptSpec(window, total, price, profile_wh=tuple(per_step))

    def orders(
        self, window: Window, now: int, forecast: Forecast, state: NodeState
    ) -> tuple[list[Order], list[Order]]:
        """This node's offers and bids for an auction round on `window` (ids are deterministic)."""
        position = state.position(window)
        net = forecast.net_wh(window)
        offers = [
            Order(f"{self.node}/{window.start}/o{i}", self.node, wh, price, now)
            for i, (wh, price) in enumerate(self.strategy.offers(net, position))
        ]
        bids = [
            Order(f"{self.node}/{window.start}/b{i}", self.node, wh, price, now)
            for i, (wh, price) in enumerate(self.strategy.bids(net, position))
        ]
        return offers, bids

    def receipts_for(self, clearing: Clearing, window: Window) -> list[ReceiptSpec]:
        """The receipts this node issues for its matched trades (buyer named in each)."""
        return [
            ReceiptSpec(window, t.wh, t.seller_price_msat_per_kwh, buyer=t.buyer)
            for t in clearing.trades
            if t.seller == self.node
        ]

    def issue(
        self,
        spec: ReceiptSpec,
        node_key: bytes,
        payment_hash: bytes,
        now: int,
        payment_secret: bytes | None = None,
    ) -> ln_receipt.Receipt:
        """Sign the receipt for `spec`; it expires at the window's gate closure."""
        expiry = self.gate_closure(spec.window) - now
        if expiry <= 0:
            raise MarketError(f"gate closure of window {spec.window.start} has passed")
        w = spec.window
        if spec.profile_wh is None:
            memo = ln_receipt.EnergyMemo(
                node=self.node, start=w.start, end=w.end, kwh=spec.wh / 1000
            )
        else:
            step = (w.end - w.start) // len(spec.profile_wh)
            kw = tuple(wh * 3.6 / step for wh in spec.profile_wh)
            memo = ln_receipt.EnergyMemo(self.node, w.start, w.end, kw=kw, step_s=step)
        return ln_receipt.create_receipt(
            memo,
            spec.amount_msat,
            payment_hash,
            node_key,
            now,
            expiry_s=expiry,
            payment_secret=payment_secret,
        )

    @staticmethod
    def read(invoice: str, memo_json: str | None = None) -> OfferedReceipt:
        """Decode an offered receipt (raises gateway.ln.errors.LnError if it is not one)."""
        inv, memo = ln_receipt.read_receipt(invoice, memo_json)
        if inv.amount_msat is None:
            raise MarketError("a receipt without an amount cannot be paid atomically")
        return OfferedReceipt(
            memo.node,
            memo.start,
            memo.end,
            wh_of(memo),
            inv.amount_msat,
            inv.payment_hash.hex(),
            profile_of(memo),
        )

    def decide(
        self, offered: OfferedReceipt, now: int, forecast: Forecast, state: NodeState
    ) -> Action:
        """PAY an offered receipt whole, or FORWARD it towards the POD."""
        window = Window(offered.start, offered.end)
        if offered.issuer == self.node or now >= self.gate_closure(window) or offered.wh <= 0:
            return Action.FORWARD
        ok = self.strategy.accepts(offered, forecast.net_wh(window), state.position(window))
        return Action.PAY if ok else Action.FORWARD

    @staticmethod
    def paid(offered: OfferedReceipt, state: NodeState) -> None:
        """Book a receipt we paid: we now must withdraw its energy in its window."""
        state.position(Window(offered.start, offered.end)).bought_wh += offered.wh

    @staticmethod
    def offered(spec: ReceiptSpec, state: NodeState) -> None:
        state.position(spec.window).offered_wh += spec.wh

    @staticmethod
    def sold(spec: ReceiptSpec, state: NodeState, was_offered: bool = True) -> None:
        """Book a receipt of ours that was paid: we now must inject its energy."""
        position = state.position(spec.window)
        position.sold_wh += spec.wh
        if was_offered:
            position.offered_wh -= spec.wh

    @staticmethod
    def expired(spec: ReceiptSpec, state: NodeState) -> None:
        """An issued receipt expired unpaid: its energy can be offered again (replaced)."""
        state.position(spec.window).offered_wh -= spec.wh
