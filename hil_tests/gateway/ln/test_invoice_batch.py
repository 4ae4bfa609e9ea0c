"""How a batch of invoices is cut into decoding chunks (gateway/ln/node/invoice_batch.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.ln.node.invoice_batch import CHUNK, FIRST_CHUNK, chunk_starts


@given(st.integers(min_value=1, max_value=50_000))
def test_chunks_cover_the_batch_small_first_and_last(count: int) -> None:
    starts = chunk_starts(count)
    sizes = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert starts[0] == 0 and starts[-1] == count and all(n > 0 for n in sizes)
    assert max(sizes) <= CHUNK
    if count > FIRST_CHUNK * 3 // 2:
        assert sizes[0] == FIRST_CHUNK  # the channel waits for the first one idle
        # the channel pays the last chunk after the decoding ended: it is small too
        assert sizes[-1] <= FIRST_CHUNK * 3 // 2


def test_a_large_batch_grows_to_full_chunks_then_halves() -> None:
    starts = chunk_starts(3000)
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [
        128,
        256,
        512,
        1000,
        552,
        276,
        138,
        138,
    ]
