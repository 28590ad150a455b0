"""minisign signature files: parsing, composing and verifying.

A signature file is four lines::

    untrusted comment: <free text, not signed>
    base64( alg (2) || key id (8) || Ed25519 signature (64) )
    trusted comment: <text>
    base64( global signature (64) )

``alg`` is ``ED`` (prehashed: the signature covers BLAKE2b-512 of the file,
what we write) or ``Ed`` (legacy: it covers the file itself; we verify it).
The global signature covers the 64 signature bytes followed by the trusted
comment's bytes, which binds the comment to this signature of this file.

Verification raises, never returns a flag. Its steps are numbered in
:func:`_verify_parsed` so a reviewer can check them against minisign's
``verify()``. The trusted comment is returned only after both signatures hold.
"""

from __future__ import annotations

import hashlib
import hmac
import select
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ..errors import SignatureError
from .encoding import (
    MAX_TRUSTED_COMMENT_BYTES,
    MAX_UNTRUSTED_COMMENT_BYTES,
    TRUSTED_PREFIX,
    UNTRUSTED_PREFIX,
    b64decode_exact,
    b64encode,
    check_comment,
    split_lines,
    strip_prefix,
)
from .errors import (
    KeyIdMismatchError,
    LegacySignatureError,
    MalformedSignatureError,
    TrustedCommentError,
)
from .public_key import KEY_ID_BYTES, KeyId, PublicKey

ALG_PREHASHED = b"ED"
ALG_LEGACY = b"Ed"
SIGNATURE_BYTES = 64
PREHASH_BYTES = 64  # BLAKE2b-512, unkeyed: libsodium's crypto_generichash_BYTES_MAX
DEFAULT_UNTRUSTED_COMMENT = "signature from minisign secret key"
CHUNK_BYTES = 1 << 20

_SIG_STRUCT_BYTES = 2 + KEY_ID_BYTES + SIGNATURE_BYTES


@dataclass(frozen=True)
class UnverifiedSignature:
    """A parsed signature file. Nothing in it is trusted until :func:`verify` succeeds."""

    algorithm: bytes
    key_id: KeyId
    signature: bytes = field(repr=False)
    untrusted_comment: str
    unverified_trusted_comment: str
    global_signature: bytes = field(repr=False)

    @property
    def prehashed(self) -> bool:
        return self.algorithm == ALG_PREHASHED


def parse_unverified_signature(text: str) -> UnverifiedSignature:
    """Parse a signature file's structure, verifying nothing.

    Raises :class:`MalformedSignatureError` if ``text`` is not a signature file.
    """
    err = MalformedSignatureError
    what = "a minisign signature file"
    untrusted_line, sig_line, trusted_line, global_line = split_lines(text, 4, what, err)
    untrusted = strip_prefix(untrusted_line, UNTRUSTED_PREFIX, "the first line", err)
    trusted = strip_prefix(trusted_line, TRUSTED_PREFIX, "the third line", err)
    for comment, limit, name in (
        (untrusted, MAX_UNTRUSTED_COMMENT_BYTES, "untrusted comment"),
        (trusted, MAX_TRUSTED_COMMENT_BYTES, "trusted comment"),
    ):
        try:
            size = len(comment.encode("utf-8"))
        except UnicodeEncodeError as exc:  # lone surrogates from a lenient decode
            raise err(f"the {name} is not valid Unicode text") from exc
        if size > limit:
            raise err(f"the {name} is longer than minisign reads")
    raw = b64decode_exact(sig_line, _SIG_STRUCT_BYTES, "the signature line", err)
    algorithm = raw[:2]
    if algorithm not in (ALG_PREHASHED, ALG_LEGACY):
        raise err(f"unsupported signature algorithm {algorithm!r}")
    global_signature = b64decode_exact(global_line, SIGNATURE_BYTES, "the global signature", err)
    return UnverifiedSignature(
        algorithm=algorithm,
        key_id=KeyId(raw[2 : 2 + KEY_ID_BYTES]),
        signature=raw[2 + KEY_ID_BYTES :],
        untrusted_comment=untrusted,
        unverified_trusted_comment=trusted,
        global_signature=global_signature,
    )


def prehash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=PREHASH_BYTES).digest()


