import json

import ecdsa
import pytest
from ecdsa.util import sigdecode_string

from gateway.crypto import SiteKey
from gateway.mqtt import messages
from gateway.mqtt.discovery import meter_discovery
from sgcore.topics import parse_meter_topic

MID = bytes(range(16))
H = b"\xab" * 32


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return SiteKey.load_or_create(tmp_path_factory.mktemp("k") / "site.key")


def test_ack_roundtrip_and_python_ecdsa_agrees(key):
    payload = messages.encode_ack(key, MID, 41, H)
    assert messages.decode_ack(payload, key.pubkey, MID) == (41, H)
    msg = json.loads(payload)
    vk = ecdsa.VerifyingKey.from_string(key.pubkey, curve=ecdsa.SECP256k1)
    assert vk.verify_digest(
        bytes.fromhex(msg["sig"]), messages.ack_digest(MID, 41, H), sigdecode=sigdecode_string
    )
    assert len(payload) < 240  # small enough for a MicroPython meter


def test_ack_for_another_meter_or_tampered_is_refused(key):
    payload = messages.encode_ack(key, MID, 41, H)
    with pytest.raises(messages.MessageError):
        messages.decode_ack(payload, key.pubkey, b"\x00" * 16)
    with pytest.raises(messages.MessageError):
        messages.decode_ack(payload.replace(b'"upto":41', b'"upto":42'), key.pubkey, MID)


def test_commands_roundtrip(key):
    assert messages.decode_cmd(messages.encode_cmd(key, MID, "resend", 7), key.pubkey, MID) == (
        "resend",
        7,
    )
    assert messages.decode_cmd(
        messages.encode_cmd(key, MID, "time", 1_700_000_000), key.pubkey, MID
    ) == (
        "time",
        1_700_000_000,
    )
    with pytest.raises(messages.MessageError):
        messages.decode_cmd(b'{"op":"reboot","sig":""}', key.pubkey, MID)


def test_site_key_file_is_private_and_reloads(tmp_path):
    path = tmp_path / "site.key"
    a = SiteKey.load_or_create(path)
    assert path.stat().st_mode & 0o077 == 0
    assert SiteKey.load(path).pubkey == a.pubkey


def test_topic_parsing():
    hexid = MID.hex()
    assert parse_meter_topic("s", f"sg/s/{hexid}/reading") == (hexid, "reading")
    assert parse_meter_topic("s", f"sg/other/{hexid}/reading") is None
    assert parse_meter_topic("s", "sg/s/NOTHEX/reading") is None


def test_home_assistant_discovery_makes_energy_dashboard_sensors():
    configs = {
        t: json.loads(p) for t, p in meter_discovery("homeassistant", "s", MID.hex(), "house-1")
    }
    imp = configs[f"homeassistant/sensor/sgrid_{MID.hex()}/import_energy/config"]
    exp = configs[f"homeassistant/sensor/sgrid_{MID.hex()}/export_energy/config"]
    for c in (imp, exp):
        assert (c["device_class"], c["state_class"], c["unit_of_measurement"]) == (
            "energy",
            "total_increasing",
            "kWh",
        )
    power = configs[f"homeassistant/sensor/sgrid_{MID.hex()}/power/config"]
    assert power["device_class"] == "power" and power["unit_of_measurement"] == "W"
    assert f"homeassistant/binary_sensor/sgrid_{MID.hex()}/relay/config" in configs
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)


def test_the_meters_status_says_whether_it_only_refreshes_its_nonce():
    """A refresh status (a clock command used the nonce up) must not be answered with another
    clock command: that was a loop, one command per ingest.status_answer_s, forever."""
    from gateway.mqtt.status import parse_status
    from sgcore.messages import online_status

    nonce = bytes(range(8))
    assert parse_status(online_status(nonce)) == (True, nonce, False)
    assert parse_status(online_status(nonce, True)) == (True, nonce, True)
    assert parse_status(b"online") == (True, None, False)
    assert parse_status(b'{"state": "online", "refresh": 1}') == (True, None, False)
