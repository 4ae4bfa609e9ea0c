"""The sim's load and generation models: real models, deterministic per seed, forecast != actual."""

from __future__ import annotations

from hil_tests.rig import profiles

SITE = profiles.Site(date="2026-06-21")
DAY = profiles.day_start(SITE)


def test_household_follows_the_h0_profile_with_seeded_noise():
    a, b = profiles.household(SITE, 3500, seed=1), profiles.household(SITE, 3500, seed=2)
    day = a.forecast_wh(DAY, DAY + 86400)
    assert 6_000 < day < 14_000  # a 3,500 kWh/year home on a June day
    assert a.forecast == b.forecast and a.actual != b.actual
    assert a.actual == profiles.household(SITE, 3500, seed=1).actual
    night, evening = (
        a.forecast_wh(DAY + 3 * 3600, DAY + 4 * 3600),
        a.forecast_wh(DAY + 19 * 3600, DAY + 20 * 3600),
    )
    assert evening > night


def test_pv_produces_only_in_daylight_and_clouds_cut_it():
    clear = profiles.pv_plant(SITE, 5000, cloudiness=0.0, seed=1)
    cloudy = profiles.pv_plant(SITE, 5000, cloudiness=0.8, seed=1)
    assert clear.actual_w(DAY + 2 * 3600) == 0 and clear.actual_w(DAY + 12 * 3600) < -2500
    assert clear.actual == clear.forecast
    assert cloudy.actual_wh(DAY, DAY + 86400) > clear.actual_wh(DAY, DAY + 86400)  # less export
    assert cloudy.actual != cloudy.forecast


def test_ev_session_delivers_its_energy_once():
    ev = profiles.ev_charger(seed=3)
    assert ev.forecast_wh(DAY, DAY + 86400) == 14_000
    assert 8_000 <= ev.actual_wh(DAY, DAY + 86400) <= 20_000
    assert max(ev.actual) <= 11_000