def prehash_stream(stream: BinaryIO) -> bytes:
    """BLAKE2b-512 of everything left in ``stream``, in 1 MiB reads (memory stays flat).

    A non-blocking stream answers ``None`` when it has no data *yet*; that is
    not the end of the file, and taking it for one would sign (or check) a
    truncated prefix. We wait for data instead.
    """
    state = hashlib.blake2b(digest_size=PREHASH_BYTES)
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if chunk is None:
            _wait_readable(stream)
            continue
        if not chunk:
            return state.digest()
        state.update(chunk)


def _wait_readable(stream: BinaryIO) -> None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        raise BlockingIOError("the input is non-blocking and has no data yet") from None
    select.select([fd], [], [])


def compose_signature(
    sign_detached: Callable[[bytes], bytes],
    key_id: bytes,
    algorithm: bytes,
    message: bytes,
    trusted_comment: str,
    untrusted_comment: str,
) -> str:
    """Build a signature file. ``message`` is the prehash for ``ED``, the file for ``Ed``.

    Internal: :class:`~evidence_intake.crypto.minisign.SigningKey` supplies
    ``sign_detached``. Comments are checked first, so nothing is signed that
    minisign could not read back byte for byte.
    """
    trusted = check_comment(trusted_comment, MAX_TRUSTED_COMMENT_BYTES, "trusted comment")
    check_comment(untrusted_comment, MAX_UNTRUSTED_COMMENT_BYTES, "untrusted comment")
    signature = sign_detached(message)
    global_signature = sign_detached(signature + trusted)
    return (
        f"{UNTRUSTED_PREFIX}{untrusted_comment}\n"
        f"{b64encode(algorithm + key_id + signature)}\n"
        f"{TRUSTED_PREFIX}{trusted_comment}\n"
        f"{b64encode(global_signature)}\n"
    )


def verify(
    data: bytes, signature_text: str, public_key: PublicKey, *, allow_legacy: bool = True
) -> str:
    """Verify ``signature_text`` over ``data``; return the verified trusted comment.

    Raises :class:`MalformedSignatureError`, :class:`KeyIdMismatchError`,
    :class:`LegacySignatureError` (only with ``allow_legacy=False``),
    :class:`~evidence_intake.crypto.errors.SignatureError` (the file signature
    fails) or :class:`TrustedCommentError` (the comment's signature fails).
    """
    parsed = _parse_and_match(signature_text, public_key, allow_legacy)
    message = prehash(data) if parsed.prehashed else data
    return _verify_parsed(parsed, message, public_key)


def verify_stream(
    stream: BinaryIO, signature_text: str, public_key: PublicKey, *, allow_legacy: bool = True
) -> str:
    """Like :func:`verify`, reading the signed file from ``stream``.

    Prehashed (``ED``) signatures hash the stream in chunks. A legacy (``Ed``)
    signature covers the raw file, which Ed25519 must see whole, so it is read
    into memory; pass ``allow_legacy=False`` to refuse those up front.
    """
    parsed = _parse_and_match(signature_text, public_key, allow_legacy)
    message = prehash_stream(stream) if parsed.prehashed else stream.read()
    return _verify_parsed(parsed, message, public_key)


def _parse_and_match(
    signature_text: str, public_key: PublicKey, allow_legacy: bool
) -> UnverifiedSignature:
    # 1. Parse the four lines; any structural fault is reported as such.
    parsed = parse_unverified_signature(signature_text)
    # 2. The signature must name this public key's id. Checked before the
    #    file is read, so a wrong key fails fast with its own error.
    if not hmac.compare_digest(parsed.key_id, public_key.key_id):
        raise KeyIdMismatchError(parsed.key_id, public_key.key_id)
    # 3. Policy: legacy signatures only if the caller allows them (minisign -H).
    if not parsed.prehashed and not allow_legacy:
        raise LegacySignatureError("legacy (non-prehashed) signature found; only ED is allowed")
    return parsed


def _verify_parsed(parsed: UnverifiedSignature, message: bytes, public_key: PublicKey) -> str:
    verify_key = VerifyKey(public_key.ed25519_bytes)
    # 4. The file signature over the prehash (ED) or the file (Ed).
    try:
        verify_key.verify(message, parsed.signature)
    except BadSignatureError as err:
        raise SignatureError("signature verification failed") from err
    # 5. The global signature over signature || trusted comment. Only now is
    #    the trusted comment known to come from the key holder.
    trusted = parsed.unverified_trusted_comment.encode("utf-8")
    try:
        verify_key.verify(parsed.signature + trusted, parsed.global_signature)
    except BadSignatureError as err:
        raise TrustedCommentError("trusted comment signature verification failed") from err
    return parsed.unverified_trusted_comment
