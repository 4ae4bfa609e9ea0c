"""The hot path's unpacker reads exactly the named fields of sgcore.reading's FORMAT."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ingest import fields
from sgcore import reading as rc


@given(st.binary(min_size=rc.RECORD_LEN, max_size=rc.RECORD_LEN))
def test_unpack_checked_gives_the_checked_fields_of_the_full_unpack(record):
    full = dict(zip(rc.FIELDS, fields.unpack(record), strict=True))
    assert fields.unpack_checked(record) == tuple(full[name] for name in fields.CHECKED)
    assert fields.unpack(record)[fields.SEQ] == full["seq"]


def test_only_refuses_names_out_of_the_format_or_its_order():
    with pytest.raises(ValueError):
        fields.only(("seq", "kind"))
    with pytest.raises(ValueError):
        fields.only(("kind", "watts"))
