"""Load and generation profiles of the simulated microgrid, from real models.

Every profile is a day of average power per minute (W, + import / - export as a meter sees it),
computed once at start-up, so the sim loop only indexes an array. Each has two versions:
`forecast` (what the node's market agent plans with) and `actual` (what then happens). They
differ on purpose, so intraday receipts and imbalances occur.

- Households: the BDEW H0 standard load profile (`demandlib`), scaled to the home's annual
  consumption; the actual adds per-home seeded noise (lognormal per minute with mean 1, plus a random
  appliance run: 2 kW for 30-90 min, e.g. a washing machine) that the forecast does not know.
- PV: pvlib clear-sky irradiance (Ineichen) at the site, transposed to the array's tilt and
  azimuth, PVWatts DC model with cell temperature (SAPM). Clouds: a seeded two-state Markov
  chain per 5 minutes (clear / cloudy, p(clear->cloudy) = `cloudiness` / 3, p(cloudy->clear)
  = 1/3), a cloudy step passes a clear-sky index drawn from U(0.2, 0.6). The forecast is the
  clear-sky profile scaled by the chain's expected clear-sky index, `1 - 0.6 c / (c + 1)`.
- EV charger: one session a day, arriving around 18:00 (seeded, +-1.5 h), charging 11 kW
  until it has the energy drawn from U(8, 20) kWh; the forecast assumes 18:00 and 14 kWh.
- Battery: no fixed profile; its strategy decides each slot (`hil_tests.rig.strategies`).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

MINUTES = 1440


@dataclass(frozen=True)
class Site:
    latitude: float = 48.14  # Munich
    longitude: float = 11.58
    altitude_m: float = 520.0
    date: str = "2026-06-21"


@dataclass
class Profile:
    """A day of average power per minute (W), forecast and actual."""

    forecast: list[float]
    actual: list[float]

    def actual_w(self, t: float) -> float:
        return self.actual[_minute(t)]

    def forecast_wh(self, start: float, end: float) -> int:
        """Forecast energy (Wh, + import) between two instants of the day, rounded."""
        return round(_integrate(self.forecast, start, end))

    def actual_wh(self, start: float, end: float) -> float:
        return _integrate(self.actual, start, end)


def _minute(t: float) -> int:
    return int(t % 86400 // 60) % MINUTES


def _integrate(per_minute: list[float], start: float, end: float) -> float:
    wh, t = 0.0, start
    while t < end:
        step = min(end, (t // 60 + 1) * 60) - t
        wh += per_minute[_minute(t)] * step / 3600
        t += step
    return wh


@functools.lru_cache(maxsize=4)
def _h0_day_w(date: str) -> tuple[float, ...]:
    """The BDEW H0 profile of `date` for 1,000 kWh a year: 96 quarter-hour average powers (W)."""
    from demandlib import bdew

    day = datetime.fromisoformat(date)
    kw = bdew.ElecSlp(day.year).get_scaled_power_profiles({"h0": 1000})["h0"]
    return tuple(w * 1000 for w in kw[kw.index.normalize() == day.strftime("%Y-%m-%d")])


def household(site: Site, annual_kwh: float, seed: int) -> Profile:
    day_w = _h0_day_w(site.date)
    forecast = [day_w[m // 15] * annual_kwh / 1000 for m in range(MINUTES)]
    rnd = random.Random(seed)
    actual = [w * rnd.lognormvariate(-(0.35**2) / 2, 0.35) for w in forecast]
    start = rnd.randrange(8 * 60, 20 * 60)
    for m in range(start, min(MINUTES, start + rnd.randrange(30, 91))):
        actual[m] += 2000.0
    return Profile(forecast, actual)


def pv_plant(site: Site, peak_w: float, cloudiness: float, seed: int) -> Profile:
    import pandas as pd
    import pvlib

    loc = pvlib.location.Location(site.latitude, site.longitude, tz="UTC", altitude=site.altitude_m)
    times = pd.date_range(site.date, periods=MINUTES, freq="1min", tz="UTC")
    clear = loc.get_clearsky(times, model="ineichen")
    sun = loc.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(
        30, 180, sun["apparent_zenith"], sun["azimuth"], clear["dni"], clear["ghi"], clear["dhi"]
    )["poa_global"]
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"]
    cell_c = pvlib.temperature.sapm_cell(poa, 20.0, 1.0, **params)
    dc = pvlib.pvsystem.pvwatts_dc(poa, cell_c, peak_w, -0.004).fillna(0.0).clip(lower=0.0)
    clear_w = [-float(w) for w in dc]
    rnd = random.Random(seed)
    index, cloudy = [], False
    for _ in range(MINUTES // 5):
        cloudy = rnd.random() < (2 / 3 if cloudy else cloudiness / 3)
        index.extend([rnd.uniform(0.2, 0.6) if cloudy else 1.0] * 5)
    expected = 1 - 0.6 * cloudiness / (cloudiness + 1)  # stationary P(cloudy) times mean loss
    return Profile(
        [w * expected for w in clear_w], [w * k for w, k in zip(clear_w, index, strict=True)]
    )


def ev_charger(seed: int, power_w: float = 11_000.0) -> Profile:
    rnd = random.Random(seed)

    def session(arrive_min: int, energy_wh: float) -> list[float]:
        out = [0.0] * MINUTES
        left, m = energy_wh, arrive_min
        while left > 0 and m < MINUTES:
            w = min(power_w, left * 60)
            out[m], left, m = w, left - w / 60, m + 1
        return out

    arrive = int(18 * 60 + rnd.uniform(-90, 90))
    return Profile(session(18 * 60, 14_000.0), session(arrive, rnd.uniform(8_000, 20_000)))


def constant(watts: float) -> Profile:
    return Profile([watts] * MINUTES, [watts] * MINUTES)


def day_start(site: Site) -> float:
    """Unix time of 00:00 UTC of the site's date."""
    return datetime.fromisoformat(site.date).replace(tzinfo=UTC).timestamp()


def daylight_hours(profile: Profile) -> float:
    return sum(1 for w in profile.forecast if w < -1) / 60 if profile.forecast else math.nan
