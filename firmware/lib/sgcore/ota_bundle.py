"""Firmware updates over MQTT: the offer, the manifest, the chunk stream and their topics.

The one copy of the format (docs/ota.md); the gateway's `sgrid ota` builds and publishes it,
the meter's ota_agent fetches and checks it.

Offer (retained on `<prefix>/<site>/ota/<board>/offer`), big-endian:

    off size field
      0    6 magic           b"SGOTA1"
      6   16 board           board id (ascii, NUL-padded): e.g. "esp32_devkitc"
     22   16 version         "1.2.3" (ascii, NUL-padded)
     38    4 version_code    u32 = major * 1000000 + minor * 1000 + patch (no downgrades)
     42    4 manifest_len    bytes of the manifest at the start of the stream
     46   32 manifest_sha256
     78    4 stream_len      manifest + every file, in manifest order
     82    2 chunk_size      bytes per chunk (the last one may be shorter)
     84   64 signature       r || s, secp256k1 ECDSA low-S over sha256(bytes 0..83), by the
                             release key the meter was provisioned with (release_pubkey)

Stream: manifest || file 1 || file 2 || ..., cut into chunks, chunk i retained on
`<prefix>/<site>/ota/<board>/<version_code>/<i, 5 digits>`. Manifest: one line per file,
"<sha256 hex> <size> <path>\\n", paths relative to the image root (e.g. "lib/meter_app.mpy").
"""

import binascii
import hashlib
import struct

from sgcore.compat import PACK_ERRORS, const

MAGIC = b"SGOTA1"
BODY_LEN = const(84)
OFFER_LEN = const(148)
CHUNK_SIZE = const(896)  # fits the meter's 1024-byte MQTT packets with the topic
_FORMAT = ">6s16s16sII32sIH"
_MAX_FILES = const(128)
_MAX_PATH = const(64)


class BundleError(ValueError):
    """A malformed offer or manifest (the reason is the message)."""


class Offer:
    __slots__ = ("board", "version", "version_code", "manifest_len", "manifest_sha256",
                 "stream_len", "chunk_size", "body", "signature")  # fmt: skip

    def chunks(self):
        return (self.stream_len + self.chunk_size - 1) // self.chunk_size


def version_code(version):
    """ "1.2.3" -> 1002003; BundleError for anything else."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        raise BundleError("version must be MAJOR.MINOR.PATCH, got %r" % version)
    return int(parts[0]) * 1000000 + int(parts[1]) * 1000 + int(parts[2])


def _pad(text, n, what):
    raw = text.encode()
    if not raw or len(raw) > n or b"\x00" in raw:
        raise BundleError("%s must be 1..%d characters" % (what, n))
    return raw + b"\x00" * (n - len(raw))


def offer_body(board, version, manifest, stream_len, chunk_size=CHUNK_SIZE):
    """The signed part of an offer (84 bytes)."""
    return struct.pack(_FORMAT, MAGIC, _pad(board, 16, "board"), _pad(version, 16, "version"),
                       version_code(version), len(manifest), hashlib.sha256(manifest).digest(),
                       stream_len, chunk_size)  # fmt: skip


def digest(body):
    return hashlib.sha256(body).digest()


def decode_offer(data):
    """An Offer from its 148 bytes; BundleError naming what is wrong (the signature is the
    caller's to check, over digest(offer.body))."""
    if len(data) != OFFER_LEN:
        raise BundleError("offer of %d bytes, expected %d" % (len(data), OFFER_LEN))
    try:
        magic, board, version, code, mlen, msha, slen, csize = struct.unpack(
            _FORMAT, data[:BODY_LEN]
        )
    except PACK_ERRORS:
        raise BundleError("offer does not unpack")
    if magic != MAGIC:
        raise BundleError("not an SGOTA1 offer")
    o = Offer()
    try:
        o.board = board.rstrip(b"\x00").decode()
        o.version = version.rstrip(b"\x00").decode()
    except UnicodeError:
        raise BundleError("board or version is not text")
    if version_code(o.version) != code:
        raise BundleError("version_code does not match the version")
    if not 0 < mlen <= slen or not 64 <= csize <= 1024:
        raise BundleError("impossible lengths")
    o.version_code, o.manifest_len, o.manifest_sha256 = code, mlen, msha
    o.stream_len, o.chunk_size = slen, csize
    o.body, o.signature = bytes(data[:BODY_LEN]), bytes(data[BODY_LEN:])
    return o


def encode_manifest(files):
    """files: [(path, data)] -> manifest bytes (one line per file, in this order)."""
    lines = []
    for path, data in files:
        sha = binascii.hexlify(hashlib.sha256(data).digest()).decode()
        lines.append("%s %d %s\n" % (sha, len(data), path))
    return "".join(lines).encode()


def parse_manifest_line(line):
    """(path, size, sha256 bytes) from one manifest line; BundleError if it is not one."""
    parts = line.decode().split()
    if len(parts) != 3 or len(parts[0]) != 64 or not parts[1].isdigit():
        raise BundleError("bad manifest line")
    path = parts[2]
    if (len(path) > _MAX_PATH or not path.startswith("lib/") or ".." in path
            or "//" in path or path.endswith("/")):  # fmt: skip
        raise BundleError("manifest path %r is not under lib/" % path)
    try:
        sha = bytes.fromhex(parts[0])
    except ValueError:
        raise BundleError("bad manifest hash")
    return path, int(parts[1]), sha


def parse_manifest(manifest, stream_len):
    """[(path, size, sha256)] of a manifest whose files fill the stream exactly."""
    files = []
    for line in manifest.split(b"\n")[:-1]:
        files.append(parse_manifest_line(line))
        if len(files) > _MAX_FILES:
            raise BundleError("more than %d files" % _MAX_FILES)
    if not manifest.endswith(b"\n") or not files:
        raise BundleError("empty or unterminated manifest")
    if len(manifest) + sum(f[1] for f in files) != stream_len:
        raise BundleError("the files do not add up to the stream length")
    return files


def chunk_topic(site, board, code, index, prefix="sg"):
    return "%s/%s/ota/%s/%d/%05d" % (prefix, site, board, code, index)


def offer_topic(site, board, prefix="sg"):
    return "%s/%s/ota/%s/offer" % (prefix, site, board)


def ota_filter(site, prefix="sg"):
    """Every OTA topic of a site: meters read it, the gateway's account writes it (broker ACL)."""
    return "%s/%s/ota/#" % (prefix, site)
