"""The meter's store-and-forward uplink (firmware journal + MQTT client + signed acks) on an
emulated board, against a real mosquitto and a paho gateway peer: every reading reaches the
gateway in order, exactly once after dedupe by seq, through a broker restart and a broker that
stays down for a while; only acks signed by the site key for this meter free the journal."""

from __future__ import annotations

import hashlib
import re
import time

import coincurve
import pytest

from gateway.mqtt import messages
from hil_tests.firmware.mqtt_rig import BoardScript, GatewayPeer, results, seq_of, write_records
from hil_tests.gateway.soft_meter import SoftMeter
from hil_tests.rig.broker import Broker, mosquitto_available

pytestmark = pytest.mark.needs("mosquitto", mosquitto_available())

SITE = "lab"

# Appends records.bin to its journal one every `gap_ms` while the uplink publishes them; stops
# when the gateway has acknowledged all `n` (or `stop` exists and `wait_acks` is False).
METER = """
import journal, uplink

def log(msg):  # the console, and a file the test can read while the script runs
    print(msg)
    with open("uplink.log", "a") as f:
        f.write(msg + "\\n")

def setup():
    j = journal.Journal("j")
    link = mq.MqttLink(board, "127.0.0.1", {port}, b"meter-{tag}",
                       will_topic=uplink.topic("{site}", {mid!r}, "status"), keepalive_s=5,
                       timeout_ms=2000, backoff_min_ms=200, backoff_max_ms={bmax})
    c = mq.MQTTClient(link, window=4)
    u = uplink.Uplink(c, j, board, "{site}", {mid!r}, {site_pub!r}, rewind_ms={rewind}, log=log,
                      verify_steps=1)
    return j, c, u

def append_next():
    with open("records.bin", "rb") as f:
        f.seek(st[0] * 167)
        j.append(f.read(167))
    st[0] += 1
    st[1] = board.ticks_ms()

def step():
    c.poll()
    u.poll()
    now = board.ticks_ms()
    if st[0] < {n} and board.ticks_diff(now, st[1]) >= {gap_ms}:
        append_next()
    if j.acked_seq() == {n} - 1 and st[0] == {n}:
        return True
    if {stop_early} and stop_requested():
        return True
    if not u.busy():
        board.sleep_ms(5)
    return board.ticks_diff(st[2], now) < 0

def finish():
    result(appended=st[0], acked=j.acked_seq(), pending=j.pending_count(), freed=u.freed,
           published=u.published, connects=c.link.connects, retransmits=c.retransmits)

j, c, u = setup()
st = [0, board.ticks_ms(), board.ticks_add(board.ticks_ms(), 120000)]
while not step():
    gc.collect()
finish()
"""


def meter_script(port, meter, peer, n, tag, gap_ms=50, bmax=2000, rewind=3000, stop_early=False):
    return METER.format(
        port=port, tag=tag, site=SITE, mid=meter.meter_id, site_pub=peer.site_key.pubkey, n=n,
        gap_ms=gap_ms, bmax=bmax, rewind=rewind, stop_early=stop_early,
    )  # fmt: skip


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "mosquitto") as b:
        yield b


def _records(tmp_path, n):
    meter = SoftMeter()
    records = [meter.next_record() for _ in range(n)]
    (tmp_path / "flash").mkdir()
    write_records(tmp_path / "flash" / "records.bin", records)
    return meter, records


def test_every_reading_arrives_once_in_order_across_a_broker_restart(tmp_path, broker):
    n = 40
    meter, records = _records(tmp_path, n)
    peer = GatewayPeer(broker.host, broker.port, SITE, meter.meter_id)
    script = BoardScript(tmp_path / "flash", meter_script(broker.port, meter, peer, n, "rs"))
    script.start()
    try:
        peer.wait_stored(10, 60, script)
        broker.stop()
        time.sleep(1.0)
        broker.start()
        out = results(script.join(120))
    finally:
        script.stop()
        peer.close()
    # The gateway keeps a reading only when it is the next seq (it drops duplicates and asks for a
    # resend on a gap): its store is the stream in order, each reading once, none missing.
    assert peer.stored == records
    # What the restarted broker lost (it keeps no state) was published again: same bytes.
    assert sorted(set(peer.received)) == sorted(records)
    assert out["acked"] == n - 1 and out["pending"] == 0 and out["freed"] == n
    assert out["connects"] >= 2


def test_broker_down_for_a_while_backs_off_then_delivers_everything(tmp_path, broker):
    n = 30
    meter, records = _records(tmp_path, n)
    peer = GatewayPeer(broker.host, broker.port, SITE, meter.meter_id)
    code = meter_script(broker.port, meter, peer, n, "down", gap_ms=150, bmax=1500)
    script = BoardScript(tmp_path / "flash", code).start()
    try:
        peer.wait_stored(5, 60, script)
        broker.stop()
        time.sleep(8.0)  # the meter keeps journaling; its reconnect attempts back off
        broker.start()
        out = results(script.join(120))
    finally:
        script.stop()
        peer.close()
    assert peer.stored == records
    assert out["acked"] == n - 1 and out["freed"] == n
    delays = [int(d) for d in re.findall(r"next attempt in (\d+) ms", script.outcome.stdout)]
    assert len(delays) >= 4, script.outcome.stdout[-3000:]
    assert max(delays) <= 1500  # capped
    assert max(delays) > 2 * 200  # grew from the 200 ms minimum (jitter keeps it >= half)
    assert len(set(delays)) > 2  # jittered, not a fixed period


