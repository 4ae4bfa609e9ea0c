from hil_tests.rig.power_cut import torture


def test_200_random_power_cuts_lose_corrupt_or_duplicate_nothing(tmp_path):
    res = torture(tmp_path, cuts=200, seed=7)
    assert not res.problems, res.problems[:10]
    assert res.records >= 20  # the meter kept producing readings between the cuts
    assert res.boots_reaching_ready >= 1
