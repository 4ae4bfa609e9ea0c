"""The sim's prices and the [market] lines of each node's gateway config (its strategy)."""

from __future__ import annotations

from pathlib import Path

from hil_tests.rig import microgrid, profiles

TARIFF = 300_000  # msat per kWh: the POD's last-resort price (0.30 per kWh, 1 sat = 1 cent)
FEED_IN = 80_000  # msat per kWh: what the POD pays for a receipt nobody else bought
IMBALANCE = TARIFF  # msat per kWh: one imbalance price for every period (docs/market.md)
PV_PRICE = 150_000  # msat per kWh: the PV plants' price, below the tariff (seed 004)
EMERGENCY_WH = 0  # the emergency credit a prepaid meter gives beyond what was paid (Wh)


def market_config(
    n: microgrid.NodeSpec, t_begin: float, unpaid: bool, speed: float, forecast: Path | None = None
) -> str:
    """The [market] lines of a node: its strategy, its forecast file (hil_tests/rig/sim/forecasts.py)
    and, for windows the file does not list, a flat forecast from its profile."""
    every = max(0.1, min(5.0, 120 / speed))  # a market round every ~2 virtual minutes
    day = (t_begin, t_begin + 86400)
    ff = f'forecast_file = "{forecast}"\n' if forecast is not None else ""
    if n.kind in ("home", "ev", "critical"):
        if unpaid or n.profile is None:
            return 'strategy = "manual"\n'
        need = max(1, round(n.profile.forecast_wh(*day) / 24))
        return (f'strategy = "consumer"\nmax_price_msat_per_kwh = {TARIFF}\n'
                f'need_wh_per_hour = {need}\nforward_to = "pod"\nplan_every_s = {every}\n'
                f"last_resort = true\n{ff}")  # fmt: skip
    if n.kind in ("pv", "battery"):
        if n.profile is not None:
            daylight = max(1.0, profiles.daylight_hours(n.profile))
            surplus = max(1, round(-n.profile.forecast_wh(*day) / daylight))
        else:
            surplus = n.capacity_wh // 6  # a battery sells its evening discharge
        return (f'strategy = "producer"\ntariff_msat_per_kwh = {PV_PRICE}\n'
                f'surplus_wh_per_hour = {surplus}\nforward_to = "pod"\nplan_every_s = {every}\n'
                f"horizon_s = 3600\nsurplus_price_msat_per_kwh = {FEED_IN}\n{ff}")  # fmt: skip
    if n.kind == "pod":
        return (f'strategy = "pod"\ntariff_msat_per_kwh = {TARIFF}\n'
                f"feed_in_msat_per_kwh = {FEED_IN}\nimbalance_price_msat_per_kwh = {TARIFF}\n"
                f"surplus_price_msat_per_kwh = {FEED_IN}\n")  # fmt: skip
    return ""
