"""The shared token bucket (gateway/token_bucket.py): the classic bound holds in every window,
keys do not share a budget, a forgotten key comes back full, a clock stepping back refills
nothing (the rate counts from there)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.token_bucket import TokenBuckets

RATE, BURST = 2.0, 5.0
gaps = st.lists(st.sampled_from([0.0, 0.01, 0.25, 0.5, 1.0, 3.0]), min_size=1, max_size=120)


def _times(gs: list[float]) -> list[float]:
    out, t = [], 0.0
    for g in gs:
        t += g
        out.append(t)
    return out


@given(gaps)
def test_no_window_lets_more_through_than_burst_plus_rate_times_its_length(gs):
    b = TokenBuckets(RATE, BURST)
    times = _times(gs)
    allowed = [t for t in times if b.allow("peer", t)]
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= BURST + RATE * (allowed[j] - start) + 1e-9


@given(gaps, st.sampled_from("abc"))
def test_a_key_is_decided_as_if_it_were_alone(gs, key):
    keys = "abc"
    times = _times(gs)
    mixed = TokenBuckets(RATE, BURST)
    got = [(keys[i % 3], mixed.allow(keys[i % 3], t)) for i, t in enumerate(times)]
    alone = TokenBuckets(RATE, BURST)
    mine = [t for i, t in enumerate(times) if keys[i % 3] == key]
    assert [ok for k, ok in got if k == key] == [alone.allow(key, t) for t in mine]


def test_a_burst_then_the_rate_and_a_full_bucket_after_a_pause():
    b = TokenBuckets(RATE, BURST)
    assert [b.allow("p", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert b.allow("p", 0.5) and not b.allow("p", 0.5)  # one token per 1/RATE s
    assert [b.allow("p", 10.0) for _ in range(6)] == [True] * 5 + [False]


def test_a_clock_stepping_back_refills_nothing():
    b = TokenBuckets(RATE, BURST)
    assert all(b.allow("p", 100.0) for _ in range(5))
    assert not b.allow("p", 40.0)  # a wall clock set back by a minute: no negative refill either
    assert b.allow("p", 40.5) and not b.allow("p", 40.5)  # the rate, counted from there


def test_at_most_max_keys_are_remembered_and_a_forgotten_one_comes_back_full():
    b = TokenBuckets(RATE, BURST, max_keys=3)
    assert all(b.allow("old", 0.0) for _ in range(5)) and not b.allow("old", 0.0)
    for i in range(3):
        b.allow(f"new-{i}", 0.0)
    assert len(b) == 3
    assert b.allow("old", 0.0)  # forgotten: full again


@pytest.mark.parametrize(
    ("rate", "burst", "keys"), [(0.0, 5.0, None), (1.0, 0.5, None), (1.0, 1.0, 0)]
)
def test_a_bucket_that_could_never_allow_is_refused(rate, burst, keys):
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBuckets(rate, burst, keys)
