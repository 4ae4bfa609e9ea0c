import json
import sqlite3

from hil_tests.gateway.gateway_proc import GatewayProcess, sgrid_gateway, write_config
from hil_tests.gateway.mqtt_meter import MqttMeter
from hil_tests.gateway.soft_meter import SoftMeter
from hil_tests.rig.mqtt_peek import retained
from sgcore import reading as rc

SITE = "e2e"


def test_readings_flow_in_and_bad_ones_are_rejected_and_counted(tmp_path, broker):
    cfg, metrics_port = write_config(tmp_path, broker, SITE)
    soft = SoftMeter()
    out = sgrid_gateway(
        "enroll-meter",
        "--config",
        str(cfg),
        "--pubkey",
        soft.pubkey.hex(),
        "--label",
        "house-1",
    )
    assert soft.hex in out.stdout
    site_pub = bytes.fromhex(sgrid_gateway("site-key", "--config", str(cfg)).stdout.strip())

    gw = GatewayProcess(cfg, broker, SITE)
    meter = MqttMeter(broker.host, broker.port, SITE, site_pub, soft)
    try:
        gw.wait_online()
        meter.wait_subscribed()
        meter.publish_next(20)
        assert meter.wait_acked(19), gw.log()
        assert meter.ack_hashes[19] == rc.record_hash(soft.journal[19])

        forger = SoftMeter()
        body = rc.encode_body(rc.decode(soft.journal[3])[0])
        meter.publish(body + forger.sign_body(body))  # forged (seq 3 is stored: bad signature)
        meter.publish(soft.journal[5])  # replayed
        stranger = SoftMeter()
        meter.client.publish(f"sg/{SITE}/{stranger.hex}/reading", stranger.next_record(), qos=1)
        meter.publish(b"\x01" * 40)  # malformed
        meter.publish(b"\x01" * 500)  # oversized

        lost = soft.next_record()  # seq 20 never reaches the gateway ...
        assert lost
        meter.publish_next(2)  # ... so 21 and 22 open a gap: the gateway asks for a resend
        assert meter.wait_cmd("resend") == ("resend", 20), gw.log()
        assert meter.wait_acked(22), gw.log()
        assert meter.bad_messages == 0

        m = gw.metrics(metrics_port)
        rejected = {k: v for k, v in m.items() if k.startswith("sgrid_readings_rejected_total")}
        for reason in ("bad_signature", "replay", "unknown_meter", "malformed", "oversized", "gap"):
            assert rejected.get(f'sgrid_readings_rejected_total{{reason="{reason}"}}', 0) >= 1, (
                rejected
            )
        assert m[f'sgrid_readings_accepted_total{{meter="{soft.hex}"}}'] == 23

        ha = json.loads(
            retained(broker, f"homeassistant/sensor/sgrid_{soft.hex}/import_energy/config") or "{}"
        )
        assert ha["device_class"] == "energy" and ha["state_class"] == "total_increasing"
        state = json.loads(retained(broker, f"sg/{SITE}/{soft.hex}/state") or "{}")
        assert state["seq"] == 22 and state["import_kwh"] == soft.import_wh / 1000

        assert gw.terminate() == 0, gw.log()
        assert "STOPPING=1" in gw.notifications
        log = gw.log()
        for reason in ("bad_signature", "replay", "unknown_meter", "malformed", "oversized"):
            assert f"rejected reading: {reason}" in log
    finally:
        meter.close()
        gw.close()

    db = sqlite3.connect(tmp_path / "state" / "readings.sqlite3")
    rows = db.execute("SELECT seq, record FROM readings ORDER BY seq").fetchall()
    assert [r[1] for r in rows] == soft.journal[:23]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_watchdog_is_pinged_while_running(tmp_path, broker):
    cfg, _ = write_config(tmp_path, broker, "wd")
    gw = GatewayProcess(cfg, broker, "wd", watchdog_usec=200_000)
    try:
        assert gw.wait_notified("READY=1"), gw.log()
        assert gw.wait_notified("WATCHDOG=1", timeout=60), gw.log()
        assert gw.terminate() == 0
    finally:
        gw.close()
