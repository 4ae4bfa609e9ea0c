"""The channel loop's log lines say why a peer or a channel is missing (gateway/grid/channel_loop.py)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.grid.channel_loop import why
from gateway.ln.errors import LnError


async def _timed_out() -> BaseException:
    try:
        async with asyncio.timeout(0):
            await asyncio.sleep(1)
    except TimeoutError as exc:
        return exc
    raise AssertionError("no timeout")


def test_a_timeout_without_text_is_named_in_the_log():
    exc = asyncio.run(_timed_out())
    assert str(exc) == ""  # what asyncio raises: the line said "opening a channel to pod: "
    assert why(exc) == "no answer in time (TimeoutError)"


@pytest.mark.parametrize(
    ("exc", "said"),
    [(LnError("peer_offline: connect first"), "peer_offline: connect first"),
     (ConnectionRefusedError(), "ConnectionRefusedError")],
)  # fmt: skip
def test_other_errors_keep_their_text_or_their_name(exc, said):
    assert why(exc) == said
