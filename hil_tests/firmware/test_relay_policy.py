"""The prepaid relay rules (firmware/lib/relay_policy.py), driven as a state machine under CPython
and once inside real MicroPython."""

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from hil_tests import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "firmware" / "lib"))
import relay_policy as rp  # noqa: E402

BASE = {
    "critical_load": False, "low_credit_wh": 100, "emergency_credit_wh": 0, "max_power_w": 0,
    "max_power_hold_s": 10, "min_switch_s": 5, "overload_retry_s": 60,
}  # fmt: skip


def _policy(**over):
    return rp.RelayPolicy(dict(BASE, **over))


def test_closes_with_credit_and_opens_when_exhausted():
    p = _policy()
    assert p.decide(0, 0, 0) == (False, rp.R_POWER_ON, False)
    assert p.decide(1000, 50, 0) == (True, rp.R_CREDIT, True)
    assert p.decide(9000, 0, 500) == (False, rp.R_EXHAUSTED, True)


def test_never_switches_faster_than_the_minimum_interval():
    p = _policy(min_switch_s=30)
    assert p.decide(0, 10, 0)[0] is True
    assert p.decide(1000, 0, 0)[0] is True  # exhausted, but the contacts are protected
    assert p.decide(31000, 0, 0) == (False, rp.R_EXHAUSTED, True)


def test_a_relay_left_alone_for_weeks_still_switches_at_once_despite_tick_wrap():
    # MicroPython's ticks wrap at 2**30 ms (~12.4 days) and ticks_diff is only valid within half
    # of that: a switch time remembered for a week must not block the next switch.
    period = 1 << 30

    def ticks_diff(a, b):
        return ((a - b + period // 2) % period) - period // 2

    p = _policy(min_switch_s=30)
    t = 1000
    assert p.decide(t, 100, 0, diff=ticks_diff)[0] is True
    for _ in range(7 * 24 * 3600 * 4):  # a week of 250 ms loop steps, credit left
        t = (t + 250) % period
        p.decide(t, 100, 0, diff=ticks_diff)
    t = (t + 250) % period
    assert p.decide(t, 0, 0, diff=ticks_diff) == (False, rp.R_EXHAUSTED, True)


def test_emergency_credit_allows_a_bounded_debt():
    p = _policy(emergency_credit_wh=50)
    assert p.decide(0, 0, 0)[0] is True
    assert p.decide(10000, -49, 0)[0] is True
    assert p.decide(20000, -50, 0)[0] is False


def test_overload_trips_after_the_hold_time_and_retries_later():
    p = _policy(max_power_w=3000, max_power_hold_s=10, overload_retry_s=60)
    assert p.decide(0, 1000, 100)[0] is True
    assert p.decide(5000, 1000, 5000)[0] is True  # over the limit, not for long enough yet
    assert p.decide(15000, 1000, 5000) == (False, rp.R_OVERLOAD, True)
    assert p.decide(30000, 1000, 100)[0] is False  # stays open for the retry time
    assert p.decide(76000, 1000, 100) == (True, rp.R_OVERLOAD_RETRY, True)


def test_a_critical_load_is_never_opened():
    p = _policy(critical_load=True, max_power_w=100)
    for t in range(0, 600_000, 7000):
        assert p.decide(t, -10_000, 50_000)[0] is True


def test_a_paid_window_closes_the_relay_and_caps_power():
    p = _policy()
    assert p.decide(0, 0, 0, window_cap_w=2000) == (True, rp.R_WINDOW, True)
    p.decide(1000, 0, 2500, window_cap_w=2000)
    assert p.decide(12000, 0, 2500, window_cap_w=2000) == (False, rp.R_WINDOW_CAP, True)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 20_000),
            st.integers(-500, 500),
            st.integers(0, 9000),
            st.integers(-1, 3000),
        ),
        min_size=1,
        max_size=60,
    ),
    st.booleans(),
    st.integers(0, 100),
    st.integers(0, 5000),
)
def test_invariants_over_random_histories(steps, critical, emergency, max_w):
    p = _policy(critical_load=critical, emergency_credit_wh=emergency, max_power_w=max_w)
    now = 0
    last_switch = None
    for dt, credit, power, cap in steps:
        now += dt
        closed, reason, changed = p.decide(now, credit, power, cap)
        if critical:
            assert closed  # never opened automatically
        if changed:
            if last_switch is not None:
                assert now - last_switch >= 5000  # min_switch_s
            last_switch = now
            if closed and not critical:
                # closing needs credit above the emergency floor, or a paid window
                assert credit > -emergency or cap >= 0


def test_runs_in_real_micropython():
    from boards.emulated.host.wasm import run_snippet

    code = (
        "import sys\nsys.path.insert(0, '/lib')\nimport relay_policy as rp\n"
        f"p = rp.RelayPolicy({BASE!r})\n"
        "print(p.decide(1000, 50, 0), p.decide(9000, 0, 10))\n"
    )
    out = run_snippet(code, rom_dirs={"/lib": REPO_ROOT / "firmware" / "lib"})
    assert out.stdout.strip() == "(True, 2, True) (False, 3, True)", out.stderr
