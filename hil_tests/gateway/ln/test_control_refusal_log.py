"""The control API's refusal log (gateway/ln/node/control_guard.RejectionLog): its reasons carry
request text, so the budget sweeps ended windows; the refusals they held are said by the line
that swept them, once."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ln.node.control_guard import RejectionLog


def test_held_refusals_of_swept_reasons_are_said_by_the_next_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    refused = RejectionLog(burst=1, window_s=10, clock=lambda: now[0], sweep_at=2)
    with caplog.at_level(logging.WARNING, "gateway.ln.control"):
        for reason in ("bad field 'x'", "bad field 'y'"):
            assert refused.log(400, reason, "127.0.0.1")
            assert not refused.log(400, reason, "127.0.0.1")  # held
        now[0] = 10.0
        assert refused.log(401, "no token", "127.0.0.1")  # a third reason: the table is swept
        assert refused.log(400, "bad field 'x'", "127.0.0.1")  # back after it was dropped
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-2].endswith("401 no token (+2 more refusals of other reasons not logged)")
    assert lines[-1].endswith("400 bad field 'x'")  # its held one was said by the line before
    assert refused.total == 6 and len(lines) == 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from([0.0, 0.0, 1.0, 11.0]))))
def test_every_refusal_is_a_line_or_counted_in_one(calls: list[tuple[str, float]]) -> None:
    now = [0.0]
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("gateway.ln.control")
    logger.addHandler(handler)
    try:
        refused = RejectionLog(burst=2, window_s=10, clock=lambda: now[0], sweep_at=3)
        for reason, step in calls:
            now[0] += step
            refused.log(400, reason, "p")
        now[0] += 10.0  # every window over: one more of each reason says what it held
        for reason in "abcdef":
            refused.log(400, reason, "p")
    finally:
        logger.removeHandler(handler)
    counted = sum(int(n) for line in lines for n in re.findall(r"\(\+(\d+) more", line))
    assert len(lines) + counted == len(calls) + 6
