"""The ``mlkem768x25519`` hybrid post-quantum age recipient type (X-Wing through HPKE).

Threat model. A sealed statement may be recorded today (a seized server, a
copied backup, an intercepted export) and kept until a quantum computer can
break X25519. This recipient type wraps the file key with HPKE (RFC 9180) base
mode over the MLKEM768-X25519 KEM (X-Wing), so unwrapping needs both the
ML-KEM-768 secret and the X25519 secret: the file stays sealed as long as
*either* problem stays hard. It protects nothing if a file also carries a
classical stanza for the same file key, which is why :attr:`HybridRecipient.labels`
is ``{"postquantum"}`` and the encryptor refuses to mix it with classical
recipients (C2SP age: "SHOULD NOT be encrypted to both").

The format, from the C2SP age specification (c2sp.org/age):

* identity  = 32 CSPRNG bytes, Bech32 with HRP ``AGE-SECRET-KEY-PQ-`` (upper case);
* recipient = PrivateKeyToPublicKey(identity) of the MLKEM768-X25519 KEM
  (filippo.io/hpke-pq): ``SHAKE256(identity, 96)`` splits into the 64-byte
  ML-KEM-768 seed ``d || z`` and the 32-byte X25519 scalar; the public key is
  the 1184-byte ML-KEM encapsulation key followed by the 32-byte X25519 point
  (1216 bytes), Bech32 with HRP ``age1pq`` (lower case, no length limit);
* stanza    = ``-> mlkem768x25519 <base64 enc>`` with body ``ct`` where
  ``enc, ct = SealBase(pkR=recipient, info="age-encryption.org/mlkem768x25519",
  aad="", pt=file key)`` with HKDF-SHA256 and ChaCha20-Poly1305; ``enc`` is
  1120 bytes (ML-KEM ciphertext 1088 || X25519 share 32), ``ct`` 32 bytes.

pyca/cryptography (>= 47) provides ML-KEM-768, X25519 and the single-shot HPKE
suite; this module adds the age encodings and the failure kinds the spec and
the CCTV vectors require. Two of those are *not* given by the HPKE suite and are
checked here, before it runs (see :meth:`HybridIdentity.unwrap`):

1. the stanza's structure (argument count, canonical base64, ``enc`` and body
   lengths), because the suite accepts an ``enc`` of the wrong length and
   reports it as a tag failure;
2. a low-order X25519 share, which must abort like the classical recipient's
   all-zero shared secret; the suite reports it as an ordinary tag failure,
   indistinguishable from "not my stanza".

Nothing here logs, and no message quotes a secret or says why an AEAD open failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from ..errors import CryptoError, HeaderError, KeyFormatError
from . import bech32
from .stanza import Stanza

__all__ = [
    "ENC_SIZE",
    "HPKE_INFO",
    "IDENTITY_HRP",
    "LABELS",
    "PUBLIC_KEY_SIZE",
    "RECIPIENT_HRP",
    "SEED_SIZE",
    "STANZA_TYPE",
    "HybridIdentity",
    "HybridRecipient",
    "generate_identity",
    "parse_pq_identity",
    "parse_pq_recipient",
]

STANZA_TYPE = "mlkem768x25519"
HPKE_INFO = b"age-encryption.org/mlkem768x25519"
RECIPIENT_HRP = "age1pq"
IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"
LABELS: frozenset[str] = frozenset({"postquantum"})

SEED_SIZE = 32
_MLKEM768_SEED_SIZE = 64
_MLKEM768_EK_SIZE = 1184
_MLKEM768_CT_SIZE = 1088
_X25519_SIZE = 32
PUBLIC_KEY_SIZE = _MLKEM768_EK_SIZE + _X25519_SIZE  # 1216
ENC_SIZE = _MLKEM768_CT_SIZE + _X25519_SIZE  # 1120
_FILE_KEY_SIZE = 16
_BODY_SIZE = _FILE_KEY_SIZE + 16  # ChaCha20-Poly1305 tag

# The suite is immutable and holds no key material, so one instance serves all calls.
_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _b64encode(data: bytes) -> str:
    """Unpadded standard base64, as age writes every argument and body."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode_canonical(text: str) -> bytes:
    """Decode unpadded base64, refusing padding and non-canonical encodings.

    Python's decoder tolerates non-zero trailing bits; the age spec requires
    rejecting them, so the result is re-encoded and compared.
    """
    if "=" in text or "\n" in text or "\r" in text:
        raise ValueError("padded or wrapped base64")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as err:
        raise ValueError("invalid base64") from err
    if _b64encode(data) != text:
        raise ValueError("non-canonical base64")
    return data


def _is_low_order(point: bytes, scalar: x25519.X25519PrivateKey) -> bool:
    """Whether an X25519 point yields the all-zero shared secret.

    Clamping clears the cofactor, so the product is zero exactly when the point
    has small order, for every scalar: the answer depends on the point alone
    and reveals nothing about ``scalar``. pyca raises ``ValueError`` for an
    all-zero result.
    """
    try:
        scalar.exchange(x25519.X25519PublicKey.from_public_bytes(point))
    except ValueError:
        return True
    return False


