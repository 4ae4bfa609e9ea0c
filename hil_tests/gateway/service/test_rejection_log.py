import logging
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.service.rejection_log import RejectionLog


def test_a_flood_is_logged_in_bursts_and_the_rest_summarised(caplog):
    now = [0.0]
    rl = RejectionLog(logging.getLogger("t"), burst=3, window_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        logged = [rl.log("bad_signature", "ab", i, "x") for i in range(10)]
        assert logged == [True] * 3 + [False] * 7
        assert rl.log("malformed", "ab", None, "y")  # other reasons have their own budget
        now[0] = 10.0
        assert rl.log("bad_signature", "ab", 10, "x")
    assert "(+7 more bad_signature rejections not logged)" in caplog.records[-1].getMessage()
    assert len(caplog.records) == 5


def test_held_rejections_of_swept_reasons_are_said_by_the_next_line(caplog):
    # reasons whose window ended are dropped from the budget's table when it grows past
    # sweep_at; their held rejections are reported by the line that swept them
    now = [0.0]
    rl = RejectionLog(
        logging.getLogger("t"), burst=1, window_s=10, clock=lambda: now[0], sweep_at=2
    )
    with caplog.at_level(logging.WARNING):
        for reason in ("bad_signature", "malformed"):
            assert rl.log(reason, "ab", 1, "x")
            assert not rl.log(reason, "ab", 2, "x")  # held
        now[0] = 10.0
        assert rl.log("stale_seq", "ab", 3, "z")  # a third reason: the table is swept
        assert rl.log("bad_signature", "ab", 4, "x")  # back after its entry was dropped
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-2].endswith("(+2 more rejections of other reasons not logged)")
    assert lines[-1].endswith(": x")  # its held one was said once, by the line before
    assert len(lines) == 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from([0.0, 0.0, 1.0, 4.0, 11.0]))))
def test_every_rejection_is_a_line_or_counted_in_one(calls: list[tuple[str, float]]) -> None:
    now = [0.0]
    logger = logging.getLogger("t.property")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        rl = RejectionLog(logger, burst=2, window_s=10, clock=lambda: now[0], sweep_at=3)
        for reason, step in calls:
            now[0] += step
            rl.log(reason, "ab", None, "d")
        now[0] += 10.0  # every window over: one more of each reason says what it held
        for reason in "abcdef":
            rl.log(reason, "ab", None, "d")
    finally:
        logger.removeHandler(handler)
    counted = sum(int(n) for line in lines for n in re.findall(r"\(\+(\d+) more", line))
    assert len(lines) + counted == len(calls) + 6
