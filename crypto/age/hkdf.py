"""HKDF-SHA-256 (RFC 5869), the only key derivation age uses besides scrypt.

Written on the standard library's HMAC so the offline path needs nothing else.
"""

from __future__ import annotations

import hashlib
import hmac

_HASH_SIZE = 32


def extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract: an empty salt means a string of zeros, as RFC 5869 says."""
    return hmac.digest(salt or bytes(_HASH_SIZE), ikm, hashlib.sha256)


def expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand to ``length`` bytes (at most 255 blocks)."""
    if not 0 < length <= 255 * _HASH_SIZE:
        raise ValueError("HKDF-SHA-256 output length must be 1..8160 bytes")
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), hashlib.sha256)
        out += block
        counter += 1
    return bytes(out[:length])


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA-256(ikm, salt, info) truncated to ``length`` bytes."""
    return expand(extract(salt, ikm), info, length)
