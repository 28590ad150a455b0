"""X25519 recipients and identities (``age1…`` / ``AGE-SECRET-KEY-1…``).

Wrapping: an ephemeral X25519 key is generated per file and recipient; the
wrap key is ``HKDF-SHA-256(ikm=shared secret, salt=ephemeral share ||
recipient, info="age-encryption.org/v1/X25519")`` and the 16-byte file key is
sealed with ChaCha20-Poly1305 under an all-zero nonce. The fixed nonce is
safe because every wrap key is derived from a fresh ephemeral key and so
used exactly once.

Unwrapping rejects, as header errors, stanzas of this type that are
malformed (wrong argument count, a share that is not 32 bytes of canonical
base64, a body that is not exactly 32 bytes) and shares that give the
all-zero shared secret (low-order points), which would let an attacker pick
the wrap key without knowing ours.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from nacl import bindings
from nacl.exceptions import CryptoError as NaclCryptoError

from ..errors import HeaderError, KeyFormatError
from . import bech32
from .format import b64_decode, b64_encode
from .hkdf import hkdf_sha256
from .stanza import Stanza

STANZA_TYPE = "X25519"
RECIPIENT_HRP = "age"
IDENTITY_HRP = "AGE-SECRET-KEY-"
_INFO = b"age-encryption.org/v1/X25519"
_KEY_SIZE = 32
FILE_KEY_SIZE = 16
_ZERO_NONCE = bytes(12)
_TAG_SIZE = 16


def _scalarmult(scalar: bytes, point: bytes) -> bytes:
    """X25519, with the all-zero (low-order) result reported as a HeaderError."""
    try:
        shared = bindings.crypto_scalarmult(scalar, point)
    except (RuntimeError, NaclCryptoError) as err:
        # PyNaCl raises RuntimeError when libsodium refuses a low-order point.
        raise HeaderError("X25519 share is a low-order point") from err
    if hmac.compare_digest(shared, bytes(_KEY_SIZE)):
        raise HeaderError("X25519 shared secret is all zero")
    return shared


def _wrap_key(shared: bytes, share: bytes, recipient: bytes) -> bytes:
    return hkdf_sha256(shared, share + recipient, _INFO, 32)


class X25519Recipient:
    """A native age recipient: a Curve25519 public key, written ``age1…``."""

    def __init__(self, public_key: bytes) -> None:
        """Raises :class:`KeyFormatError` for a wrong length or a low-order point.

        Every share sealed to a low-order point gives the all-zero secret, so
        such a "key" could never be wrapped to; refusing it here reports the
        bad key where it is entered, not as a header error at sealing time.
        """
        if len(public_key) != _KEY_SIZE:
            raise KeyFormatError("an X25519 recipient is 32 bytes")
        try:
            _scalarmult(bindings.randombytes(_KEY_SIZE), bytes(public_key))
        except HeaderError as err:
            raise KeyFormatError("the X25519 recipient is a low-order point") from err
        self._public_key = bytes(public_key)

    @classmethod
    def from_string(cls, text: str) -> X25519Recipient:
        """Parse ``age1…`` (lower case Bech32); raises :class:`KeyFormatError`."""
        hrp, data = bech32.decode(text)
        if hrp != RECIPIENT_HRP or text != text.lower():
            raise KeyFormatError("not an age X25519 recipient (age1…)")
        return cls(data)

    @property
    def public_key(self) -> bytes:
        return self._public_key

    @property
    def labels(self) -> frozenset[str]:
        return frozenset()

    def wrap(self, file_key: bytes) -> list[Stanza]:
        ephemeral = bindings.randombytes(_KEY_SIZE)
        share = bindings.crypto_scalarmult_base(ephemeral)
        shared = _scalarmult(ephemeral, self._public_key)
        key = _wrap_key(shared, share, self._public_key)
        body = bindings.crypto_aead_chacha20poly1305_ietf_encrypt(file_key, None, _ZERO_NONCE, key)
        return [Stanza(STANZA_TYPE, (b64_encode(share),), body)]

    def __str__(self) -> str:
        return bech32.encode(RECIPIENT_HRP, self._public_key)

    def __repr__(self) -> str:
        return f"X25519Recipient({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public_key == self._public_key

    def __hash__(self) -> int:
        return hash(self._public_key)


class X25519Identity:
    """A native age identity: a Curve25519 secret key, written ``AGE-SECRET-KEY-1…``.

    ``str()`` returns the secret key string; never log it. ``repr()`` does not.
    """

    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) != _KEY_SIZE:
            raise KeyFormatError("an X25519 identity is 32 bytes")
        self._secret_key = bytes(secret_key)
        self._recipient = X25519Recipient(bindings.crypto_scalarmult_base(self._secret_key))

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(bindings.randombytes(_KEY_SIZE))

    @classmethod
    def from_string(cls, text: str) -> X25519Identity:
        """Parse ``AGE-SECRET-KEY-1…`` (upper case Bech32); raises :class:`KeyFormatError`."""
        hrp, data = bech32.decode(text)
        if hrp != IDENTITY_HRP or text != text.upper():
            raise KeyFormatError("not an age X25519 identity (AGE-SECRET-KEY-1…)")
        return cls(data)

    @property
    def recipient(self) -> X25519Recipient:
        return self._recipient

    def to_string(self) -> str:
        return bech32.encode(IDENTITY_HRP, self._secret_key)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={self._recipient})"

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            file_key = self._unwrap_one(stanza)
            if file_key is not None:
                return file_key
        return None

    def _unwrap_one(self, stanza: Stanza) -> bytes | None:
        if stanza.type != STANZA_TYPE:
            return None
        # 1. Exactly one argument: the 32-byte ephemeral share, canonical base64.
        if len(stanza.args) != 1:
            raise HeaderError("X25519 stanza must have exactly one argument")
        share = b64_decode(stanza.args[0])
        if len(share) != _KEY_SIZE:
            raise HeaderError("X25519 share must be 32 bytes")
        # 2. The body is the 16-byte file key plus the tag, checked before any AEAD.
        if len(stanza.body) != FILE_KEY_SIZE + _TAG_SIZE:
            raise HeaderError("X25519 stanza body must be 32 bytes")
        # 3. Shared secret; the all-zero result is a header error.
        shared = _scalarmult(self._secret_key, share)
        key = _wrap_key(shared, share, self._recipient.public_key)
        # 4. A failed tag means the stanza is for someone else, not an error.
        try:
            return bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
                stanza.body, None, _ZERO_NONCE, key
            )
        except (NaclCryptoError, ValueError):
            return None
