"""minisign-compatible Ed25519 signatures, on PyNaCl and the standard library.

Threat model. Export bundles and audit checkpoints are signed so that an
investigator, offline and months later, can tell that the bytes in front of
them are the ones the NGO released, and read a trusted comment (what, when,
by whom) that nobody could change since. An attacker may alter the signed
file, the signature file, the trusted comment or the public key text, or
hand over a signature made by another key; each of those must make
verification *raise*, with its own error class, before any trusted comment
is shown. Signatures must also verify with Debian's ``minisign -V -H`` and
with OpenBSD's signify-compatible tools, so the byte layouts are minisign's
own (docs/formats/minisign.md).

Public API::

    SigningKey.generate() / .from_file_text(text, passphrase) / .to_file_text(passphrase)
    SigningKey.sign(data, trusted_comment) / .sign_stream(stream, trusted_comment)
    PublicKey.from_file_text(text) / .from_string(line) / .to_file_text() / .to_string()
    verify(data, signature_text, public_key) -> trusted comment
    verify_stream(stream, signature_text, public_key) -> trusted comment
"""

from __future__ import annotations

from .errors import (
    KdfParametersError,
    KeyIdMismatchError,
    LegacySignatureError,
    MalformedSignatureError,
    PassphraseError,
    TrustedCommentError,
)
from .public_key import KeyId, PublicKey, fingerprint_of
from .secret_key import SigningKey
from .signature import (
    DEFAULT_UNTRUSTED_COMMENT,
    UnverifiedSignature,
    parse_unverified_signature,
    verify,
    verify_stream,
)

__all__ = [
    "DEFAULT_UNTRUSTED_COMMENT",
    "KdfParametersError",
    "KeyId",
    "KeyIdMismatchError",
    "LegacySignatureError",
    "MalformedSignatureError",
    "PassphraseError",
    "PublicKey",
    "SigningKey",
    "TrustedCommentError",
    "UnverifiedSignature",
    "fingerprint_of",
    "parse_unverified_signature",
    "verify",
    "verify_stream",
]
