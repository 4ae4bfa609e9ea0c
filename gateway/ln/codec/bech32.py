"""Bech32 (BIP-173) strings and 5-bit/8-bit regrouping, as BOLT #11 uses them.

Unlike BIP-173 addresses, invoices have no 90-character limit, so none is enforced here.
Checksum variant: original bech32 (constant 1), not bech32m.

Speed (a payer decodes every invoice it pays, a payee encodes every one it issues): a string's
checksum is 30 parities of the string as one integer (`_polymod_fast`), decoding and encoding
alike; the 5-bit <-> 8-bit regroupings of whole fields go through one big integer
(`int(digits, 32)`, `int.to_bytes`) instead of a bit loop per word, and characters and words
are mapped into each other by one `bytes.translate` (words as a `bytes` object).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from gateway.ln.errors import Bech32Error

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
# _GEN_XOR[top]: the XOR of the generators selected by the 5 bits of `top`
_GEN_XOR = tuple(
    _GENERATOR[0] * (t & 1)
    ^ _GENERATOR[1] * (t >> 1 & 1)
    ^ _GENERATOR[2] * (t >> 2 & 1)
    ^ _GENERATOR[3] * (t >> 3 & 1)
    ^ _GENERATOR[4] * (t >> 4 & 1)
    for t in range(32)
)
_BASE32_DIGITS = "0123456789abcdefghijklmnopqrstuv"  # int(..., 32) digit for each word value
# word value -> its base-32 digit; 32..255 -> "!" so that int(..., 32) refuses them
_TO_DIGITS = bytes(_BASE32_DIGITS.encode()[v] if v < 32 else ord("!") for v in range(256))
# ASCII character -> its word value; characters outside CHARSET -> 0xFF
_FROM_CHARS = bytes(CHARSET.find(chr(c)) % 256 if chr(c) in CHARSET else 0xFF for c in range(256))
# word value -> its bech32 character (encoding a whole string with one `bytes.translate`)
_TO_CHARS = CHARSET.encode().ljust(256, b"?")
CHECKSUM_LEN = 6


def _polymod(values: Iterable[int], chk: int = 1) -> int:
    gen = _GEN_XOR
    for value in values:
        chk = ((chk & 0x1FFFFFF) << 5 ^ value) ^ gen[chk >> 25]
    return chk


# _PAIR_XOR[hi]: two zero-input steps from a checksum whose top 10 bits are `hi`. The step is
# linear over GF(2) and an input word needs five steps to reach the top bits, so two steps of
# (chk, v1, v2) are (chk's low 20 bits << 10) ^ (v1 << 5 | v2) ^ _PAIR_XOR[chk >> 20].
_PAIR_XOR = tuple(_polymod((0, 0), hi << 20) for hi in range(1024))


def _polymod_words(words: bytes, chk: int) -> int:
    """`_polymod(words, chk)` two words per step (words as bytes, each 0..31)."""
    table = _PAIR_XOR
    for hi, lo in zip(words[0::2], words[1::2]):  # noqa: B905 - an odd last word follows
        chk = ((chk & 0xFFFFF) << 10) ^ (hi << 5 | lo) ^ table[chk >> 20]
    return _polymod(words[-1:], chk) if len(words) & 1 else chk


# The checksum as parities (how `decode_words` checks it). Starting from 0, a first word 1 gives
# the state 1, so `_polymod(ws)` is `_polymod([1] + ws, 0)`: linear over GF(2) in the input bits
# alone. Written as one integer with the last word in the lowest 5 bits, input bit 5p+k (word p
# from the end, bit k) adds column A^p e_k to the result, A being one zero-input step; so bit j
# of the result is the parity of (the input & _MASKS[j]), where _MASKS[j] holds bit j of every
# column. Built for up to `_mask_words` words, grown on demand.
MAX_MASK_WORDS = 4096  # ~0.1 s to build at most once; longer strings take the loop
_MASKS: list[int] = []
_BITS = tuple(1 << j for j in range(30))  # the result bit of each mask
_mask_words = 0


def _grow_masks(words: int) -> None:
    global _mask_words
    words = min(max(words, 2 * _mask_words, 1024), MAX_MASK_WORDS)
    columns = []
    col = [1 << k for k in range(5)]  # A^0 e_k
    for _ in range(words):
        columns.extend(col)  # input bits 5p .. 5p+4
        col = [_polymod((0,), c) for c in col]
    _MASKS[:] = [  # big-endian bit strings: the highest input bit first
        int("".join("1" if c >> j & 1 else "0" for c in reversed(columns)), 2) for j in range(30)
    ]
    _mask_words = words


def _polymod_fast(words: bytes) -> int:
    """`_polymod(words)` (from the initial state 1) by 30 parities of one big integer."""
    if len(words) + 1 > _mask_words:
        if len(words) + 1 > MAX_MASK_WORDS:
            return _polymod_words(words, 1)  # a string this long is rare: no masks for it
        _grow_masks(len(words) + 1)
    try:
        value = int((b"\x01" + words).translate(_TO_DIGITS), 32)
    except ValueError:
        raise Bech32Error("data words must be 5-bit values") from None
    return sum(
        [bit for mask, bit in zip(_MASKS, _BITS, strict=True) if (value & mask).bit_count() & 1]
    )


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


@functools.lru_cache(maxsize=256)
def _hrp_words(hrp: str) -> bytes:
    return bytes(_hrp_expand(hrp))


def _check_hrp(hrp: str) -> None:
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Bech32Error("human-readable part must be 1+ printable ASCII characters")


def encode(hrp: str, data: Sequence[int]) -> str:
    """`hrp` + '1' + data words + checksum, lower case."""
    _check_hrp(hrp)
    try:
        words = bytes(data)
    except (ValueError, TypeError):
        raise Bech32Error("data words must be 5-bit values") from None
    if words and max(words) > 31:
        raise Bech32Error("data words must be 5-bit values")
    hrp = hrp.lower()
    polymod = _polymod_fast(_hrp_words(hrp) + words + bytes(CHECKSUM_LEN)) ^ 1
    checksum = bytes((polymod >> 5 * (5 - i)) & 31 for i in range(CHECKSUM_LEN))
    return hrp + "1" + (words + checksum).translate(_TO_CHARS).decode("ascii")


def decode(text: str) -> tuple[str, list[int]]:
    """Return (hrp, data words without checksum); raise Bech32Error on any defect."""
    hrp, words = decode_words(text)
    return hrp, list(words)


def decode_words(text: str) -> tuple[str, bytes]:
    """As `decode`, the data words as a bytes object (one word per byte)."""
    if not isinstance(text, str):
        raise Bech32Error("bech32 input must be a string")
    if not (text.isascii() and text.isprintable()) or " " in text:
        raise Bech32Error("bech32 string has characters outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise Bech32Error("bech32 string has no separator '1' or an empty human-readable part")
    if pos + 1 + CHECKSUM_LEN > len(text):
        raise Bech32Error("bech32 data part is shorter than the checksum")
    hrp = text[:pos]
    data = text[pos + 1 :].encode("ascii").translate(_FROM_CHARS)
    if 0xFF in data:
        bad = text[pos + 1 + data.index(0xFF)]
        raise Bech32Error(f"invalid bech32 character {bad!r}")
    if _polymod_fast(_hrp_words(hrp) + data) != 1:
        raise Bech32Error("bech32 checksum mismatch")
    return hrp, data[:-CHECKSUM_LEN]


def convertbits(data: Iterable[int], frombits: int, tobits: int, pad: bool = True) -> list[int]:
    """Regroup a sequence of `frombits`-bit values into `tobits`-bit values (BIP-173)."""
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise Bech32Error(f"value {value} does not fit in {frombits} bits")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise Bech32Error("non-zero padding in bit regrouping")
    return out


def _words_value(words: Sequence[int]) -> int:
    """The big-endian integer of 5-bit words (each checked to be 0..31)."""
    if not words:
        return 0
    try:
        raw = words if isinstance(words, bytes) else bytes(words)
        return int(raw.translate(_TO_DIGITS), 32)
    except ValueError:
        raise Bech32Error("data words must be 5-bit values") from None


def bytes_to_words(data: bytes) -> list[int]:
    """8-bit bytes to 5-bit words, zero-padded at the end."""
    count = (len(data) * 8 + 4) // 5
    value = int.from_bytes(data, "big") << (count * 5 - len(data) * 8)
    return [(value >> shift) & 31 for shift in range(count * 5 - 5, -1, -5)]


def words_to_padded_bytes(words: Sequence[int]) -> bytes:
    """5-bit words to bytes, the last byte zero-padded (convertbits(words, 5, 8, pad=True))."""
    count = (len(words) * 5 + 7) // 8
    return (_words_value(words) << (count * 8 - len(words) * 5)).to_bytes(count, "big")


def words_to_bytes(words: Sequence[int]) -> bytes:
    """5-bit words to bytes, dropping the incomplete trailing bits (BOLT #11 field data)."""
    count = len(words) * 5 // 8
    return (_words_value(words) >> (len(words) * 5 - count * 8)).to_bytes(count, "big")


def int_to_words(value: int) -> list[int]:
    """Big-endian 5-bit words of a non-negative int, minimal length (0 -> [])."""
    if value < 0:
        raise Bech32Error("cannot encode a negative integer")
    words: list[int] = []
    while value:
        words.append(value & 31)
        value >>= 5
    return words[::-1]


def words_to_int(words: Sequence[int]) -> int:
    return _words_value(words)
