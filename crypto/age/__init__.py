"""age v1 (C2SP age spec) sealing and opening: the API the service and bundles use.

Threat model: a sealed statement must be readable only by the holders of the
identities it was sealed to. Nobody at the NGO, the server included, keeps a
key, so after :func:`encrypt` the plaintext is gone from our reach. Opening
is the investigators' side: every input byte is hostile, and every failure
is one of the age failure kinds (:class:`HeaderError`,
:class:`NoIdentityMatchError`, :class:`HeaderMACError`, :class:`PayloadError`,
:class:`ArmorError`), never a reason why an AEAD failed.

Decryption streams: plaintext of each 64 KiB chunk is released once its tag
verifies, so a later chunk can still fail. **Plaintext written before a
PayloadError (or ArmorError) is untrusted** and must be discarded: write to a
temporary file and keep it only when :func:`decrypt` returns (the CLI does
this with ``atomic_output``).

::

    identity = X25519Identity.generate()
    encrypt(src, dst, [identity.recipient])
    decrypt(sealed, out, [identity])
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from ..errors import (
    ArmorError,
    HeaderError,
    HeaderMACError,
    NoIdentityMatchError,
    PayloadError,
    RecipientMixError,
)
from . import format as _format
from .armor import ArmorReader, ArmorWriter, is_armored_prefix
from .hkdf import hkdf_sha256
from .keys import parse_identities_file, parse_identity, parse_recipient, parse_recipients_file
from .scrypt import ScryptIdentity, ScryptRecipient, check_scrypt_alone
from .stanza import Identity, Recipient, Stanza
from .stream import (
    NONCE_SIZE,
    StreamReader,
    StreamWriter,
    Writable,
    encrypt_stream,
    payload_key,
    read_full,
)
from .x25519 import X25519Identity, X25519Recipient

__all__ = [
    "ArmorError",
    "HeaderError",
    "HeaderMACError",
    "Identity",
    "NoIdentityMatchError",
    "PayloadError",
    "Recipient",
    "RecipientMixError",
    "ScryptIdentity",
    "ScryptRecipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "encrypt",
    "open_decryptor",
    "open_encryptor",
    "parse_identities_file",
    "parse_identity",
    "parse_recipient",
    "parse_recipients_file",
    "recipient_fingerprint",
]

FILE_KEY_SIZE = 16
Progress = Callable[[int], None]
# Enough to see past up to 1 KiB of whitespace to the armor's BEGIN line.
_SNIFF_SIZE = 1100


def recipient_fingerprint(recipient: Recipient) -> str:
    """SHA-256 (hex) of the recipient's string form, e.g. of ``age1…``.

    A stable, public identifier for logs and manifests: it names the key
    without repeating it and is computable with ``printf %s age1… | sha256sum``.
    """
    return hashlib.sha256(str(recipient).encode("ascii")).hexdigest()


def _header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return hmac.digest(hkdf_sha256(file_key, b"", b"header", 32), mac_input, hashlib.sha256)


def _check_recipients(recipients: Sequence[Recipient]) -> None:
    """One file, one kind of recipient: the age spec's label rule."""
    if not recipients:
        raise ValueError("at least one recipient is required")
    if any(isinstance(r, ScryptRecipient) for r in recipients) and len(recipients) > 1:
        raise RecipientMixError("a passphrase (scrypt) recipient must be the only recipient")
    first = recipients[0].labels
    for other in recipients[1:]:
        if other.labels != first:
            if "postquantum" in first ^ other.labels:
                raise RecipientMixError(
                    "post-quantum recipients cannot be mixed with classical ones: "
                    "seal to post-quantum (age1pq1…) keys only, or to classical keys only"
                )
            raise RecipientMixError(
                f"recipients with labels {sorted(first)} and {sorted(other.labels)} "
                "cannot be combined in one file"
            )


def _write_header(dst: Writable, recipients: Sequence[Recipient]) -> bytes:
    """Write header and payload nonce; return the payload key."""
    _check_recipients(recipients)
    file_key = os.urandom(FILE_KEY_SIZE)
    stanzas: list[Stanza] = []
    for recipient in recipients:
        stanzas.extend(recipient.wrap(file_key))
    mac_input = _format.encode_without_mac(stanzas)
    nonce = os.urandom(NONCE_SIZE)
    # The stanzas are encoded once: the header is the MAC input plus the MAC line.
    dst.write(_format.with_mac(mac_input, _header_mac(file_key, mac_input)) + nonce)
    return payload_key(file_key, nonce)


