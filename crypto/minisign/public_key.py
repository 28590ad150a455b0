"""minisign public keys: the one-line base64 form and the two-line file.

Layout (base64 of 42 bytes, standard alphabet, padded)::

    "Ed" (2)  ||  key id (8)  ||  Ed25519 public key (32)

The key id is 8 random bytes chosen at key generation; minisign shows it as
the little-endian 64-bit integer in hex (:attr:`PublicKey.fingerprint`).
The file is ``untrusted comment: minisign public key <FINGERPRINT>`` and the
base64 line, each ending in a newline.
"""

from __future__ import annotations

import hmac
from typing import NewType

from nacl.bindings import crypto_core_ed25519_is_valid_point

from ..errors import KeyFormatError
from .encoding import UNTRUSTED_PREFIX, b64decode_exact, b64encode, split_lines, strip_prefix

KeyId = NewType("KeyId", bytes)

SIG_ALG = b"Ed"
KEY_ID_BYTES = 8
PUBLIC_KEY_BYTES = 32
_ENCODED_BYTES = len(SIG_ALG) + KEY_ID_BYTES + PUBLIC_KEY_BYTES


def fingerprint_of(key_id: bytes) -> str:
    """The key id as minisign prints it: little-endian integer, 16 upper-case hex digits.

    minisign 0.11 drops leading zeros in the public key file's comment
    (``%PRIX64``); later versions pad to 16 digits (``%016PRIX64``). We always pad.
    """
    return f"{int.from_bytes(key_id, 'little'):016X}"


class PublicKey:
    """An Ed25519 verification key with its minisign key id. Immutable."""

    __slots__ = ("_key", "_key_id")

    def __init__(self, key_id: bytes, key: bytes) -> None:
        if len(key_id) != KEY_ID_BYTES:
            raise KeyFormatError(f"a minisign key id is {KEY_ID_BYTES} bytes")
        if len(key) != PUBLIC_KEY_BYTES:
            raise KeyFormatError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
        # A point off the curve or of small order can never verify an honest
        # signature; refusing it here makes a corrupted key fail loudly at load.
        if not crypto_core_ed25519_is_valid_point(bytes(key)):
            raise KeyFormatError("the public key is not a valid Ed25519 point")
        self._key_id = KeyId(bytes(key_id))
        self._key = bytes(key)

    # -- parsing ---------------------------------------------------------

    @classmethod
    def from_string(cls, text: str) -> PublicKey:
        """Parse the base64 line (what ``minisign -P`` takes). Surrounding whitespace is ignored."""
        raw = b64decode_exact(text.strip(), _ENCODED_BYTES, "the public key", KeyFormatError)
        if raw[:2] != SIG_ALG:
            raise KeyFormatError(
                f"unsupported public key algorithm {raw[:2]!r}; minisign keys start with 'Ed'"
            )
        return cls(raw[2 : 2 + KEY_ID_BYTES], raw[2 + KEY_ID_BYTES :])

    @classmethod
    def from_file_text(cls, text: str) -> PublicKey:
        """Parse a public key file (``minisign.pub``): comment line, then the base64 line."""
        comment, line = split_lines(text, 2, "a minisign public key file", KeyFormatError)
        strip_prefix(comment, UNTRUSTED_PREFIX, "the public key file's first line", KeyFormatError)
        return cls.from_string(line)

    # -- encoding --------------------------------------------------------

    def to_string(self) -> str:
        return b64encode(SIG_ALG + self._key_id + self._key)

    def to_file_text(self) -> str:
        return f"{UNTRUSTED_PREFIX}minisign public key {self.fingerprint}\n{self.to_string()}\n"

    # -- properties ------------------------------------------------------

    @property
    def key_id(self) -> KeyId:
        return self._key_id

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self._key_id)

    @property
    def ed25519_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return hmac.compare_digest(self._key_id + self._key, other._key_id + other._key)

    def __hash__(self) -> int:
        return hash((self._key_id, self._key))

    def __repr__(self) -> str:
        return f"PublicKey({self.to_string()!r})"
