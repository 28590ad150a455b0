"""The crypto package's errors: one base class, and the age failure kinds.

The age failure kinds are kept apart on purpose (the CCTV vectors test them
separately), so that a parse error is never reported as a MAC error. None of
these messages ever says *why* an AEAD open failed, and none quotes a secret.
"""


class CryptoError(Exception):
    """Base class of every error raised by ``evidence_intake.crypto``."""


class AgeError(CryptoError):
    """Base class of the age failure kinds."""


class HeaderError(AgeError):
    """The age header is malformed, or a stanza is invalid for its type."""


class NoIdentityMatchError(AgeError):
    """None of the given identities could unwrap the file key."""


class HeaderMACError(AgeError):
    """The header MAC does not match: the header was altered."""


class PayloadError(AgeError):
    """The payload is truncated, altered or malformed.

    Plaintext released before this error was raised must be treated as
    untrusted and discarded by the caller.
    """


class ArmorError(AgeError):
    """The ASCII armor is malformed or not canonical."""


class KeyFormatError(CryptoError):
    """A recipient, identity or key file could not be parsed."""


class UnsupportedRecipientError(CryptoError):
    """The recipient or identity type is known but not supported here."""


class RecipientMixError(CryptoError):
    """The recipients cannot be combined in one file (e.g. post-quantum with classical)."""


class SignatureError(CryptoError):
    """A signature is invalid, or was made by another key."""
