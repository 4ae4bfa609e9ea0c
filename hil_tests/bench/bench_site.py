"""A whole site on the bench: how fast a paid credit token releases energy.

    uv run python -m hil_tests.bench.bench_site [--tokens 10]

For each token: publish it (gateway-signed) and time until the meter's relay line closes; then
consume the credit with S0 pulses and time until the relay opens again. Real time (1x), real
mosquitto, real gateway process, the real firmware on an emulated board.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hil_tests.rig.site import Site


def _wait_relay(meter, value: int, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    while meter.board.state()["gpio"]["relay"] != value:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"relay never became {value}")
        time.sleep(0.005)
    return time.monotonic() - t0


def run(tokens: int) -> dict[str, float]:
    cfg = {"interval_s": 900, "min_switch_s": 0}
    with tempfile.TemporaryDirectory() as tmp, Site(Path(tmp), meter_config={"home": cfg}) as site:
        home = site.meters["home"]
        issuer = site.issuer()
        close_s, open_s = [], []
        for i in range(tokens):
            token = issuer.energy(
                home.meter_id, 20, int(site.clock.now()) + 600, f"bench-{i}".encode()
            )
            t0 = time.monotonic()
            site.send_token(home, token)
            _wait_relay(home, 1)
            close_s.append(time.monotonic() - t0)
            t0 = time.monotonic()
            home.board.pulses(21)  # the 20 Wh and one more
            _wait_relay(home, 0)
            open_s.append(time.monotonic() - t0)
        issuer.close()
    return {
        "tokens": tokens,
        "close_p50_s": statistics.median(close_s),
        "close_max_s": max(close_s),
        "open_p50_s": statistics.median(open_s),
        "open_max_s": max(open_s),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tokens", type=int, default=10)
    r = run(ap.parse_args(argv).tokens)
    print(f"tokens: {r['tokens']}")
    print(
        f"token published -> relay closed: p50 {r['close_p50_s'] * 1000:.0f} ms, max {r['close_max_s'] * 1000:.0f} ms"
    )
    print(
        f"credit used up -> relay opened: p50 {r['open_p50_s'] * 1000:.0f} ms, max {r['open_max_s'] * 1000:.0f} ms"
    )
    return r


if __name__ == "__main__":
    main()
