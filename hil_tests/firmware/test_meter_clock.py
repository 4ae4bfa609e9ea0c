"""HIL: a meter clock wrongly set into the future is corrected by the gateway's signed, nonce'd
clock command (real firmware <-> real mosquitto <-> real gateway), and that command cannot be
replayed."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig.site import Site

FAST = {"interval_s": 60, "min_switch_s": 0, "checkpoint_s": 10}
YEAR_2096 = 3_980_000_000


def test_a_clock_set_into_the_future_is_set_back_once_by_the_gateway(tmp_path):
    with Site(tmp_path, meter_config={"home": FAST}) as site:
        home = site.meters["home"]
        cmds: list[bytes] = []
        lock = threading.Lock()
        spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # an eavesdropper on the broker
        spy.on_message = lambda c, u, msg: (
            lock.acquire(),
            cmds.append(msg.payload),
            lock.release(),
        )
        spy.connect(site.broker.host, site.broker.port)
        spy.subscribe(f"sg/{site.site}/{home.meter_id.hex()}/cmd", 1)
        spy.loop_start()
        try:
            home.board.power_cut()
            # its network time is 70 years ahead (a bad NTP server); the gateway's is right
            home.board.clock = VirtualClock(speed=1.0, virtual_t0=YEAR_2096)
            home.board.start()
            home.board.expect(r"clock set from network time: 39\d{8}")
            m = home.board.expect(r"clock set by the gateway: (\d+)", timeout=20)
            assert abs(int(m.group(1)) - site.clock.now()) < 5
            deadline = time.monotonic() + 5
            while not any(b'"clock"' in c for c in cmds) and time.monotonic() < deadline:
                time.sleep(0.05)
            with lock:
                recorded = next(c for c in cmds if b'"clock"' in c)
            # sent again later (the nonce was used): refused, the clock stays where it is
            site.publish(f"sg/{site.site}/{home.meter_id.hex()}/cmd", recorded)
            home.board.expect(r"clock: ignoring a clock command with a stale nonce", timeout=10)
        finally:
            spy.loop_stop()
            spy.disconnect()
