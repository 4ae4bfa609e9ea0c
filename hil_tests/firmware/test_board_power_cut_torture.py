from hil_tests.rig.power_cut import torture


def test_random_power_cuts_lose_no_record_no_energy_and_give_back_no_credit(tmp_path):
    # the CI variant; hil_tests/bench/bench_power_cut.py runs 1000 and more
    res = torture(tmp_path, cuts=15, seed=7)
    assert not res.problems, res.problems[:10]
    assert res.readings >= 5  # the meter kept producing readings between the cuts
    assert res.aimed_cuts >= 4 and res.window_cuts >= 1  # some cuts hit close-to-sign
    assert res.credit_given_back == 0
    assert res.released_beyond_credit == 0  # paid credit + the burst in flight (OVERSHOOT_WH)
    assert res.boots_reaching_ready >= 1
