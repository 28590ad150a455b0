"""Passphrase recipients and identities (the age ``scrypt`` stanza).

The wrap key is ``scrypt(passphrase, salt="age-encryption.org/v1/scrypt" ||
16-byte random salt, N=2**logN, r=8, p=1)``, and the file key is sealed with
ChaCha20-Poly1305 under an all-zero nonce (safe: the random salt makes every
wrap key single-use).

Threat model: the work factor comes from the (hostile) file, so it is parsed
strictly (a decimal without sign or leading zero) and capped at ``logN`` 22
*before* the KDF runs; otherwise one stanza could demand gigabytes of memory
and hours of CPU. A scrypt stanza must be the only stanza of its header, so a
passphrase-encrypted file cannot also be opened with a key (the caller
enforces that across stanzas; :func:`check_scrypt_alone`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence

from nacl import bindings
from nacl.exceptions import CryptoError as NaclCryptoError

from ..errors import HeaderError
from .format import b64_decode, b64_encode
from .stanza import Stanza

STANZA_TYPE = "scrypt"
DEFAULT_LOG_N = 18
MAX_LOG_N = 22
_SALT_LABEL = b"age-encryption.org/v1/scrypt"
_SALT_SIZE = 16
_FILE_KEY_SIZE = 16
_TAG_SIZE = 16
_R = 8
_ZERO_NONCE = bytes(12)
_DECIMAL = re.compile(r"[1-9][0-9]*\Z")


def _derive(passphrase: bytes, salt: bytes, log_n: int) -> bytes:
    n = 1 << log_n
    # hashlib.scrypt's default maxmem (32 MiB) is too small from logN 15 on:
    # allow what the parameters need (128·r·N) plus slack.
    return hashlib.scrypt(
        passphrase,
        salt=_SALT_LABEL + salt,
        n=n,
        r=_R,
        p=1,
        maxmem=128 * _R * n + (1 << 20),
        dklen=32,
    )


def check_scrypt_alone(stanzas: Sequence[Stanza]) -> None:
    """Raise :class:`HeaderError` if a scrypt stanza shares its header."""
    if len(stanzas) > 1 and any(s.type == STANZA_TYPE for s in stanzas):
        raise HeaderError("a scrypt stanza must be the only stanza in the header")


class ScryptRecipient:
    """Seal to a passphrase. ``log_n`` is the work factor (age's default is 18)."""

    def __init__(self, passphrase: str | bytes, *, log_n: int = DEFAULT_LOG_N) -> None:
        if not 1 <= log_n <= MAX_LOG_N:
            raise ValueError(f"scrypt work factor must be 1..{MAX_LOG_N}")
        self._passphrase = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        if not self._passphrase:
            raise ValueError("empty passphrase")
        self._log_n = log_n
        # A label no other recipient has: scrypt never mixes with anything.
        self._label = f"scrypt-{secrets.token_hex(8)}"

    @property
    def labels(self) -> frozenset[str]:
        return frozenset({self._label})

    def wrap(self, file_key: bytes) -> list[Stanza]:
        salt = bindings.randombytes(_SALT_SIZE)
        key = _derive(self._passphrase, salt, self._log_n)
        body = bindings.crypto_aead_chacha20poly1305_ietf_encrypt(file_key, None, _ZERO_NONCE, key)
        return [Stanza(STANZA_TYPE, (b64_encode(salt), str(self._log_n)), body)]

    def __repr__(self) -> str:
        return f"ScryptRecipient(log_n={self._log_n})"


class ScryptIdentity:
    """Open a passphrase-sealed file; refuses work factors above ``max_log_n``."""

    def __init__(self, passphrase: str | bytes, *, max_log_n: int = MAX_LOG_N) -> None:
        self._passphrase = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        self._max_log_n = min(max_log_n, MAX_LOG_N)

    def __repr__(self) -> str:
        return "ScryptIdentity(<passphrase>)"

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        candidates = [s for s in stanzas if s.type == STANZA_TYPE]
        if not candidates:
            return None
        check_scrypt_alone(stanzas)
        stanza = candidates[0]
        # 1. Two arguments: a canonical 16-byte salt and a decimal work factor.
        if len(stanza.args) != 2:
            raise HeaderError("scrypt stanza must have two arguments")
        salt = b64_decode(stanza.args[0])
        if len(salt) != _SALT_SIZE:
            raise HeaderError("scrypt salt must be 16 bytes")
        if not _DECIMAL.match(stanza.args[1]) or len(stanza.args[1]) > 2:
            raise HeaderError("scrypt work factor is not a canonical decimal")
        log_n = int(stanza.args[1])
        # 2. The cap comes before the KDF ever runs.
        if log_n > self._max_log_n:
            raise HeaderError(f"scrypt work factor {log_n} exceeds the limit {self._max_log_n}")
        # 3. The body length is checked before decrypting.
        if len(stanza.body) != _FILE_KEY_SIZE + _TAG_SIZE:
            raise HeaderError("scrypt stanza body must be 32 bytes")
        key = _derive(self._passphrase, salt, log_n)
        try:
            return bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
                stanza.body, None, _ZERO_NONCE, key
            )
        except (NaclCryptoError, ValueError):
            return None
