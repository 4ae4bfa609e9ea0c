"""Signed firmware updates, the gateway's side: release key, bundle, publication over MQTT.

A bundle file (`.sgota`) is the 148-byte signed offer followed by the stream (manifest and
files), exactly as sgcore/ota_bundle.py defines them; `publish` puts the chunks and then the
offer on the site broker as retained messages, where every meter of that board finds them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import coincurve

from gateway.crypto import SiteKey
from sgcore import ota_bundle as ob
from tools.boards import REPO
from tools.errors import OtaError

FWINFO = REPO / "firmware" / "lib" / "fwinfo.py"


@dataclass(frozen=True)
class Bundle:
    offer: bytes
    stream: bytes

    @property
    def info(self) -> ob.Offer:
        return ob.decode_offer(self.offer)

    def chunks(self) -> list[bytes]:
        size = self.info.chunk_size
        return [self.stream[i : i + size] for i in range(0, len(self.stream), size)]


def firmware_version() -> str:
    m = re.search(r'FIRMWARE_VERSION = "([^"]+)"', FWINFO.read_text())
    if m is None:
        raise OtaError(f"{FWINFO}: no FIRMWARE_VERSION")
    return m.group(1)


def keygen(path: Path) -> bytes:
    """A new release key in a 0600 file; returns its public key. Refuses to overwrite one."""
    if path.exists():
        raise OtaError(f"{path} exists: a release key is never overwritten")
    return SiteKey.load_or_create(path).pubkey


def image_files(image: Path) -> list[tuple[str, bytes]]:
    """What an update carries: the image's lib/ (main.py and the boot selection stay)."""
    lib = image / "lib"
    if not lib.is_dir():
        raise OtaError(f"{image} is not a firmware image (no lib/): build it with sgrid build")
    files = sorted(p for p in lib.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [(str(p.relative_to(image)), p.read_bytes()) for p in files]


def make_bundle(image: Path, board: str, version: str, key: SiteKey) -> Bundle:
    try:
        files = image_files(image)
        manifest = ob.encode_manifest(files)
        stream = manifest + b"".join(data for _, data in files)
        body = ob.offer_body(board, version, manifest, len(stream))
    except ValueError as exc:
        raise OtaError(str(exc)) from None
    return Bundle(body + key.sign_digest(ob.digest(body)), stream)


def write_bundle(bundle: Bundle, path: Path) -> None:
    path.write_bytes(bundle.offer + bundle.stream)


def read_bundle(path: Path) -> Bundle:
    data = path.read_bytes()
    try:
        offer = ob.decode_offer(data[: ob.OFFER_LEN])
    except ValueError as exc:
        raise OtaError(f"{path}: not a bundle ({exc})") from None
    stream = data[ob.OFFER_LEN :]
    if len(stream) != offer.stream_len:
        raise OtaError(f"{path}: truncated: {len(stream)} of {offer.stream_len} stream bytes")
    return Bundle(data[: ob.OFFER_LEN], stream)


def verify_bundle(bundle: Bundle, release_pubkey: bytes) -> None:
    """OtaError unless the bundle is signed by this key and its manifest covers the stream."""
    info = bundle.info
    sig = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(info.signature))
    if not coincurve.PublicKey(release_pubkey).verify(sig, ob.digest(info.body), hasher=None):
        raise OtaError("the bundle is not signed by this release key")
    manifest = bundle.stream[: info.manifest_len]
    try:
        ob.parse_manifest(manifest, info.stream_len)
    except ValueError as exc:
        raise OtaError(f"bad manifest: {exc}") from None


def publish(
    bundle: Bundle,
    host: str,
    port: int,
    site: str,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca: Path | None = None,
    timeout: float = 60.0,
    chunks: list[bytes] | None = None,
    offer: bytes | None = None,
) -> int:
    """Chunks first, then the offer, all retained at QoS 1; returns the number of chunks.
    (`chunks`/`offer` replace the bundle's own: how tests publish a damaged bundle.)"""
    import paho.mqtt.client as mqtt

    info = bundle.info
    parts = bundle.chunks() if chunks is None else chunks
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sgrid-ota-{site}")
    if username:
        client.username_pw_set(username, password)
    if tls_ca:
        client.tls_set(ca_certs=str(tls_ca))
    try:
        client.connect(host, port)
    except OSError as exc:
        raise OtaError(f"cannot reach the broker at {host}:{port}: {exc}") from None
    client.loop_start()
    done = threading.Event()
    try:
        infos = []
        for i, data in enumerate(parts):
            topic = ob.chunk_topic(site, info.board, info.version_code, i)
            infos.append(client.publish(topic, data, qos=1, retain=True))
        infos.append(client.publish(ob.offer_topic(site, info.board), offer or bundle.offer,
                                    qos=1, retain=True))  # fmt: skip
        for item in infos:
            item.wait_for_publish(timeout)
            if not item.is_published():
                raise OtaError("the broker did not accept every chunk in time")
        done.set()
    finally:
        client.loop_stop()
        client.disconnect()
    return len(parts)
