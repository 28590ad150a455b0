"""C2SP signed notes (golang.org/x/mod/sumdb/note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> <base64(key id || signature)>``. The key id is the first four
bytes of SHA-256(name || 0x0A || 0x01 || public key), so it commits to the
name and the algorithm (0x01 = Ed25519) as well as the key.

Threat model: a note arrives from anywhere (an export file, an HTTP reply),
so :func:`open_note` finds and checks the signature of the one trusted key
*before* anyone looks at the text, and distinguishes a note that is simply
not signed by that key (:class:`UnknownKeyError`: a wrongly keyed note) from
one whose signature by that key id is wrong (:class:`InvalidSignatureError`:
a forgery). Signatures by other keys (witnesses) are ignored, not trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from .errors import InvalidSignatureError, NoteFormatError, UnknownKeyError

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash and a space
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
_NAME = re.compile(r"[^\s+]+\Z")


def b64decode_canonical(text: str, what: str) -> bytes:
    """Decode standard padded base64, refusing any non-canonical encoding."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise NoteFormatError(f"{what} is not valid base64") from err
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteFormatError(f"{what} is not canonical base64")
    return raw


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise NoteFormatError("a key name must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 note key."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519])
                          + public_key).digest()[:4]


class NoteVerifier:
    """A trusted Ed25519 note key, from its verifier key string."""

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_name(name)
        if len(public_key) != 32:
            raise NoteFormatError("an Ed25519 public key is 32 bytes")
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, public_key)
        self._key = nacl.signing.VerifyKey(public_key)

    @property
    def vkey(self) -> str:
        """``name+hex(key id)+base64(0x01 || public key)``."""
        blob = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise :class:`InvalidSignatureError` unless ``signature`` signs ``message``."""
        try:
            self._key.verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError) as err:
            raise InvalidSignatureError(
                f"the signature by {self.name}+{self.key_id.hex()} does not verify"
            ) from err

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey!r})"


def parse_vkey(vkey: str) -> NoteVerifier:
    """Parse ``name+hex8+base64(0x01||pk)``; the key id must match the key."""
    parts = vkey.strip().split("+", 2)  # base64 may contain "+"
    if len(parts) != 3:
        raise NoteFormatError("a verifier key looks like name+1a2b3c4d+AbCd...")
    name, hex_id, blob = parts
    raw = b64decode_canonical(blob, "the verifier key")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteFormatError("only Ed25519 verifier keys (type 0x01) are supported")
    verifier = NoteVerifier(name, raw[1:])
    if hex_id != verifier.key_id.hex():
        raise NoteFormatError("the verifier key's id does not match its name and key")
    return verifier


class NoteSigner:
    """An Ed25519 note signing key, from ``PRIVATE+KEY+name+hex8+base64(0x01||seed)``.

    The key string is a secret: never log it, store it 0600.
    """

    def __init__(self, skey: str) -> None:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteFormatError("a signer key looks like PRIVATE+KEY+name+1a2b3c4d+AbCd...")
        name, hex_id, blob = parts[2:]
        raw = b64decode_canonical(blob, "the signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteFormatError("only Ed25519 signer keys (type 0x01) are supported")
        self._key = nacl.signing.SigningKey(raw[1:])
        self.verifier = NoteVerifier(name, bytes(self._key.verify_key))
        if hex_id != self.verifier.key_id.hex():
            raise NoteFormatError("the signer key's id does not match its name and key")
        self.name = name

    def sign(self, text: str) -> str:
        """Return the signed note: ``text``, a blank line, one signature line."""
        _check_text(text)
        signature = self._key.sign(text.encode("utf-8")).signature
        blob = base64.b64encode(self.verifier.key_id + signature).decode("ascii")
        return f"{text}\n{SIG_PREFIX}{self.name} {blob}\n"

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id={self.verifier.key_id.hex()})"


def generate_signer_key(name: str) -> tuple[str, str]:
    """A fresh (signer key string, verifier key string) pair for ``name``."""
    _check_name(name)
    seed = os.urandom(32)
    pk = bytes(nacl.signing.SigningKey(seed).verify_key)
    hex_id = key_id(name, pk).hex()
    skey = "PRIVATE+KEY+{}+{}+{}".format(
        name, hex_id, base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii"))
    return skey, NoteVerifier(name, pk).vkey


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteFormatError("note text must end with a newline")
    if "\n\n" in text or text.startswith("\n"):
        raise NoteFormatError("note text must not contain a blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteFormatError("note text must not contain control characters")


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[Signature]]:
    """Split a note into its (unverified) text and signature lines.

    Only the envelope is parsed here; the text is returned as opaque bytes for
    :func:`open_note` to verify before anything interprets it.
    """
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise NoteFormatError("note is too large")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteFormatError("note has no blank line before its signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    if not block.endswith("\n"):
        raise NoteFormatError("the last signature line must end with a newline")
    sigs = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise NoteFormatError("a signature line must start with an em dash and a space")
        name, sep, blob = line[len(SIG_PREFIX) :].partition(" ")
        if not sep:
            raise NoteFormatError("a signature line is '— name base64'")
        _check_name(name)
        raw = b64decode_canonical(blob, "a signature")
        if len(raw) < 5:
            raise NoteFormatError("a signature is too short")
        sigs.append(Signature(name, raw[:4], raw[4:]))
    if not sigs:
        raise NoteFormatError("note has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise NoteFormatError("note has too many signatures")
    return text, sigs


def open_note(note: str, verifier: NoteVerifier) -> str:
    """Verify ``note`` against the trusted key and return its text.

    1. Split the envelope (text, signature lines); malformed -> NoteFormatError.
    2. Keep the signature lines whose name and key id are the trusted key's;
       none -> UnknownKeyError (not signed by this key).
    3. Every such line must verify over the text bytes -> InvalidSignatureError.
    Only then is the text handed to a parser.
    """
    text, sigs = split_note(note)
    mine = [s for s in sigs if s.name == verifier.name and s.key_id == verifier.key_id]
    if not mine:
        found = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in sigs)
        raise UnknownKeyError(
            f"not signed by the trusted key {verifier.name}+{verifier.key_id.hex()} "
            f"(signed by {found})"
        )
    message = text.encode("utf-8")
    for sig in mine:
        verifier.verify(message, sig.signature)
    return text
