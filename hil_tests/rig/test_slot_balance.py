"""The per-slot energy balance (hil_tests/rig/sim/slot_balance.py): windows between cuts, the
attribution bound from when each count was taken, merged windows, slots not judged."""

from hil_tests.rig.sim.slot_balance import (
    AHEAD_S,
    Allowance,
    Flow,
    Sample,
    slot_energy_balance,
)

B0, B1, B2, B3 = 0, 900, 1800, 2700


def _steps(power_w: float, every: float = 30.0, until: float = 2700.0):
    """(t, |Wh| moved until t): a constant power, a step every `every` s from 0."""
    out, t = [], 0.0
    while t < until:
        t += every
        out.append((t, abs(power_w) * t / 3600, t))
    return out


def _s(b: int, net: int, late: float = 10.0, moved: int | None = None) -> Sample:
    return Sample(b, b - AHEAD_S, b + late, net, abs(net) if moved is None else moved)


def test_the_attribution_bound_follows_how_each_meter_counts():
    steps = [(10.0, 10.0, 10.0), (20.0, 30.0, 20.0), (30.0, 60.0, 30.0)]  # 1, 2, 3 Wh/s
    chip, pulses = Flow(steps, continuous=True), Flow(steps, continuous=False)
    # a chip counted at some moment in [22, 24] against what was booked until 25 (until 20):
    # what it integrated over [20, 24], pro rata: 4 s of the third step
    assert chip.bound(25, 22, 24) == 12.0
    assert chip.bound(20, 20, 20) == 0.0  # read exactly at a step's end: nothing between
    assert chip.bound(20, 15, 20) == 10.0  # 5 s of the second step
    # pulses: the steps booked after b that may have arrived by hi, and those booked by b
    # that may have arrived after lo
    assert pulses.bound(20, 18, 24) == 20.0  # the second step (booked 20, sent until 20 > 18)
    assert pulses.bound(20, 21, 30) == 30.0  # the third step arrived by 30, booked after 20
    assert pulses.bound(20, 21, 29) == 0.0  # both sides agree on every step
    late = Flow([(10.0, 10.0, 23.0), *steps[1:]], continuous=False)  # sent only at 23
    assert late.bound(10, 12, 12) == 10.0  # booked by 10, it may arrive after the count at 12
    assert Flow([], True).bound(0, 0, 1) == 0.0


def test_balances_per_slot_within_resolution_and_the_attribution_bound():
    # a 3.6 kW load (a) and a 1.8 kW PV plant (b); 1 Wh per slot of line losses
    a = [_s(B0, 0), _s(B1, 900), _s(B2, 1800), _s(B3, 2700)]
    b = [_s(B0, 0), _s(B1, -450), _s(B2, -900), _s(B3, -1350)]
    steps = {"a": _steps(3600, every=2), "b": _steps(1800, every=2)}
    pod = {B0: 451.0, B1: 451.0, B2: 451.0}
    losses = {B0: 1.0, B1: 1.0, B2: 1.0}
    ok = slot_energy_balance({"a": a, "b": b}, steps, {"b"}, pod, losses)
    assert ok["holds"] and ok["slots"] == ok["slots_judged"] == 3 and ok["windows"] == 3
    assert ok["merged_windows"] == 0 and ok["not_judged"] == []
    # the bound at B1 and B2, each count placed in [B - 2 s, B + 10 s]: the S0 meter a, the
    # steps booked in (B, B + 10] and the one booked at B (sent after B - 2): 6 x 2 Wh; the
    # chip b, what it integrated over [B - 4, B + 10] (its flow reached its count less
    # CHIP_COUNT_WH at B - 4): 7 Wh; 1 Wh per meter; 1 % of 450 Wh
    assert ok["per_window"][1] == [B1, 1, 0.0, 2 * (12 + 7) + 2 + 4.5]
    # 60 Wh through the POD in the middle slot that no meter counted
    bad = slot_energy_balance({"a": a, "b": b}, steps, {"b"}, {**pod, B1: 511.0}, losses)
    assert not bad["holds"] and bad["failing_windows"] == 1 and bad["worst_window"] == B1