def encrypt(
    src: BinaryIO,
    dst: BinaryIO,
    recipients: Sequence[Recipient],
    *,
    armor: bool = False,
    progress: Progress | None = None,
) -> None:
    """Seal all of ``src`` into ``dst`` for ``recipients``.

    Raises :class:`RecipientMixError` for recipients that cannot share a
    file, and ``ValueError`` for none.
    """
    if armor:
        with open_encryptor(dst, recipients, armor=True) as writer:
            buf = memoryview(bytearray(64 * 1024))
            while n := read_full(src, buf):
                writer.write(buf[:n])
                if progress is not None:
                    progress(n)
        return
    key = _write_header(dst, recipients)
    encrypt_stream(src, dst, key, progress)


@contextlib.contextmanager
def open_encryptor(
    dst: BinaryIO, recipients: Sequence[Recipient], *, armor: bool = False
) -> Iterator[StreamWriter]:
    """Seal data pushed with ``.write(chunk)``; the file is finished on exit.

    The header is written at once. If the block raises, the last chunk is
    not sealed and ``dst`` holds an incomplete file that no one can open;
    the caller should discard it.
    """
    _check_recipients(recipients)
    sink: Writable = ArmorWriter(dst) if armor else dst
    writer = StreamWriter(sink, _write_header(sink, recipients))
    yield writer
    writer.close()
    if isinstance(sink, ArmorWriter):
        sink.close()


class _PrefixedReader(io.RawIOBase):
    """Replays bytes already sniffed from ``src``, then reads ``src`` on."""

    def __init__(self, prefix: bytes, src: BinaryIO) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        readinto = getattr(self._src, "readinto", None)
        if readinto is not None:
            return int(readinto(view))
        data = self._src.read(len(view))
        view[: len(data)] = data
        return len(data)


def _input(src: BinaryIO, armored: bool | None) -> io.BufferedIOBase:
    """A buffered reader of the (de-armored) age file; armor auto-detected if None."""
    sniff = b""
    if armored is None:
        sniff = src.read(_SNIFF_SIZE) or b""
        armored = is_armored_prefix(sniff)
    reader: io.BufferedIOBase = io.BufferedReader(
        _PrefixedReader(sniff, src), buffer_size=128 * 1024
    )
    if armored:
        reader = io.BufferedReader(ArmorReader(reader), buffer_size=128 * 1024)
    return reader


def _open(src: BinaryIO, identities: Sequence[Identity], armored: bool | None) -> StreamReader:
    reader = _input(src, armored)
    # 1. Parse the header strictly; nothing in it is trusted yet.
    header = _format.parse_unverified(reader)
    # 2. A scrypt stanza must be alone, whatever identities we hold.
    check_scrypt_alone(header.stanzas)
    # 3. The first identity that unwraps a stanza gives the file key.
    file_key = None
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is not None:
            break
    if file_key is None:
        raise NoIdentityMatchError("no identity matched any of the file's recipients")
    if len(file_key) != FILE_KEY_SIZE:
        raise HeaderError("unwrapped file key has the wrong length")
    # 4. Only now can the header MAC be checked; it covers every stanza.
    if not hmac.compare_digest(_header_mac(file_key, header.mac_input), header.mac):
        raise HeaderMACError("header MAC mismatch: the header was altered")
    # 5. The payload nonce; a file that ends before it is malformed.
    nonce = bytearray(NONCE_SIZE)
    if read_full(reader, memoryview(nonce)) != NONCE_SIZE:
        raise HeaderError("file ends before the payload nonce")
    return StreamReader(reader, payload_key(file_key, bytes(nonce)))


def decrypt(
    src: BinaryIO,
    dst: BinaryIO,
    identities: Sequence[Identity],
    *,
    progress: Progress | None = None,
    armored: bool | None = None,
) -> None:
    """Open ``src`` into ``dst`` with the first matching identity.

    Armor is detected unless ``armored`` says. On :class:`PayloadError` or
    :class:`ArmorError`, what was already written to ``dst`` is untrusted.
    ``dst.write`` gets a view of a reused buffer and must copy it, not keep it.
    """
    stream = _open(src, identities, armored)
    while (chunk := stream.next_chunk()) is not None:
        dst.write(chunk)
        if progress is not None:
            progress(len(chunk))


def open_decryptor(
    src: BinaryIO, identities: Sequence[Identity], *, armored: bool | None = None
) -> StreamReader:
    """Parse the header and unwrap now; return a stream of plaintext (``read(n)``).

    Header-level failures raise here; payload failures raise from ``read``.
    """
    return _open(src, identities, armored)

