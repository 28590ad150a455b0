"""Parsing recipients, identities and the files that hold them.

- ``age1…`` is an X25519 recipient, ``AGE-SECRET-KEY-1…`` an X25519 identity.
- ``age1pq1…`` and ``AGE-SECRET-KEY-PQ-1…`` are the hybrid post-quantum types,
  implemented in :mod:`evidence_intake.crypto.age.mlkem768x25519` and imported
  only when such a key is met (the module may be absent in a build without it).
- Recipients and identity files: one key per line, ``#`` comments and blank
  lines ignored. An identity file may itself be an age file sealed with a
  passphrase (binary or armored), as ``age-keygen | age -p`` writes it; it is
  opened with the passphrase from a callback.

Errors are :class:`KeyFormatError` (with the line number, never the line:
it may be a secret key) and :class:`UnsupportedRecipientError`.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from typing import Any

from ..errors import KeyFormatError, UnsupportedRecipientError
from .format import INTRO
from .stanza import Identity, Recipient
from .x25519 import X25519Identity, X25519Recipient

PQ_RECIPIENT_PREFIX = "age1pq1"
PQ_IDENTITY_PREFIX = "AGE-SECRET-KEY-PQ-1"
_PQ_MODULE = "evidence_intake.crypto.age.mlkem768x25519"
# An encrypted identity file is small; refuse to decrypt anything bigger.
_MAX_IDENTITY_FILE = 1 << 20

PassphraseCallback = Callable[[], str]


def post_quantum_module() -> Any:
    """The hybrid module, imported on first use; UnsupportedRecipientError if absent."""
    try:
        return importlib.import_module(_PQ_MODULE)
    except ModuleNotFoundError as err:
        if err.name != _PQ_MODULE:
            raise
        raise UnsupportedRecipientError(
            "post-quantum (mlkem768x25519) keys are not supported by this build"
        ) from err


def parse_recipient(text: str) -> Recipient:
    """Parse one recipient string (``age1…`` or ``age1pq1…``)."""
    text = text.strip()
    if text.startswith(PQ_RECIPIENT_PREFIX):
        recipient: Recipient = post_quantum_module().parse_pq_recipient(text)
        return recipient
    if text.lower().startswith("age1"):
        return X25519Recipient.from_string(text)
    if text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise UnsupportedRecipientError("SSH recipients are not supported; use an age1… key")
    if text.upper().startswith("AGE-SECRET-KEY-"):
        raise KeyFormatError(
            "this is a secret key (identity), not a recipient: use its public age1… key, "
            "and keep the secret key out of recipient lists"
        )
    raise KeyFormatError("not an age recipient (expected age1…)")


def parse_identity(text: str) -> Identity:
    """Parse one identity string (``AGE-SECRET-KEY-1…`` or ``AGE-SECRET-KEY-PQ-1…``)."""
    text = text.strip()
    if text.startswith(PQ_IDENTITY_PREFIX):
        identity: Identity = post_quantum_module().parse_pq_identity(text)
        return identity
    if text.startswith("AGE-SECRET-KEY-1"):
        return X25519Identity.from_string(text)
    if text.upper().startswith("AGE-SECRET-KEY-"):
        raise KeyFormatError("identities are written in upper case (AGE-SECRET-KEY-1…)")
    if text.startswith("AGE-PLUGIN-"):
        raise UnsupportedRecipientError("age plugin identities are not supported")
    raise KeyFormatError("not an age identity (expected AGE-SECRET-KEY-1…)")


def _key_lines(text: str) -> list[tuple[int, str]]:
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def parse_recipients_file(text: str) -> list[Recipient]:
    """Every recipient in a recipients file; an empty file is an error."""
    out: list[Recipient] = []
    for number, line in _key_lines(text):
        try:
            out.append(parse_recipient(line))
        except KeyFormatError as err:
            raise KeyFormatError(f"recipients file line {number}: {err}") from err
    if not out:
        raise KeyFormatError("recipients file has no recipients")
    return out


def is_encrypted_identity_file(data: bytes) -> bool:
    """Whether ``data`` is an age file (binary or armored) rather than plain keys."""
    from .armor import is_armored_prefix

    return data.startswith(INTRO) or is_armored_prefix(data[:1100])


def parse_identities_file(
    data: bytes | str, passphrase: PassphraseCallback | None = None
) -> list[Identity]:
    """Every identity in an identity file.

    If the file is an age file sealed with a passphrase, ``passphrase()`` is
    called once and the file decrypted first; without a callback that is a
    :class:`KeyFormatError`. Decryption failures raise the age failure kinds.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if is_encrypted_identity_file(raw):
        if passphrase is None:
            raise KeyFormatError("the identity file is passphrase-protected")
        from . import decrypt
        from .scrypt import ScryptIdentity

        if len(raw) > _MAX_IDENTITY_FILE:
            raise KeyFormatError("the encrypted identity file is too large")
        plain = io.BytesIO()
        decrypt(io.BytesIO(raw), plain, [ScryptIdentity(passphrase())])
        raw = plain.getvalue()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise KeyFormatError("identity file is not UTF-8 text") from err
    out: list[Identity] = []
    for number, line in _key_lines(text):
        try:
            out.append(parse_identity(line))
        except KeyFormatError as err:
            raise KeyFormatError(f"identity file line {number}: {err}") from err
    if not out:
        raise KeyFormatError("identity file has no identities")
    return out
