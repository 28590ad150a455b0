"""The failure kinds of minisign keys and signatures.

Each kind is its own class so that callers and tests tell them apart by type,
never by message: a malformed signature file is not a bad signature, a
signature by another key is not a forgery, and a wrong passphrase is not a
corrupt key file. All derive from the crypto package's base errors.
"""

from __future__ import annotations

from ..errors import CryptoError, KeyFormatError, SignatureError


class MalformedSignatureError(SignatureError):
    """The signature file cannot be parsed (lines, prefixes, base64, lengths, algorithm)."""


class KeyIdMismatchError(SignatureError):
    """The signature names another key id than the public key it is checked with.

    Carries both key ids (public values) as evidence.
    """

    def __init__(self, signature_key_id: bytes, public_key_id: bytes) -> None:
        self.signature_key_id = bytes(signature_key_id)
        self.public_key_id = bytes(public_key_id)
        super().__init__(
            f"the signature was made by key {_fingerprint(signature_key_id)}, "
            f"not by the public key {_fingerprint(public_key_id)}"
        )


class LegacySignatureError(SignatureError):
    """A legacy (non-prehashed, ``Ed``) signature was found where only ``ED`` is allowed."""


class TrustedCommentError(SignatureError):
    """The file signature is valid but the global signature over the trusted comment is not."""


class PassphraseError(CryptoError):
    """A passphrase-protected secret key was given no passphrase, or a wrong one.

    A wrong passphrase and a corrupted encrypted key file look the same (the
    checksum of the decrypted key does not match); the message says so.
    """


class KdfParametersError(KeyFormatError):
    """The secret key's scrypt parameters are unusable or beyond our work limits."""


def _fingerprint(key_id: bytes) -> str:
    # Same rendering as PublicKey.fingerprint; kept here to avoid an import cycle.
    return f"{int.from_bytes(key_id, 'little'):016X}"
