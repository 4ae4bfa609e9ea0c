"""bech32 codec: BIP-173 vectors, round-trips, and typed errors on malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ln.codec import bech32
from gateway.ln.errors import Bech32Error

# BIP-173 "Test vectors": valid bech32 strings (https://github.com/bitcoin/bips/blob/master/bip-0173.mediawiki)
BIP173_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]
# BIP-173 invalid strings (those that are invalid without the 90-character limit we drop)
BIP173_INVALID = [
    "\x201nwldj5",  # hrp character out of range
    "\x7f1axkwrx",
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty hrp
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # too short checksum
    "de1lg7wt\xff",  # invalid character in checksum
    "A1G7SGD8",  # checksum calculated with uppercase hrp
    "10a06t8",  # empty hrp
    "1qzzfhee",  # empty hrp
]


@pytest.mark.parametrize("text", BIP173_VALID)
def test_bip173_valid_strings_decode_and_reencode(text: str) -> None:
    hrp, data = bech32.decode(text)
    assert bech32.encode(hrp, data) == text.lower()


@pytest.mark.parametrize("text", BIP173_INVALID)
def test_bip173_invalid_strings_raise_bech32_error(text: str) -> None:
    with pytest.raises(Bech32Error):
        bech32.decode(text)


hrps = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
words = st.lists(st.integers(0, 31), max_size=400)


@settings(max_examples=200)
@given(hrp=hrps, data=words)
def test_encode_decode_round_trip(hrp: str, data: list[int]) -> None:
    assert bech32.decode(bech32.encode(hrp, data)) == (hrp.lower(), data)


@settings(max_examples=200)
@given(
    hrp=hrps.filter(lambda h: h.isalnum()), data=words, pos=st.integers(0), flip=st.integers(1, 31)
)
def test_any_single_character_change_is_detected(
    hrp: str, data: list[int], pos: int, flip: int
) -> None:
    text = bech32.encode(hrp, data)
    sep = text.rfind("1")
    i = sep + 1 + pos % (len(text) - sep - 1)
    changed = text[:i] + bech32.CHARSET[bech32.CHARSET.index(text[i]) ^ flip] + text[i + 1 :]
    with pytest.raises(Bech32Error):
        bech32.decode(changed)


@settings(max_examples=200)
@given(data=st.binary(max_size=200))
def test_bytes_words_round_trip(data: bytes) -> None:
    assert bech32.words_to_bytes(bech32.bytes_to_words(data)) == data


@settings(max_examples=200)
@given(value=st.integers(0, 2**200))
def test_int_words_round_trip(value: int) -> None:
    assert bech32.words_to_int(bech32.int_to_words(value)) == value


@given(text=st.text(max_size=120))
def test_arbitrary_text_either_decodes_or_raises_bech32_error(text: str) -> None:
    try:
        hrp, data = bech32.decode(text)
    except Bech32Error:
        return
    assert bech32.encode(hrp, data) == text.lower()


@given(st.binary(max_size=700))
@settings(max_examples=200, deadline=None)
def test_the_fast_regroupings_agree_with_the_bit_loop(data):
    words = bech32.convertbits(data, 8, 5, pad=True)
    assert bech32.bytes_to_words(data) == words
    assert bech32.words_to_padded_bytes(words) == bytes(bech32.convertbits(words, 5, 8, True))
    assert bech32.words_to_bytes(words) == data
    assert bech32.words_to_bytes(bytes(words)) == data


@given(st.lists(st.integers(0, 31), max_size=900), st.integers(0, 2**30 - 1))
@settings(max_examples=200, deadline=None)
def test_the_two_words_per_step_checksum_agrees_with_one_word_per_step(words, start):
    assert bech32._polymod_words(bytes(words), start) == bech32._polymod(words, start)


def test_words_above_31_are_refused_by_the_fast_paths():
    with pytest.raises(Bech32Error):
        bech32.words_to_bytes([1, 32, 3])
    with pytest.raises(Bech32Error):
        bech32.words_to_int([-1])


@given(
    st.one_of(
        st.binary(max_size=1500),
        st.binary(min_size=4090, max_size=4200),  # around MAX_MASK_WORDS
    ).map(lambda raw: bytes(b & 31 for b in raw))
)
@settings(max_examples=60, deadline=None)
def test_the_checksum_by_parities_agrees_with_one_word_per_step(words):
    assert bech32._polymod_fast(words) == bech32._polymod(words)


def test_a_word_above_31_is_refused_by_the_checksum_by_parities():
    with pytest.raises(Bech32Error):
        bech32._polymod_fast(bytes([1, 32, 3]))
