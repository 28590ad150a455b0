"""Seal one plaintext stream into one blob per key kind, chunk by chunk.

Each :class:`MultiSealer` owns, per sealed copy, an age encryptor whose
output goes straight into a blob-store writer. Plaintext passes through memory
only: it is hashed (SHA-256, for the sealed record), counted, and handed to the
encryptors; the blob store sees ciphertext alone. Memory is bounded by the age
chunk size (64 KiB) per copy plus the caller's chunk.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

from ...crypto.age import open_encryptor
from ...crypto.age.keys import parse_recipient
from ...crypto.age.stanza import Recipient
from ..models.recipients import KeyKind
from .background_hash import BackgroundSha256
from .blobstore import BlobRef, BlobStore, BlobWriter, Lease
from .routing import KeyGroup


@dataclass(frozen=True)
class SealedPart:
    """A sealed plaintext: its size and digest, and the blob of each copy."""

    size: int
    sha256: str
    blobs: dict[KeyKind, BlobRef]


# Parsing a recipient decodes Bech32 and checks the point (an X25519
# multiplication); every statement to the same bodies parses the same few
# strings, so the immutable results are kept. The database still decides
# which strings a statement is sealed to; this only remembers what they mean.
_parse_recipient = functools.lru_cache(maxsize=1024)(parse_recipient)


def parse_group_recipients(group: KeyGroup) -> list[Recipient]:
    return [_parse_recipient(text) for text in group.recipient_strings()]


class MultiSealer:
    """Write plaintext with :meth:`write`; :meth:`commit` finishes every copy.

    Finished blobs are durable but not yet published under their digests;
    ``on_blob`` receives each finished writer so the caller can publish them
    all just before the database commit. :meth:`abort` discards temporary
    files; it is safe to call twice.
    """

    def __init__(
        self,
        store: BlobStore,
        copies: Sequence[tuple[KeyKind, Sequence[Recipient]]],
        on_blob: Callable[[BlobWriter], None],
        lease: Lease | None = None,
    ) -> None:
        self._on_blob = on_blob
        self._hash = BackgroundSha256()  # large attachments: hashed on another thread
        self._size = 0
        self._writers: list[tuple[KeyKind, BlobWriter]] = []
        self._stack = contextlib.ExitStack()
        self._encryptors = []
        self._done = False
        try:
            for kind, recipients in copies:
                writer = store.writer(lease)
                self._writers.append((kind, writer))
                encryptor = self._stack.enter_context(
                    open_encryptor(cast(BinaryIO, writer), list(recipients)))
                self._encryptors.append(encryptor)
        except BaseException:
            self.abort()
            raise

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self._size += len(data)
        for encryptor in self._encryptors:
            encryptor.write(data)

    def commit(self) -> SealedPart:
        # Closing the encryptors writes each final STREAM chunk; only then are
        # the blobs complete and can be fsynced and renamed to their digests.
        self._stack.close()
        self._encryptors = []
        blobs: dict[KeyKind, BlobRef] = {}
        for kind, writer in self._writers:
            blobs[kind] = writer.finish()
            self._on_blob(writer)
        self._done = True
        return SealedPart(self._size, self._hash.hexdigest(), blobs)

    def abort(self) -> None:
        if self._done:
            return  # committed: the finished writers belong to the caller now
        # Leaving the encryptors with an exception stops them from writing a
        # final chunk; the temporary files are then deleted.
        with contextlib.suppress(Exception):
            self._stack.__exit__(_AbortedError, _AbortedError(), None)
        self._encryptors = []
        for _kind, writer in self._writers:
            writer.abort()
        self._done = True


class _AbortedError(Exception):
    """Passed into the encryptors' context managers when an upload is abandoned."""


def seal_bytes(
    store: BlobStore,
    copies: Sequence[tuple[KeyKind, Sequence[Recipient]]],
    data: bytes,
    on_blob: Callable[[BlobWriter], None],
    lease: Lease | None = None,
) -> SealedPart:
    """Seal an in-memory plaintext (the statement record) into one blob per copy."""
    sealer = MultiSealer(store, copies, on_blob, lease)
    try:
        sealer.write(data)
        return sealer.commit()
    finally:
        sealer.abort()
