"""The shared log budget (gateway.log_budget): the first `burst` calls of a key's window are
logged, the rest counted and reported by the next line, keys independent, nothing lost."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import log_budget
from gateway.log_budget import LogBudget

WINDOW = 10.0

# a run of calls: (seconds since the previous call, key); halves, so that sums of gaps are exact
# (a key alone sums its gaps in another order: 9.99 + ... rounded across a window boundary)
calls = st.lists(
    st.tuples(st.sampled_from([0.0, 0.5, 3.0, 9.5, 10.0, 25.0]), st.sampled_from("abc")),
    max_size=80,
)


def _replay(run: list[tuple[float, str]], burst: int):
    """The budget after the run, and what it said to each call."""
    now = [0.0]
    budget = LogBudget(burst, WINDOW, clock=lambda: now[0])
    out = []
    for gap, key in run:
        now[0] += gap
        out.append((key, budget.admit(key)))
    return budget, out


def _reference(run: list[tuple[float, str]], burst: int) -> list[tuple[str, int | None]]:
    """The rule as the docs state it, one key at a time: a window opens at a key's first call
    after the last window closed; its first `burst` calls are logged, each reporting the calls
    held since the key's previous line."""
    out: list[tuple[str, int | None]] = []
    t = 0.0
    opened: dict[str, float] = {}
    lines: dict[str, int] = {}
    held: dict[str, int] = {}
    for gap, key in run:
        t += gap
        if key not in opened or t - opened[key] >= WINDOW:
            opened[key], lines[key] = t, 0
        if lines[key] < burst:
            lines[key] += 1
            out.append((key, held.pop(key, 0)))
        else:
            held[key] = held.get(key, 0) + 1
            out.append((key, None))
    return out


@given(calls, st.integers(1, 4))
def test_the_budget_follows_the_fixed_window_rule_and_loses_no_call(run, burst):
    budget, got = _replay(run, burst)
    assert [(k, None if a is None else a.held) for k, a in got] == _reference(run, burst)
    assert budget.total == len(run)
    for key in "abc":  # every call is a line, reported in a later line, or held since the last
        mine = [a for k, a in got if k == key]
        reported = sum(1 + a.held for a in mine if a is not None)
        last = max((i for i, a in enumerate(mine) if a is not None), default=-1)
        assert reported + (len(mine) - 1 - last) == len(mine)


@given(calls, st.integers(1, 4))
def test_a_key_is_decided_as_if_it_were_alone(run, burst):
    _, mixed = _replay(run, burst)
    for key in "abc":
        alone_run, gap = [], 0.0
        for g, k in run:
            gap += g
            if k == key:
                alone_run.append((gap, k))
                gap = 0.0
        _, alone = _replay(alone_run, burst)
        assert [a for k, a in mixed if k == key] == [a for _, a in alone]


def test_a_traceback_goes_with_the_first_line_of_a_quiet_window_only():
    now = [0.0]
    budget = LogBudget(2, WINDOW, clock=lambda: now[0])
    firsts = [(a.first if (a := budget.admit("k")) else None) for _ in range(3)]
    assert firsts == [True, False, None]
    now[0] = WINDOW  # a new window, one call held from the last: its line is not "first"
    assert budget.admit("k") == log_budget.Admitted(held=1, first=False)
    now[0] = 3 * WINDOW
    assert budget.admit("k") == log_budget.Admitted(held=0, first=True)


def test_ended_windows_are_dropped_so_ever_new_keys_do_not_grow_the_table():
    now = [0.0]
    budget = LogBudget(1, WINDOW, clock=lambda: now[0], sweep_at=8)
    for i in range(1000):
        now[0] += WINDOW
        assert budget.admit(f"origin {i}") is not None
    assert len(budget._windows) <= 2 * 8


def test_ever_new_keys_each_held_once_do_not_grow_the_table_and_their_calls_are_reported():
    # each new text once more than its burst (control_guard's keys carry request text): every
    # entry held something, and such entries were never dropped
    now = [0.0]
    budget = LogBudget(1, WINDOW, clock=lambda: now[0], sweep_at=8)
    others = 0
    for i in range(1000):
        now[0] += WINDOW
        line = budget.admit(f"origin {i}")
        assert line is not None and line.held == 0
        others += line.others
        assert budget.admit(f"origin {i}") is None
        assert len(budget._windows) <= 2 * 8
    now[0] += WINDOW
    for i in range(20):  # keys of ended windows: the next sweep reports the held rest
        line = budget.admit(f"late {i}")
        assert line is not None
        others += line.others
    assert others == 1000


def test_a_dropped_entrys_held_calls_go_with_the_next_line_of_any_key():
    now = [0.0]
    budget = LogBudget(1, WINDOW, clock=lambda: now[0], sweep_at=1)
    budget.admit("held")
    assert budget.admit("held") is None
    assert budget.admit("held") is None
    now[0] = WINDOW  # its window is over: dropped at the next sweep, its 2 held calls reported
    assert budget.admit("b") == log_budget.Admitted(held=0, first=True, others=2)
    assert budget.admit("held") == log_budget.Admitted(held=0, first=True, others=0)


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.5, 3.0, 9.5, 10.0, 25.0]), st.sampled_from("abcdefgh")),
        max_size=120,
    ),
    st.integers(1, 3),
    st.integers(1, 4),
)
def test_with_entries_dropped_every_call_is_still_a_line_or_reported_in_one(run, burst, sweep_at):
    now = [0.0]
    budget = LogBudget(burst, WINDOW, clock=lambda: now[0], sweep_at=sweep_at)
    got = []
    for gap, key in run:
        now[0] += gap
        got.append(budget.admit(key))
    # the same calls logged as without dropping (a dropped window was over: the same as none)
    assert [a is None for a in got] == [h is None for _, h in _reference(run, burst)]
    now[0] += 2 * WINDOW  # every window over: each key's next line, or a sweep, reports the rest
    got += [budget.admit(k) for k in "abcdefgh"]
    lines = [a for a in got if a is not None]
    assert sum(1 + a.held + a.others for a in lines) == budget.total == len(run) + 8


@pytest.mark.parametrize(("burst", "window_s", "sweep_at"), [(0, 10.0, 8), (1, 0.0, 8), (1, 1, 0)])
def test_a_budget_that_could_log_nothing_is_refused(burst, window_s, sweep_at):
    with pytest.raises(ValueError, match="burst"):
        LogBudget(burst, window_s, sweep_at=sweep_at)


def test_a_line_says_what_was_not_logged_in_the_words_of_its_caller():
    assert log_budget.Admitted(0, True).unlogged("refusals of other kinds") == ""
    assert log_budget.Admitted(3, False).unlogged("x") == " (+3 more not logged)"
    both = log_budget.Admitted(3, False, 5).unlogged("rejections of other reasons", "bad_sig")
    assert both == " (+3 more bad_sig not logged) (+5 more rejections of other reasons not logged)"
