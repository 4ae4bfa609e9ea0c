"""Bech32 (BIP-173) strings and 5-bit/8-bit regrouping, as BOLT #11 uses them.

Unlike BIP-173 addresses, invoices have no 90-character limit, so none is enforced here.
Checksum variant: original bech32 (constant 1), not bech32m.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.ln.errors import Bech32Error

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
CHECKSUM_LEN = 6


def _polymod(values: Iterable[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _check_hrp(hrp: str) -> None:
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Bech32Error("human-readable part must be 1+ printable ASCII characters")


def encode(hrp: str, data: Sequence[int]) -> str:
    """`hrp` + '1' + data words + checksum, lower case."""
    _check_hrp(hrp)
    if any(not 0 <= d < 32 for d in data):
        raise Bech32Error("data words must be 5-bit values")
    hrp = hrp.lower()
    polymod = _polymod(_hrp_expand(hrp) + list(data) + [0] * CHECKSUM_LEN) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(CHECKSUM_LEN)]
    return hrp + "1" + "".join(CHARSET[d] for d in list(data) + checksum)


def decode(text: str) -> tuple[str, list[int]]:
    """Return (hrp, data words without checksum); raise Bech32Error on any defect."""
    if not isinstance(text, str):
        raise Bech32Error("bech32 input must be a string")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise Bech32Error("bech32 string has characters outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise Bech32Error("bech32 string has no separator '1' or an empty human-readable part")
    if pos + 1 + CHECKSUM_LEN > len(text):
        raise Bech32Error("bech32 data part is shorter than the checksum")
    hrp, rest = text[:pos], text[pos + 1 :]
    try:
        data = [_CHARSET_REV[c] for c in rest]
    except KeyError as exc:
        raise Bech32Error(f"invalid bech32 character {exc.args[0]!r}") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
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


def bytes_to_words(data: bytes) -> list[int]:
    """8-bit bytes to 5-bit words, zero-padded at the end."""
    return convertbits(data, 8, 5, pad=True)


def words_to_bytes(words: Sequence[int]) -> bytes:
    """5-bit words to bytes, dropping the incomplete trailing bits (BOLT #11 field data)."""
    return bytes(convertbits(words, 5, 8, pad=True)[: len(words) * 5 // 8])


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
    value = 0
    for w in words:
        value = (value << 5) | w
    return value
