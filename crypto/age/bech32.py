"""Bech32 (BIP 173) encoding as age uses it for recipients and identities.

age lifts BIP 173's 90-character limit (post-quantum recipients are much
longer) and requires that a string be all lower case or all upper case.
This module only converts; it knows nothing about key types.
"""

from __future__ import annotations

from ..errors import KeyFormatError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _generator_table() -> tuple[int, ...]:
    # The five generator terms XORed for every value of the 5 bits shifted out,
    # so the checksum loop does one lookup per character instead of five tests
    # (post-quantum recipients are about 2,000 characters long).
    table = []
    for top in range(32):
        term = 0
        for i in range(5):
            if (top >> i) & 1:
                term ^= _GENERATOR[i]
        table.append(term)
    return tuple(table)


_TABLE = _generator_table()


def _polymod(values: list[int]) -> int:
    chk = 1
    table = _TABLE
    for value in values:
        chk = ((chk & 0x1FFFFFF) << 5 ^ value) ^ table[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise KeyFormatError("bech32: invalid data value")
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        raise KeyFormatError("bech32: invalid padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under the human-readable part ``hrp``.

    The result is lower case if ``hrp`` is lower case and upper case if it is
    upper case (age identities are written in upper case).
    """
    lowered = hrp.lower()
    values = _convert_bits(data, 8, 5, pad=True)
    polymod = _polymod([*_hrp_expand(lowered), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    text = lowered + "1" + "".join(_CHARSET[v] for v in values + checksum)
    return text.upper() if hrp.isupper() else text


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string into ``(hrp, data)``; the hrp is returned as written.

    Raises :class:`KeyFormatError` on mixed case, a bad character or a bad checksum.
    """
    if text.lower() != text and text.upper() != text:
        raise KeyFormatError("bech32: mixed case")
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise KeyFormatError("bech32: invalid character")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise KeyFormatError("bech32: separator misplaced")
    hrp = text[:pos]
    lowered = text.lower()
    try:
        values = [_CHARSET.index(c) for c in lowered[pos + 1 :]]
    except ValueError as err:
        raise KeyFormatError("bech32: invalid character") from err
    if _polymod([*_hrp_expand(hrp.lower()), *values]) != 1:
        raise KeyFormatError("bech32: invalid checksum")
    data = bytes(_convert_bits(values[:-6], 5, 8, pad=False))
    return hrp, data