def test_only_a_valid_ack_for_this_meter_frees_the_journal(tmp_path, broker):
    n = 5
    meter, records = _records(tmp_path, n)
    peer = GatewayPeer(broker.host, broker.port, SITE, meter.meter_id)
    peer.ack_enabled = False
    code = meter_script(broker.port, meter, peer, n, "ack", gap_ms=10, rewind=60000)
    script = BoardScript(tmp_path / "flash", code).start()
    try:
        peer.wait_stored(n, 60, script)
        last = n - 1
        h = hashlib.sha256(records[last]).digest()
        other = coincurve.PrivateKey()
        forged = messages.encode_ack(_Key(other), meter.meter_id, last, h)
        wrong_meter = messages.encode_ack(peer.site_key, b"\x01" * 16, last, h)
        wrong_hash = messages.encode_ack(peer.site_key, meter.meter_id, last, b"\x07" * 32)
        beyond = messages.encode_ack(peer.site_key, meter.meter_id, last + 5, h)
        # An ack waits for the uplink in a one-message slot (a later one replaces it): each bad
        # one is sent once the meter has logged the one before (a fixed 0.3 s apart, a loaded
        # meter that did not poll for 0.3 s lost one and its log line)
        bad = [
            (wrong_hash, "names another record"),
            (beyond, "beyond the last record"),
            (b"not json", "not a JSON object"),
            (b'{"upto": "x"}', "without a valid sig"),
            (b"[1]", "not a JSON object"),
            (forged, "has a bad signature"),
            (wrong_meter, "has a bad signature"),
        ]
        uplink_log = tmp_path / "flash" / "uplink.log"
        for payload, line in bad:
            seen = _read(uplink_log).count(line)
            peer.client.publish(peer.topic("ack"), payload, qos=1)
            deadline = time.monotonic() + 60
            while _read(uplink_log).count(line) == seen:
                assert time.monotonic() < deadline, (line, _read(uplink_log)[-2000:])
                time.sleep(0.05)
        peer.send_cmd("resend", 2)  # a signed resend: seqs 2.. go out again
        deadline = time.monotonic() + 20
        while sum(seq_of(r) == 2 for r in peer.received) < 2:
            assert time.monotonic() < deadline, "no resend"
            time.sleep(0.05)
        script_alive = script.running()
        peer.send_ack(last)  # the real one
        out = results(script.join(60))
    finally:
        script.stop()
        peer.close()
    assert script_alive  # nothing above freed the journal (the script stops once all is acked)
    log = script.outcome.stdout
    assert log.count("has a bad signature") == 2  # forged, and signed for another meter
    assert "names another record" in log and "beyond the last record" in log
    assert log.count("not a JSON object") == 2 and "without a valid sig" in log
    assert out["acked"] == n - 1 and out["freed"] == n


def test_commands_that_arrive_together_are_each_applied(tmp_path, broker):
    """The sim's clock-drift bug: the uplink kept one waiting command, and a command that came
    while another waited replaced it: the gateway's clock command for a meter running an hour
    ahead, followed by its resend, was lost, and the meter's clock stayed ahead. Commands now
    wait in order, ahead of acks (a stream of acks kept a command waiting behind them)."""
    n = 5
    meter, _records_ = _records(tmp_path, n)
    peer = GatewayPeer(broker.host, broker.port, SITE, meter.meter_id)
    peer.ack_enabled = False
    code = meter_script(broker.port, meter, peer, n, "cmds", gap_ms=10, rewind=60000).replace(
        "verify_steps=1)",
        'verify_steps=1,\n                      on_command=lambda op, arg: print("command", op, arg))',
    )
    script = BoardScript(tmp_path / "flash", code).start()
    try:
        peer.wait_stored(n, 60, script)
        peer.send_ack(0)  # a signature check under way while the two commands arrive
        peer.send_cmd("time", 1_800_000_000)
        peer.send_cmd("resend", 2)
        deadline = time.monotonic() + 30
        while sum(seq_of(r) == 2 for r in peer.received) < 2:
            assert time.monotonic() < deadline, "the resend was not applied"
            time.sleep(0.05)
        peer.send_ack(n - 1)
        out = results(script.join(60))
    finally:
        script.stop()
        peer.close()
    assert out["acked"] == n - 1
    assert re.search(r"command time 18000000\d\d", script.outcome.stdout), script.outcome.stdout


def _read(path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class _Key:
    """A signer with another key: what a forger would have."""

    def __init__(self, key: coincurve.PrivateKey) -> None:
        self._key = key

    def sign_digest(self, digest: bytes) -> bytes:
        return self._key.sign_recoverable(digest, hasher=None)[:64]