class HybridRecipient:
    """An ``age1pq1…`` recipient: wraps a file key in one ``mlkem768x25519`` stanza."""

    __slots__ = ("_key", "_public_bytes", "_text")

    def __init__(self, public_bytes: bytes) -> None:
        """Build a recipient from its 1216-byte public key.

        Raises :class:`KeyFormatError` if the length is wrong, the ML-KEM-768
        encapsulation key is not valid (FIPS 203 modulus check), or the X25519
        point has small order (every share sealed to it would be all-zero).
        """
        public_bytes = bytes(public_bytes)
        if len(public_bytes) != PUBLIC_KEY_SIZE:
            raise KeyFormatError(
                f"mlkem768x25519 recipient: public key is {len(public_bytes)} bytes,"
                f" expected {PUBLIC_KEY_SIZE}"
            )
        try:
            mlkem_key = mlkem.MLKEM768PublicKey.from_public_bytes(public_bytes[:_MLKEM768_EK_SIZE])
        except ValueError as err:
            raise KeyFormatError("mlkem768x25519 recipient: invalid ML-KEM-768 key") from err
        x25519_bytes = public_bytes[_MLKEM768_EK_SIZE:]
        if _is_low_order(x25519_bytes, x25519.X25519PrivateKey.generate()):
            raise KeyFormatError("mlkem768x25519 recipient: X25519 key is a low-order point")
        self._public_bytes = public_bytes
        # Bech32 over 1216 bytes costs milliseconds in pure Python: encode once.
        self._text: str | None = None
        self._key = hpke.MLKEM768X25519PublicKey(
            mlkem_key, x25519.X25519PublicKey.from_public_bytes(x25519_bytes)
        )

    @classmethod
    def parse(cls, text: str) -> HybridRecipient:
        """Parse an ``age1pq1…`` string (lower case, as the spec writes it).

        Raises :class:`KeyFormatError` for anything else.
        """
        if not text.startswith(RECIPIENT_HRP + "1"):
            raise KeyFormatError("not an age1pq1 recipient")
        hrp, data = bech32.decode(text)
        if hrp != RECIPIENT_HRP:
            raise KeyFormatError("not an age1pq1 recipient")
        recipient = cls(data)
        # Decoding checked the checksum and the zero padding bits, so the lower-case
        # input is exactly the canonical encoding of ``data``.
        recipient._text = text
        return recipient

    @property
    def labels(self) -> frozenset[str]:
        """``{"postquantum"}``: never mixed with classical recipients in one file."""
        return LABELS

    @property
    def public_bytes(self) -> bytes:
        """The 1216-byte public key (ML-KEM-768 encapsulation key || X25519 point)."""
        return self._public_bytes

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Seal ``file_key`` (16 bytes) with HPKE SealBase; returns one stanza.

        A fresh encapsulation is drawn for every call, so every stanza gets its
        own HPKE key and nonce. Raises :class:`CryptoError` only if called with a
        file key of the wrong length (a programming fault).
        """
        if len(file_key) != _FILE_KEY_SIZE:
            raise CryptoError(f"file key must be {_FILE_KEY_SIZE} bytes")
        sealed = _SUITE.encrypt(bytes(file_key), self._key, info=HPKE_INFO)
        enc, body = sealed[:ENC_SIZE], sealed[ENC_SIZE:]
        if len(enc) != ENC_SIZE or len(body) != _BODY_SIZE:
            raise CryptoError("HPKE returned an unexpected ciphertext size")
        return [Stanza(type=STANZA_TYPE, args=(_b64encode(enc),), body=body)]

    def __str__(self) -> str:
        if self._text is None:
            self._text = bech32.encode(RECIPIENT_HRP, self._public_bytes)
        return self._text

    def __repr__(self) -> str:
        return f"HybridRecipient({str(self)[:20]}…)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HybridRecipient):
            return NotImplemented
        return self._public_bytes == other._public_bytes

    def __hash__(self) -> int:
        return hash((STANZA_TYPE, self._public_bytes))


class HybridIdentity:
    """An ``AGE-SECRET-KEY-PQ-1…`` identity: unwraps ``mlkem768x25519`` stanzas.

    ``str(identity)`` is the secret key string, for writing an identity file;
    ``repr`` shows only the public recipient, so a stray log line leaks nothing.
    """

    __slots__ = ("_key", "_recipient", "_seed", "_x25519")

    def __init__(self, seed: bytes) -> None:
        """Expand a 32-byte seed as PrivateKeyToPublicKey of filippo.io/hpke-pq does.

        Raises :class:`KeyFormatError` if the seed is not 32 bytes.
        """
        seed = bytes(seed)
        if len(seed) != SEED_SIZE:
            raise KeyFormatError(f"mlkem768x25519 identity: seed is {len(seed)} bytes, expected 32")
        # X-Wing key expansion: SHAKE256(seed, 96) = ML-KEM-768 seed (d || z) || X25519 scalar.
        expanded = hashlib.shake_256(seed).digest(_MLKEM768_SEED_SIZE + _X25519_SIZE)
        mlkem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:_MLKEM768_SEED_SIZE])
        x25519_key = x25519.X25519PrivateKey.from_private_bytes(expanded[_MLKEM768_SEED_SIZE:])
        self._seed = seed
        self._x25519 = x25519_key
        self._key = hpke.MLKEM768X25519PrivateKey(mlkem_key, x25519_key)
        self._recipient = HybridRecipient(
            mlkem_key.public_key().public_bytes_raw() + x25519_key.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls) -> HybridIdentity:
        """A new identity from 32 bytes of the operating system's CSPRNG."""
        return cls(os.urandom(SEED_SIZE))

    @classmethod
    def parse(cls, text: str) -> HybridIdentity:
        """Parse an ``AGE-SECRET-KEY-PQ-1…`` string (upper case, as the spec writes it).

        Raises :class:`KeyFormatError` for anything else; the message never
        quotes the input, which may be a secret.
        """
        if not text.startswith(IDENTITY_HRP + "1"):
            raise KeyFormatError("not an AGE-SECRET-KEY-PQ-1 identity")
        hrp, data = bech32.decode(text)
        if hrp != IDENTITY_HRP:
            raise KeyFormatError("not an AGE-SECRET-KEY-PQ-1 identity")
        return cls(data)

    @property
    def recipient(self) -> HybridRecipient:
        """The ``age1pq1…`` recipient that seals to this identity."""
        return self._recipient

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key from the ``mlkem768x25519`` stanza sealed to us, or ``None``.

        Stanzas of other types are ignored. Every stanza of our type is checked
        *before* any is opened, so the outcome does not depend on stanza order:

        1. exactly one argument after the type (the spec counts the type as the
           first of two), else :class:`HeaderError`;
        2. the argument is canonical unpadded base64 of exactly 1120 bytes, else
           :class:`HeaderError`;
        3. the body is exactly 32 bytes, checked before any decryption to deny a
           partitioning oracle, else :class:`HeaderError`;
        4. the X25519 share is not a low-order point, else :class:`HeaderError`
           (it would make the X25519 half contribute an all-zero secret).

        Then each is opened with HPKE OpenBase. A failed AEAD open means the
        stanza is for another recipient (ML-KEM decapsulation never fails: a
        foreign or corrupted ciphertext yields an unrelated secret), so the next
        one is tried; ``None`` if none opens. A stanza that opens but was altered
        elsewhere in the header is the caller's header-MAC check to catch.
        """
        candidates = [
            self._check_stanza(stanza) for stanza in stanzas if stanza.type == STANZA_TYPE
        ]
        for sealed in candidates:
            try:
                file_key = _SUITE.decrypt(sealed, self._key, info=HPKE_INFO)
            except InvalidTag:
                continue
            return file_key
        return None

    def _check_stanza(self, stanza: Stanza) -> bytes:
        """Steps 1-4 of :meth:`unwrap`; returns ``enc || ct`` ready for OpenBase."""
        if len(stanza.args) != 1:
            raise HeaderError("mlkem768x25519 stanza: expected exactly two arguments")
        try:
            enc = _b64decode_canonical(stanza.args[0])
        except ValueError as err:
            raise HeaderError("mlkem768x25519 stanza: invalid base64 in enc") from err
        if len(enc) != ENC_SIZE:
            raise HeaderError(
                f"mlkem768x25519 stanza: enc is {len(enc)} bytes, expected {ENC_SIZE}"
            )
        if len(stanza.body) != _BODY_SIZE:
            raise HeaderError(
                f"mlkem768x25519 stanza: body is {len(stanza.body)} bytes, expected {_BODY_SIZE}"
            )
        if _is_low_order(enc[_MLKEM768_CT_SIZE:], self._x25519):
            raise HeaderError("mlkem768x25519 stanza: X25519 share is a low-order point")
        return enc + stanza.body

    def __str__(self) -> str:
        return bech32.encode(IDENTITY_HRP, self._seed)

    def __repr__(self) -> str:
        return f"HybridIdentity(recipient={self._recipient!r})"


def parse_pq_recipient(text: str) -> HybridRecipient:
    """Parse an ``age1pq1…`` recipient; raises :class:`KeyFormatError`."""
    return HybridRecipient.parse(text)


def parse_pq_identity(text: str) -> HybridIdentity:
    """Parse an ``AGE-SECRET-KEY-PQ-1…`` identity; raises :class:`KeyFormatError`."""
    return HybridIdentity.parse(text)


def generate_identity() -> HybridIdentity:
    """A new random hybrid identity (its ``.recipient`` is the ``age1pq1…`` key)."""
    return HybridIdentity.generate()