def test_a_late_close_merges_the_slots_it_covers_and_counts_them_judged():
    a = [_s(B0, 0), _s(B2, 1800), _s(B3, 2700)]  # no reading closes at B1: one over two slots
    steps = {"a": _steps(3600)}
    pod = {B0: 900.0, B1: 900.0, B2: 900.0}
    got = slot_energy_balance({"a": [*a]}, steps, set(), pod, {})
    assert got["holds"] and got["slots_judged"] == 3 and got["windows"] == 2
    assert got["merged_windows"] == 1 and got["slots_in_merged_windows"] == 2
    assert "no reading closes at it and 1800 Wh moved" in got["not_cut"][0]["reason"]
    # a count placed only within more than TIGHT_S (a close seen late) is no cut either
    late = [_s(B0, 0), _s(B1, 900, late=400.0), _s(B2, 1800), _s(B3, 2700)]
    got = slot_energy_balance({"a": late}, steps, set(), pod, {})
    assert got["holds"] and got["merged_windows"] == 1 and "placed within" in str(got["not_cut"])


def test_missing_data_is_not_judged_with_its_reason_and_nothing_judged_does_not_hold():
    a = [_s(B0, 0), _s(B1, 900)]  # the meter's readings stop after B1 (never stored)
    steps = {"a": _steps(3600)}
    pod = {B0: 900.0, B1: 900.0, B2: 900.0}
    got = slot_energy_balance({"a": a}, steps, set(), pod, {})
    assert got["holds"] and got["slots_judged"] == 1 and got["slots"] == 3
    assert [x["slot"] for x in got["not_judged"]] == [B1, B2]
    assert all("no stored reading" in x["reason"] for x in got["not_judged"])
    none = slot_energy_balance({"a": [_s(B0, 0)]}, steps, set(), pod, {})
    assert not none["holds"] and none["slots_judged"] == 0
    unseen = [Sample(b, b - AHEAD_S, None, n, n) for b, n in ((B0, 0), (B1, 900))]
    got = slot_energy_balance({"a": unseen}, steps, set(), {B0: 900.0}, {})
    assert not got["holds"] and "not seen" in got["not_judged"][0]["reason"]


def test_a_power_cut_allows_only_its_bound_and_only_one_way():
    steps = {"a": _steps(360, every=5)}  # 90 Wh a slot; each boundary's bound 1.5 Wh
    pod = {B0: 90.0, B1: 90.0}
    cut_cost_20 = [_s(B0, 0), _s(B1, 70), _s(B2, 160)]  # a cut at t=400 cost the count 20 Wh
    assert not slot_energy_balance({"a": cut_cost_20}, steps, set(), pod, {})["holds"]
    cut = [Allowance("a", 400.0, 25.0)]
    got = slot_energy_balance({"a": cut_cost_20}, steps, set(), pod, {}, cut)
    assert got["holds"] and got["per_window"][0][2] == 20.0
    # the same 20 Wh the other way (the meter counted more than flowed) is not excused
    more = [_s(B0, 0), _s(B1, 110), _s(B2, 200)]
    assert not slot_energy_balance({"a": more}, steps, set(), pod, {}, cut)["holds"]


def test_an_idle_meter_is_known_exactly_between_its_readings():
    """A meter whose readings joined several slots (its signing fell behind) is known at a
    boundary inside them when nothing moved through it; else the slots merge."""
    idle = [_s(B0, 5), _s(B3, 5)]
    busy = [_s(B0, 0), _s(B1, 900), _s(B2, 1800), _s(B3, 2700)]
    steps = {"busy": _steps(3600, every=2), "idle": []}
    pod = {B0: 900.0, B1: 900.0, B2: 900.0}
    got = slot_energy_balance({"idle": idle, "busy": busy}, steps, set(), pod, {})
    assert got["holds"] and got["windows"] == 3 and got["bracketed_counts"] == 4


def test_a_chip_count_from_a_read_before_the_close_is_placed_by_its_value_not_excused_ahead():
    """A BL0942 meter's count is the chip's at its last good read: on a loaded machine that
    read may come tens of virtual seconds before the close. Its moment is placed from its value
    (when the chip's flow reached it); a count above the flow is not excused."""
    steps = {"pv": _steps(1800, every=2)}  # 0.5 Wh/s, 450 Wh a slot
    pod = {B0: -450.0, B1: -450.0}

    def pv(at_b1: int):
        return {"pv": [_s(B0, 0), _s(B1, -at_b1, moved=at_b1), _s(B2, -900, moved=900)]}

    lagging = slot_energy_balance(pv(420), steps, {"pv"}, pod, {})  # read 60 s before B1
    assert lagging["holds"], lagging
    ahead = slot_energy_balance(pv(480), steps, {"pv"}, pod, {})  # 30 Wh more than flowed
    assert not ahead["holds"] and ahead["worst_gap_wh"] == 30.0, ahead
