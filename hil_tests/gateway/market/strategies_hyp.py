"""Hypothesis strategies for order books (shared by the market tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from gateway.market.book import Book, Order

NODES = ("a", "b", "c", "d", "e")


@st.composite
def books(draw: st.DrawFn, max_orders: int = 12) -> Book:
    def orders(prefix: str) -> list[Order]:
        n = draw(st.integers(0, max_orders))
        return [
            Order(
                id=f"{prefix}{i}",
                node=draw(st.sampled_from(NODES)),
                wh=draw(st.integers(1, 3000)),
                price_msat_per_kwh=draw(st.integers(0, 300) | st.integers(0, 300_000)),
                time=draw(st.integers(0, 20)),
                reliability_permille=draw(st.sampled_from((0, 500, 1000))),
            )
            for i in range(n)
        ]

    return Book(1767225600, 1767226500, tuple(orders("o")), tuple(orders("b")))
