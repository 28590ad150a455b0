"""Password hashing with Argon2id (libsodium through PyNaCl).

The hash string carries its own parameters, so raising the work factor in
settings upgrades each account's hash at its next successful login.
"""

from __future__ import annotations

import contextlib

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_BYTES = 1024

_DUMMY_HASHES: dict[tuple[int, int], bytes] = {}


class WeakPasswordError(ValueError):
    """The new password is too short or too long; the message says which."""


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPasswordError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise WeakPasswordError(f"a password may have at most {MAX_PASSWORD_BYTES} bytes")


def hash_password(password: str, *, opslimit: int, memlimit: int) -> str:
    check_password_policy(password)
    hashed: bytes = argon2id.str(password.encode("utf-8"), opslimit=opslimit, memlimit=memlimit)
    return hashed.decode("ascii")


def password_matches(stored: str, password: str) -> bool:
    """True if ``password`` matches the Argon2id string ``stored``.

    libsodium compares in constant time; a malformed stored hash is a mismatch.
    """
    candidate = password.encode("utf-8")
    if len(candidate) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bool(argon2id.verify(stored.encode("ascii"), candidate))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.RuntimeError, ValueError):
        return False


def burn_equal_time(password: str, *, opslimit: int, memlimit: int) -> None:
    """Spend what a real check costs, for a user name that does not exist.

    Without it, an unknown name answers faster than a wrong password and the
    response time tells an attacker which accounts exist.
    """
    key = (opslimit, memlimit)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = argon2id.str(b"not a password of anyone",
                                          opslimit=opslimit, memlimit=memlimit)
    with contextlib.suppress(nacl.exceptions.InvalidkeyError):
        argon2id.verify(_DUMMY_HASHES[key], password.encode("utf-8")[:MAX_PASSWORD_BYTES])


def needs_rehash(stored: str, *, opslimit: int, memlimit: int) -> bool:
    """True if ``stored`` was made with weaker parameters than the current ones."""
    # Format: $argon2id$v=19$m=<KiB>,t=<passes>,p=1$salt$hash
    try:
        params = stored.split("$")[3]
        fields = dict(part.split("=") for part in params.split(","))
        return int(fields["m"]) * 1024 < memlimit or int(fields["t"]) < opslimit
    except (IndexError, KeyError, ValueError):
        return True
