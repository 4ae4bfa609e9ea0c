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


def test_ended_windows_are_dropped_so_ever_new_keys_do_not_grow_the_table(monkeypatch):
    monkeypatch.setattr(log_budget, "SWEEP_AT", 8)
    now = [0.0]
    budget = LogBudget(1, WINDOW, clock=lambda: now[0])
    budget.admit("held")
    assert budget.admit("held") is None  # held: kept until its next line reports it
    for i in range(1000):
        now[0] += WINDOW
        assert budget.admit(f"origin {i}") is not None
    assert len(budget._windows) <= 2 * 8
    assert budget.admit("held") == log_budget.Admitted(held=1, first=False)


@pytest.mark.parametrize(("burst", "window_s"), [(0, 10.0), (1, 0.0)])
def test_a_budget_that_could_log_nothing_is_refused(burst, window_s):
    with pytest.raises(ValueError, match="burst"):
        LogBudget(burst, window_s)
