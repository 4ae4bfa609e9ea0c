import sqlite3
import threading
import time

from hil_tests.gateway.gateway_proc import GatewayProcess, sgrid_gateway, write_config
from hil_tests.gateway.mqtt_meter import MqttMeter
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

SITE = "crash"
N_METERS = 3
N_RECORDS = 300


def _stored(db_path) -> dict[bytes, list[bytes]]:
    db = sqlite3.connect(db_path)
    try:
        out: dict[bytes, list[bytes]] = {}
        for mid, record in db.execute(
            "SELECT meter_id, record FROM readings ORDER BY meter_id, seq"
        ):
            out.setdefault(mid, []).append(record)
        return out
    finally:
        db.close()


def test_sigkill_during_ingest_loses_no_acknowledged_reading(tmp_path, broker):
    cfg, _ = write_config(tmp_path, broker, SITE, "[homeassistant]\nenabled = false\n")
    softs = [SoftMeter() for _ in range(N_METERS)]
    for s in softs:
        sgrid_gateway("enroll-meter", "--config", str(cfg), "--pubkey", s.pubkey.hex())
    site_pub = bytes.fromhex(sgrid_gateway("site-key", "--config", str(cfg)).stdout.strip())
    for s in softs:
        for _ in range(N_RECORDS):
            s.next_record()

    gw = GatewayProcess(cfg, broker, SITE)
    meters = [MqttMeter(broker.host, broker.port, SITE, site_pub, s) for s in softs]
    try:
        gw.wait_online()
        for m in meters:
            m.wait_subscribed()

        def flood(m: MqttMeter) -> None:
            for record in m.meter.journal:
                m.publish(record)
                time.sleep(0.0005)

        threads = [threading.Thread(target=flood, args=(m,)) for m in meters]
        for t in threads:
            t.start()
        assert meters[0].wait_acked(30), gw.log()
        gw.kill()  # SIGKILL mid-ingest
        acked_at_kill = [m.acked for m in meters]
        for t in threads:
            t.join()

        stored = _stored(tmp_path / "state" / "readings.sqlite3")
        for m, acked in zip(meters, acked_at_kill, strict=True):
            records = stored.get(m.meter.meter_id, [])
            assert len(records) >= acked + 1, "an acknowledged reading is missing after SIGKILL"
            assert records == m.meter.journal[: len(records)]  # contiguous, byte-identical chain
        assert sum(len(v) for v in stored.values()) < N_METERS * N_RECORDS, "kill came too late"

        gw2 = GatewayProcess(cfg, broker, SITE)
        try:
            gw2.wait_online()
            for m in meters:  # as the firmware does on reconnect: resend everything not acked
                m.resend_from(m.acked + 1)
            for m in meters:
                assert m.wait_acked(N_RECORDS - 1, timeout=60), gw2.log()
            assert gw2.terminate() == 0
        finally:
            gw2.close()
    finally:
        for m in meters:
            m.close()
        gw.close()

    stored = _stored(tmp_path / "state" / "readings.sqlite3")
    for m in meters:
        assert stored[m.meter.meter_id] == m.meter.journal
        prev = rc.ZERO_HASH
        for record in stored[m.meter.meter_id]:
            assert rc.decode(record)[0].prev_hash == prev
            prev = rc.record_hash(record)
