"""The gateway against the meters' own code: sgcore's pure-Python signer, and real MicroPython
verifying the gateway's signed acks and commands as the firmware will."""

import json

from boards.emulated.host.wasm import run_snippet
from gateway.crypto import SiteKey
from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from gateway.mqtt import messages
from hil_tests import REPO_ROOT
from sgcore import reading as rc
from sgcore import secp256k1, signing, topics

FIRMWARE_LIB = REPO_ROOT / "firmware" / "lib"
PRIV = bytes.fromhex("11" * 32)


def test_records_signed_by_the_firmware_signer_are_accepted(tmp_path):
    pub = secp256k1.public_key(PRIV)
    pub = pub if isinstance(pub, bytes) else pub.to_bytes()
    mid = rc.meter_id_from_pubkey(pub)
    store = ReadingStore(tmp_path / "r.sqlite3")
    store.enroll(pub)
    prev, items = rc.ZERO_HASH, []
    for seq in range(3):
        body = rc.encode_body(rc.Reading(mid, seq, prev, 900 * seq, 900 * seq + 900, 10 * seq, 0))
        record = signing.sign_record(body, PRIV)
        items.append(Incoming(mid.hex(), record, 0.0))
        prev = rc.record_hash(record)
    out = Ingestor(store).ingest(items)
    assert out.rejections == [] and [r.seq for r in out.stored] == [0, 1, 2]
    store.close()


# The firmware's own uplink.py (and journal.py) in MicroPython, fed through the MQTT client's
# callback with what the gateway publishes; only the client and the clock are stand-ins.
METER = """
import sys, json
sys.path.insert(0, '/lib')
import journal, uplink
class Link:
    connects = 0
class Client:  # the slice of mqtt.MQTTClient the uplink uses; nothing is published here
    link = Link()
    subs = []
    def subscribe(self, topic, qos):
        self.subs.append(topic.decode())
    def can_publish(self):
        return False
class Board:
    def ticks_ms(self):
        return 0
    def ticks_diff(self, a, b):
        return a - b
def setup():  # in a function: a big top-level frame would not survive gc.collect() (WASI)
    log, commands = [], []
    j = journal.Journal('/flash/j', log=log.append)
    with open('/flash/records.bin', 'rb') as f:
        for _ in range({n}):
            j.append(f.read(167))
    c = Client()
    u = uplink.Uplink(c, j, Board(), {site!r}, {mid!r}, {site_pub!r}, log=log.append,
                      on_command=lambda op, arg: commands.append([op, arg]))
    return j, c, u, log, commands, {messages!r}
j, c, u, log, commands, sent = setup()
out = [c.subs]
for leaf, payload in sent:  # top level: gc.collect() is safe here on the WASI build
    c.on_message(u.ack_topic if leaf == 'ack' else u.cmd_topic, payload, False)
    u.poll()
    while u.busy():
        gc.collect()
        u.poll()
    out.append([j.acked_seq(), u.freed])
print('J ' + json.dumps([out, commands, log]))
"""


def test_the_firmware_uplink_in_micropython_obeys_only_the_gateways_signed_messages(tmp_path):
    key = SiteKey.load_or_create(tmp_path / "site.key")
    other = SiteKey.load_or_create(tmp_path / "other.key")
    pub = secp256k1.public_key(PRIV)
    pub = pub if isinstance(pub, bytes) else pub.to_bytes()
    mid = rc.meter_id_from_pubkey(pub)
    prev, records = rc.ZERO_HASH, []
    for seq in range(3):
        body = rc.encode_body(rc.Reading(mid, seq, prev, 900 * seq, 900 * seq + 900, 10 * seq, 0))
        records.append(signing.sign_record(body, PRIV))
        prev = rc.record_hash(records[-1])
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "records.bin").write_bytes(b"".join(records))
    h1 = rc.record_hash(records[1])
    sent = [
        ("ack", messages.encode_ack(other, mid, 1, h1)),  # signed by another key
        ("ack", messages.encode_ack(key, mid, 1, h1).replace(b'"upto":1', b'"upto":2')),
        ("ack", messages.encode_ack(key, bytes(16), 1, h1)),  # signed for another meter
        ("ack", messages.encode_ack(key, mid, 1, h1)),
        ("cmd", messages.encode_cmd(key, mid, "time", 1_700_000_000)),
        ("cmd", messages.encode_cmd(other, mid, "time", 1_600_000_000)),
        ("ack", messages.encode_ack(key, mid, 2, rc.record_hash(records[2]))),
    ]
    code = METER.format(n=len(records), site="lab", mid=mid, site_pub=key.pubkey, messages=sent)
    outcome = run_snippet(
        code, rom_dirs={"/lib": FIRMWARE_LIB}, flash_dir=flash, heap_bytes=110 * 1024
    )
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    line = [ln for ln in outcome.stdout.splitlines() if ln.startswith("J ")][-1]
    out, commands, log = json.loads(line[2:])
    # the meter listens where the gateway publishes
    assert sorted(out[0]) == sorted(
        topics.meter_topic("lab", mid.hex(), leaf) for leaf in ("ack", "cmd")
    )
    # (acked seq, records freed) after each message: only the gateway's own acks for this meter
    assert out[1:] == [[-1, 0], [-1, 0], [-1, 0], [1, 2], [1, 2], [1, 2], [2, 3]]
    assert commands == [["time", 1_700_000_000]]
    assert sum("bad signature" in m for m in log) == 3, log
    assert "uplink: ack for seq 2 names another record" in log
