"""Canonical byte encoding of a signed meter record (an interval reading or a relay event).

Layout (version 1, big-endian, documented in docs/reading-format.md):

    off size field
      0    1 version            = 1
      1    1 kind               1 = interval reading, 2 = relay event
      2    1 reason             relay-event reason code (0 for readings)
      3   16 meter_id           sha256(compressed public key)[:16]
     19    4 seq                u32, +1 per record, monotonic across reboots
     23   32 prev_hash          sha256 of the previous full record (zeros for seq 0)
     55    4 start              interval start, unix seconds UTC
     59    4 end                interval end (== start for an event)
     63    8 import_wh          OBIS 1.8.0 cumulative import, Wh
     71    8 export_wh          OBIS 2.8.0 cumulative export, Wh
     79    4 interval_import_wh import during the interval, Wh
     83    4 interval_export_wh export during the interval, Wh
     87    4 avg_power_w        i32, + import / - export (OBIS 1.7.0 / 2.7.0)
     91    4 peak_power_w       i32, the signed sample of largest magnitude
     95    2 voltage_dv         u16, decivolts
     97    1 relay              0 open, 1 closed
     98    1 flags              FLAG_* bits
     99    4 credit_wh          i32, credit left (negative: debt of a critical load)
    103   64 signature          r || s, secp256k1 ECDSA over sha256(bytes 0..102), low-S

A record is 167 bytes. The signature covers the body; the chain hash covers body + signature.
"""

import hashlib
import struct

from sgcore.compat import PACK_ERRORS, const

VERSION = const(1)
KIND_READING = const(1)
KIND_RELAY_EVENT = const(2)

FLAG_JOURNAL_FULL = const(1)  # the meter stopped journaling new intervals (totals still count)
FLAG_CRITICAL_LOAD = const(2)  # the relay is never opened automatically
FLAG_RESTARTED = const(4)  # the meter rebooted (or lost power) during this interval
FLAG_CHIP_ERRORS = const(8)  # metering-chip frames were rejected during this interval

# The body's struct format, and the name of each value `struct.unpack_from(FORMAT, record)` gives,
# in that order: what a reader that checks many records without making a Reading per record needs
# (the gateway's ingest: `FIELDS.index(name)` once, then index the unpacked tuple).
FORMAT = ">BBB16sI32sIIQQIIiiHBBi"
FIELDS = (
    "version",
    "kind",
    "reason",
    "meter_id",
    "seq",
    "prev_hash",
    "start",
    "end",
    "import_wh",
    "export_wh",
    "interval_import_wh",
    "interval_export_wh",
    "avg_power_w",
    "peak_power_w",
    "voltage_dv",
    "relay",
    "flags",
    "credit_wh",
)
BODY_LEN = const(103)
SIG_LEN = const(64)
RECORD_LEN = const(167)
ZERO_HASH = b"\x00" * 32


class ReadingFormatError(ValueError):
    pass


# What the meter's registers measure over an interval (firmware/lib/registers.py Interval holds
# the same fields before they become a Reading).
MEASURED_FIELDS = (
    "start",
    "end",
    "import_wh",
    "export_wh",
    "interval_import_wh",
    "interval_export_wh",
    "avg_power_w",
    "peak_power_w",
    "voltage_dv",
)


class Reading:
    __slots__ = (
        ("kind", "reason", "meter_id", "seq", "prev_hash")
        + MEASURED_FIELDS
        + (
            "relay",
            "flags",
            "credit_wh",
        )
    )

    def __init__(
        self,
        meter_id,
        seq,
        prev_hash,
        start,
        end,
        import_wh,
        export_wh,
        interval_import_wh=0,
        interval_export_wh=0,
        avg_power_w=0,
        peak_power_w=0,
        voltage_dv=0,
        relay=0,
        flags=0,
        credit_wh=0,
        kind=KIND_READING,
        reason=0,
    ):
        self.kind = kind
        self.reason = reason
        self.meter_id = meter_id
        self.seq = seq
        self.prev_hash = prev_hash
        self.start = start
        self.end = end
        self.import_wh = import_wh
        self.export_wh = export_wh
        self.interval_import_wh = interval_import_wh
        self.interval_export_wh = interval_export_wh
        self.avg_power_w = avg_power_w
        self.peak_power_w = peak_power_w
        self.voltage_dv = voltage_dv
        self.relay = relay
        self.flags = flags
        self.credit_wh = credit_wh

    def __eq__(self, other):
        return isinstance(other, Reading) and encode_body(self) == encode_body(other)

    def __repr__(self):
        return "Reading(seq=%d, kind=%d, %d..%d, import=%d Wh, export=%d Wh)" % (
            self.seq,
            self.kind,
            self.start,
            self.end,
            self.import_wh,
            self.export_wh,
        )


def _check(reading):
    if reading.kind not in (KIND_READING, KIND_RELAY_EVENT):
        raise ReadingFormatError("unknown record kind %r" % (reading.kind,))
    if len(reading.meter_id) != 16 or len(reading.prev_hash) != 32:
        raise ReadingFormatError("meter_id must be 16 bytes and prev_hash 32 bytes")
    if reading.end < reading.start:
        raise ReadingFormatError("interval ends before it starts")
    if reading.relay not in (0, 1):
        raise ReadingFormatError("relay state must be 0 or 1")


def encode_body(reading):
    """The signed part of a record (BODY_LEN bytes)."""
    _check(reading)
    try:
        return struct.pack(
            FORMAT,
            VERSION,
            reading.kind,
            reading.reason,
            reading.meter_id,
            reading.seq,
            reading.prev_hash,
            reading.start,
            reading.end,
            reading.import_wh,
            reading.export_wh,
            reading.interval_import_wh,
            reading.interval_export_wh,
            reading.avg_power_w,
            reading.peak_power_w,
            reading.voltage_dv,
            reading.relay,
            reading.flags,
            reading.credit_wh,
        )
    except PACK_ERRORS as exc:  # a field does not fit its width
        raise ReadingFormatError("field out of range: %s" % (exc,))


def decode(record):
    """Split and parse a full record: returns (Reading, body, signature).

    Raises ReadingFormatError for any malformed input; never anything else.
    """
    if not isinstance(record, (bytes, bytearray, memoryview)):
        raise ReadingFormatError("record must be bytes")
    if len(record) != RECORD_LEN:
        raise ReadingFormatError("record is %d bytes, expected %d" % (len(record), RECORD_LEN))
    body = bytes(record[:BODY_LEN])
    fields = struct.unpack(FORMAT, body)
    if fields[0] != VERSION:
        raise ReadingFormatError("unsupported record version %d" % fields[0])
    reading = Reading(
        fields[3],
        fields[4],
        fields[5],
        fields[6],
        fields[7],
        fields[8],
        fields[9],
        fields[10],
        fields[11],
        fields[12],
        fields[13],
        fields[14],
        fields[15],
        fields[16],
        fields[17],
        kind=fields[1],
        reason=fields[2],
    )
    _check(reading)
    return reading, body, bytes(record[BODY_LEN:])


def digest(body):
    """The 32-byte message hash that the meter signs."""
    return hashlib.sha256(body).digest()


def record_hash(record):
    """Chain hash: what the next record carries as prev_hash."""
    return hashlib.sha256(record).digest()


def meter_id_from_pubkey(pubkey33):
    """A meter's id: the first 16 bytes of sha256 of its compressed public key."""
    return hashlib.sha256(pubkey33).digest()[:16]
