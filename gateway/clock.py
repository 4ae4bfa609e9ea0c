"""Wall-clock time for the gateway, with an opt-in virtual clock for simulations.

A bench (`sgrid sim`, HIL tests) may run the whole site in accelerated virtual time; it then
sets SGRID_VIRTUAL_CLOCK="<speed>,<real_t0>,<virtual_t0>" for the gateway so that the time it
gives meters matches theirs (boards/emulated/host/vclock.py uses the same formula).
Unset, as in production, this is time.time().
"""

from __future__ import annotations

import os
import time

ENV = "SGRID_VIRTUAL_CLOCK"


def _parse(value: str) -> tuple[float, float, float]:
    try:
        speed, real_t0, virtual_t0 = (float(x) for x in value.split(","))
    except ValueError as exc:
        raise ValueError(f"{ENV} must be '<speed>,<real_t0>,<virtual_t0>', got {value!r}") from exc
    if speed <= 0:
        raise ValueError(f"{ENV}: speed must be > 0")
    return speed, real_t0, virtual_t0


def now() -> float:
    value = os.environ.get(ENV)
    if not value:
        return time.time()
    speed, real_t0, virtual_t0 = _parse(value)
    return virtual_t0 + (time.time() - real_t0) * speed


def env_for(speed: float, real_t0: float, virtual_t0: float) -> dict[str, str]:
    return {ENV: f"{speed!r},{real_t0!r},{virtual_t0!r}"}
