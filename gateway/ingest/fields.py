"""What ingest reads of a record without making a Reading: the values of sgcore.reading's public
FORMAT, named by its FIELDS."""

from __future__ import annotations

import re
import struct

from sgcore import reading as rc

unpack = struct.Struct(rc.FORMAT).unpack_from  # every value of a record, in rc.FIELDS order
SEQ = rc.FIELDS.index("seq")
# what the hot path checks (unpack_checked gives these, in this order)
CHECKED = ("version", "kind", "meter_id", "seq", "prev_hash", "start", "end", "relay")


def only(names: tuple[str, ...]) -> struct.Struct:
    """rc.FORMAT reading only the fields `names` (in its order; the others skipped as pad bytes:
    the hot path makes no int objects for the energy fields, which it does not look at)."""
    codes = re.findall(r"\d*[a-zA-Z?]", rc.FORMAT[1:])
    if len(codes) != len(rc.FIELDS) or [f for f in rc.FIELDS if f in names] != list(names):
        raise ValueError(f"{names} are not fields of {rc.FORMAT} in its order")
    kept = [c if f in names else f"{struct.calcsize(rc.FORMAT[0] + c)}x"
            for f, c in zip(rc.FIELDS, codes, strict=True)]  # fmt: skip
    return struct.Struct(rc.FORMAT[0] + "".join(kept))


unpack_checked = only(CHECKED).unpack_from
