"""minisign secret keys: generation, the key file (encrypted or not), signing.

Threat model. The secret key signs export bundles and audit checkpoints that
investigators and courts rely on; whoever holds it can forge them. On disk it
is protected by a passphrase (scrypt + XOR, minisign's scheme) unless the
operator chose ``--no-passphrase`` for a key kept in a hardware-protected
store. A corrupted or truncated key file, a wrong passphrase and hostile KDF
parameters must each fail before any signing, and never yield a different
working key: the BLAKE2b checksum and a check that the stored public half
matches the seed see to that. Python cannot reliably wipe memory; keys live
in process memory only as long as the :class:`SigningKey` object.

Key file layout (base64 of 158 bytes on the second line)::

    "Ed" sig alg (2) || kdf alg (2): "Sc" scrypt or 00 00 none || "B2" (2)
    || kdf salt (32) || opslimit (8, LE) || memlimit (8, LE)
    || [ key id (8) || Ed25519 secret key: seed || public key (64)
         || checksum (32) ]  <- XORed with the scrypt key stream when "Sc"

checksum = BLAKE2b-256(sig alg || key id || secret key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import BinaryIO

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey as _NaclSigningKey

from ..errors import CryptoError, KeyFormatError
from . import kdf
from .encoding import (
    MAX_UNTRUSTED_COMMENT_BYTES,
    UNTRUSTED_PREFIX,
    b64decode_exact,
    b64encode,
    check_comment,
    split_lines,
    strip_prefix,
)
from .errors import PassphraseError
from .public_key import KEY_ID_BYTES, SIG_ALG, KeyId, PublicKey, fingerprint_of
from .signature import (
    ALG_LEGACY,
    ALG_PREHASHED,
    DEFAULT_UNTRUSTED_COMMENT,
    compose_signature,
    prehash,
    prehash_stream,
)

KDF_SCRYPT = b"Sc"
KDF_NONE = b"\x00\x00"
CHK_BLAKE2B = b"B2"
SECRET_KEY_BYTES = 64
CHECKSUM_BYTES = 32
ENCRYPTED_COMMENT = "minisign encrypted secret key"
UNENCRYPTED_COMMENT = "minisign unencrypted secret key"
# minisign reads a passphrase from the terminal with fgets() into 1024 bytes.
MAX_PASSPHRASE_BYTES = 1022

_KEYNUM_SK_BYTES = KEY_ID_BYTES + SECRET_KEY_BYTES + CHECKSUM_BYTES
_FILE_BYTES = 2 + 2 + 2 + kdf.SALT_BYTES + 8 + 8 + _KEYNUM_SK_BYTES


def _checksum(key_id: bytes, secret_key: bytes) -> bytes:
    return hashlib.blake2b(SIG_ALG + key_id + secret_key, digest_size=CHECKSUM_BYTES).digest()


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


class SigningKey:
    """An Ed25519 signing key with its minisign key id.

    Build one with :meth:`generate` or :meth:`from_file_text`. Signatures are
    prehashed (``ED``) unless ``legacy=True`` is asked for explicitly.
    """

    __slots__ = ("_key_id", "_nacl", "_public_key")

    def __init__(self, key_id: bytes, seed: bytes) -> None:
        if len(key_id) != KEY_ID_BYTES:
            raise KeyFormatError(f"a minisign key id is {KEY_ID_BYTES} bytes")
        if len(seed) != 32:
            raise KeyFormatError("an Ed25519 seed is 32 bytes")
        self._key_id = KeyId(bytes(key_id))
        self._nacl = _NaclSigningKey(bytes(seed))
        self._public_key = PublicKey(self._key_id, bytes(self._nacl.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key pair and a random key id, as ``minisign -G`` makes them."""
        return cls(os.urandom(KEY_ID_BYTES), os.urandom(32))

    # -- the key file ----------------------------------------------------

    @staticmethod
    def file_is_encrypted(text: str) -> bool:
        """Whether a secret key file needs a passphrase (so a CLI knows whether to ask)."""
        raw = _decode_file(text)
        return raw[2:4] == KDF_SCRYPT

    @classmethod
    def from_file_text(cls, text: str, passphrase: bytes | None) -> SigningKey:
        """Load a secret key file written by ``minisign -G`` (with or without ``-W``) or by us.

        Raises :class:`~evidence_intake.crypto.errors.KeyFormatError` for a
        malformed file or unsupported algorithms,
        :class:`~evidence_intake.crypto.minisign.errors.KdfParametersError` for
        scrypt parameters beyond our limits, and
        :class:`~evidence_intake.crypto.minisign.errors.PassphraseError` when
        an encrypted key gets no passphrase or a wrong one. A passphrase given
        for an unencrypted key is ignored.
        """
        raw = _decode_file(text)
        # 1. Algorithms: Ed25519 signatures, BLAKE2b checksum, scrypt or no KDF.
        if raw[0:2] != SIG_ALG:
            raise KeyFormatError(f"unsupported signature algorithm {raw[0:2]!r}")
        kdf_alg, chk_alg = raw[2:4], raw[4:6]
        if chk_alg != CHK_BLAKE2B:
            raise KeyFormatError(f"unsupported checksum algorithm {chk_alg!r}")
        salt = raw[6:38]
        opslimit = int.from_bytes(raw[38:46], "little")
        memlimit = int.from_bytes(raw[46:54], "little")
        keynum_sk = raw[54:]
        # 2. Decrypt: XOR with the scrypt stream derived from the passphrase.
        if kdf_alg == KDF_SCRYPT:
            if passphrase is None:
                raise PassphraseError(
                    "this secret key is passphrase-protected; a passphrase is needed"
                )
            stream = kdf.key_stream(passphrase, salt, opslimit, memlimit, _KEYNUM_SK_BYTES)
            keynum_sk = _xor(keynum_sk, stream)
        elif kdf_alg != KDF_NONE:
            raise KeyFormatError(f"unsupported key derivation algorithm {kdf_alg!r}")
        key_id = keynum_sk[:KEY_ID_BYTES]
        secret_key = keynum_sk[KEY_ID_BYTES : KEY_ID_BYTES + SECRET_KEY_BYTES]
        stored_checksum = keynum_sk[KEY_ID_BYTES + SECRET_KEY_BYTES :]
        # 3. Checksum. minisign checks it only for encrypted keys, and
        #    `minisign -G -W` leaves it all zero; we accept zero there but
        #    refuse any other mismatch, which means a damaged file.
        expected = _checksum(key_id, secret_key)
        if not hmac.compare_digest(expected, stored_checksum):
            if kdf_alg == KDF_SCRYPT:
                raise PassphraseError(
                    "wrong passphrase for this secret key (or the file is damaged)"
                )
            if stored_checksum != bytes(CHECKSUM_BYTES):
                raise KeyFormatError(
                    "the secret key's checksum does not match: the file is damaged"
                )
        # 4. The stored public half must be the one the seed derives, or we
        #    would sign with a key other than the one the file claims.
        key = cls(key_id, secret_key[:32])
        if not hmac.compare_digest(key._public_key.ed25519_bytes, secret_key[32:]):
            raise KeyFormatError("the secret key's public half does not match its seed")
        return key

    def to_file_text(
        self,
        passphrase: bytes | None,
        *,
        untrusted_comment: str | None = None,
        kdf_opslimit: int = kdf.OPSLIMIT_SENSITIVE,
        kdf_memlimit: int = kdf.MEMLIMIT_SENSITIVE,
    ) -> str:
        """The secret key file, encrypted with ``passphrase`` or, with ``None``, unencrypted.

        The scrypt limits default to minisign's (1 GiB, about a second or
        more); lower ones are for tests. Raises ``ValueError`` for a
        passphrase that minisign could not read back from a terminal (empty,
        line breaks, NUL, longer than 1022 bytes).
        """
        encrypted = passphrase is not None
        if untrusted_comment is None:
            untrusted_comment = ENCRYPTED_COMMENT if encrypted else UNENCRYPTED_COMMENT
        check_comment(untrusted_comment, MAX_UNTRUSTED_COMMENT_BYTES, "untrusted comment")
        secret_key = bytes(self._nacl) + self._public_key.ed25519_bytes
        checksum = _checksum(self._key_id, secret_key)
        keynum_sk = self._key_id + secret_key + checksum
        if passphrase is None:
            # As `minisign -G -W`: no salt, zero limits (but we do write the checksum).
            header = SIG_ALG + KDF_NONE + CHK_BLAKE2B + bytes(kdf.SALT_BYTES) + bytes(16)
        else:
            _check_new_passphrase(passphrase)
            # Refuse to write what our own reader would refuse.
            kdf.check_limits(kdf.scrypt_parameters(kdf_opslimit, kdf_memlimit))
            salt = os.urandom(kdf.SALT_BYTES)
            stream = kdf.key_stream(passphrase, salt, kdf_opslimit, kdf_memlimit, _KEYNUM_SK_BYTES)
            keynum_sk = _xor(keynum_sk, stream)
            header = (
                SIG_ALG
                + KDF_SCRYPT
                + CHK_BLAKE2B
                + salt
                + kdf_opslimit.to_bytes(8, "little")
                + kdf_memlimit.to_bytes(8, "little")
            )
        return f"{UNTRUSTED_PREFIX}{untrusted_comment}\n{b64encode(header + keynum_sk)}\n"

    # -- properties ------------------------------------------------------

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def key_id(self) -> KeyId:
        return self._key_id

    def __repr__(self) -> str:
        return f"SigningKey(key_id={fingerprint_of(self._key_id)})"

    # -- signing ---------------------------------------------------------

    def _sign_detached(self, message: bytes) -> bytes:
        signature = self._nacl.sign(message).signature
        # A fault during deterministic Ed25519 signing can leak the key if
        # the faulty signature is released; checking it first costs little.
        try:
            self._nacl.verify_key.verify(message, signature)
        except BadSignatureError as err:
            raise CryptoError("a signature failed its own check: signing fault") from err
        return signature

    def sign(
        self,
        data: bytes,
        trusted_comment: str,
        untrusted_comment: str = DEFAULT_UNTRUSTED_COMMENT,
        *,
        legacy: bool = False,
    ) -> str:
        """Sign ``data``; return the signature file text.

        Prehashed (``ED``, BLAKE2b-512) by default; ``legacy=True`` signs the
        raw bytes (``Ed``), which only old verifiers need. Raises
        ``ValueError`` for a comment minisign could not read back.
        """
        if legacy:
            return self._compose(ALG_LEGACY, data, trusted_comment, untrusted_comment)
        return self._compose(ALG_PREHASHED, prehash(data), trusted_comment, untrusted_comment)

    def sign_stream(
        self,
        stream: BinaryIO,
        trusted_comment: str,
        untrusted_comment: str = DEFAULT_UNTRUSTED_COMMENT,
    ) -> str:
        """Sign everything left in ``stream`` (prehashed, constant memory)."""
        return self._compose(
            ALG_PREHASHED, prehash_stream(stream), trusted_comment, untrusted_comment
        )

    def _compose(self, alg: bytes, message: bytes, trusted: str, untrusted: str) -> str:
        return compose_signature(
            self._sign_detached, self._key_id, alg, message, trusted, untrusted
        )


def _decode_file(text: str) -> bytes:
    comment, line = split_lines(text, 2, "a minisign secret key file", KeyFormatError)
    strip_prefix(comment, UNTRUSTED_PREFIX, "the secret key file's first line", KeyFormatError)
    return b64decode_exact(line, _FILE_BYTES, "the secret key", KeyFormatError)


def _check_new_passphrase(passphrase: bytes) -> None:
    if not passphrase:
        raise ValueError("the passphrase is empty; write an unencrypted key explicitly instead")
    if any(byte in passphrase for byte in b"\r\n\x00"):
        raise ValueError("the passphrase cannot contain line breaks or NUL bytes")
    if len(passphrase) > MAX_PASSPHRASE_BYTES:
        raise ValueError(f"the passphrase is longer than {MAX_PASSPHRASE_BYTES} bytes")
