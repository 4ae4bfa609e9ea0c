"""The OTA wire format (sgcore/ota_bundle.py): what the gateway builds, the meter decodes."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgcore import ota_bundle as ob

_names = st.from_regex(r"lib/[a-z_]{1,12}(/[a-z_]{1,12})?\.mpy", fullmatch=True)


@given(
    files=st.lists(st.tuples(_names, st.binary(max_size=300)), min_size=1, max_size=8,
                   unique_by=lambda f: f[0]),
    version=st.tuples(*[st.integers(0, 999)] * 3).map(lambda v: ".".join(map(str, v))),
    board=st.sampled_from(["emulated", "esp32_devkitc", "esp32c3_plug"]),
)  # fmt: skip
def test_offer_and_manifest_round_trip(files, version, board):
    manifest = ob.encode_manifest(files)
    stream_len = len(manifest) + sum(len(d) for _, d in files)
    body = ob.offer_body(board, version, manifest, stream_len)
    offer = ob.decode_offer(body + b"\x01" * 64)
    assert (offer.board, offer.version) == (board, version)
    assert offer.version_code == ob.version_code(version)
    assert offer.manifest_sha256 == hashlib.sha256(manifest).digest()
    parsed = ob.parse_manifest(manifest, stream_len)
    assert [(p, n, h) for p, n, h in parsed] == [
        (p, len(d), hashlib.sha256(d).digest()) for p, d in files
    ]


@given(st.binary(min_size=ob.OFFER_LEN, max_size=ob.OFFER_LEN))
def test_random_offers_are_refused_with_a_reason_never_a_crash(data):
    try:
        ob.decode_offer(data)
    except ob.BundleError as exc:
        assert str(exc)


def test_versions_order_as_numbers_and_bad_ones_are_refused():
    assert ob.version_code("0.10.0") > ob.version_code("0.9.99")
    for bad in ("1.2", "1.2.3.4", "a.b.c", "1.2.1000", ""):
        with pytest.raises(ob.BundleError):
            ob.version_code(bad)


def test_manifest_paths_stay_inside_lib_and_fill_the_stream():
    good = ob.encode_manifest([("lib/a.mpy", b"x")])
    with pytest.raises(ob.BundleError, match="add up"):
        ob.parse_manifest(good, len(good) + 2)
    for path in ("main.py", "lib/../key.bin", "/lib/a.mpy", "lib//a"):
        bad = ob.encode_manifest([(path, b"x")])
        with pytest.raises(ob.BundleError):
            ob.parse_manifest(bad, len(bad) + 1)
