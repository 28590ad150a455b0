"""Bearer secrets: personal API tokens and session tokens.

A token is 32 random bytes, base64url-encoded behind a prefix that says what
it is (``eit_`` API token, ``eis_`` session) so that secret scanners and our
log redaction recognise it. Only its SHA-256 is stored: 256 bits of entropy
make a plain hash as good as a slow one, and the lookup by digest is followed
by a constant-time comparison.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

API_TOKEN_PREFIX = "eit_"  # noqa: S105 - a public prefix, not a secret
SESSION_TOKEN_PREFIX = "eis_"  # noqa: S105 - a public prefix, not a secret
_TOKEN_BYTES = 32


def new_token(prefix: str) -> tuple[str, str]:
    """A fresh ``(token, sha256_hex)``; show the token once, store the digest."""
    raw = secrets.token_bytes(_TOKEN_BYTES)
    token = prefix + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def keyed_digest(secret_key: bytes, purpose: str, value: str) -> str:
    """HMAC-SHA-256 of ``value`` for one ``purpose``: stable, but useless without the key."""
    message = purpose.encode("utf-8") + b"\x00" + value.encode("utf-8")
    return hmac.new(secret_key, message, hashlib.sha256).hexdigest()


def csrf_token_for(secret_key: bytes, session_digest: str) -> str:
    """The CSRF token bound to one session (a keyed hash of the session token's digest).

    Only the server can compute it, and it differs per session, so a token
    planted by an attacker (cookie tossing) never matches.
    """
    return keyed_digest(secret_key, "csrf", session_digest)
