"""The gateway against the meters' own code: sgcore's pure-Python signer, and real MicroPython
verifying the gateway's signed acks and commands as the firmware will."""

from pathlib import Path

from boards.emulated.host.wasm import run_snippet
from gateway.crypto import SiteKey
from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.store import ReadingStore
from gateway.mqtt import messages
from sgcore import reading as rc
from sgcore import secp256k1, signing

FIRMWARE_LIB = Path(__file__).resolve().parents[2] / "firmware" / "lib"
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


def test_micropython_meter_verifies_the_gateways_ack_and_command(tmp_path):
    key = SiteKey.load_or_create(tmp_path / "site.key")
    mid = bytes(range(16))
    h = bytes(range(32, 64))
    ack = messages.encode_ack(key, mid, 1234, h)
    forged = messages.encode_ack(key, mid, 1234, h).replace(b'"upto":1234', b'"upto":1235')
    cmd = messages.encode_cmd(key, mid, "resend", 77)
    code = f"""
import sys, json, struct, hashlib, gc
sys.path.insert(0, '/lib')
from sgcore import secp256k1
def verify(pub, digest, sig):  # step-wise, collecting garbage as the firmware's loop does
    v = secp256k1.Verifier(pub, digest, sig)
    while not v.step():
        gc.collect()
    return v.valid
SITE = bytes.fromhex('{key.pubkey.hex()}')
MID = bytes.fromhex('{mid.hex()}')
def ack_ok(payload):
    m = json.loads(payload)
    h = bytes.fromhex(m['h'])
    msg = b'SGACK1' + MID + struct.pack('>I', m['upto']) + h
    return verify(SITE, hashlib.sha256(msg).digest(), bytes.fromhex(m['sig']))
def cmd_ok(payload):
    m = json.loads(payload)
    msg = b'SGCMD1' + MID + bytes([1]) + struct.pack('>I', m['from'])
    return verify(SITE, hashlib.sha256(msg).digest(), bytes.fromhex(m['sig']))
print('ACK', ack_ok({ack.decode()!r}))
print('FORGED', ack_ok({forged.decode()!r}))
print('CMD', cmd_ok({cmd.decode()!r}))
"""
    outcome = run_snippet(code, rom_dirs={"/lib": FIRMWARE_LIB}, heap_bytes=110 * 1024)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert outcome.stdout.split() == ["ACK", "True", "FORGED", "False", "CMD", "True"]
