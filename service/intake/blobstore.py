"""The sealed-blob store: ciphertext only, addressed by its SHA-256.

Threat model: the blob store lives on the server's disk and in its backups, so
it is assumed to be copied by an adversary. Only age ciphertext ever reaches
it (the sealing pipeline hands it the encryptor's output and nothing else);
its file names are the SHA-256 of their content, which says nothing about the
witness. A blob is written to a temporary file in the same directory, fsynced,
renamed to its digest and the directory fsynced, so a crash leaves either a
complete blob or a temporary file, never a torn blob under a digest name.

Garbage: a temporary file belongs to an upload in progress or to one that
died; a renamed blob that no database row references belongs to an upload
that never committed. :func:`FilesystemBlobStore.collect_garbage` deletes both
once they are older than a grace period (uploads in progress keep touching
their files, and the grace period is far longer than a commit takes).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

_TMP_PREFIX = ".tmp-"
_HEX = frozenset("0123456789abcdef")


class BlobStoreError(Exception):
    """The blob store cannot complete an operation (missing blob, bad digest, I/O)."""


class BlobNotFoundError(BlobStoreError):
    """No blob has this digest (never stored, or purged)."""


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise BlobStoreError("a blob digest is 64 lowercase hex characters")
    return digest


class BlobWriter(Protocol):
    """A blob being written. ``write`` appends ciphertext; ``commit`` makes it durable.

    ``commit`` returns the :class:`BlobRef`; after it the blob exists under its
    digest. ``abort`` discards everything written (idempotent; also after commit
    it does nothing). Errors: :class:`BlobStoreError` or :class:`OSError`.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def commit(self) -> BlobRef: ...

    def abort(self) -> None: ...


class BlobStore(Protocol):
    """Where sealed blobs live. Implementations must store ciphertext only.

    ``open`` raises :class:`BlobNotFoundError`; ``delete`` is idempotent.
    """

    def writer(self) -> BlobWriter: ...

    def put(self, src: BinaryIO) -> BlobRef: ...

    def open(self, digest: str) -> BinaryIO: ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...


@dataclass(frozen=True)
class GarbageReport:
    temp_files_removed: int
    unreferenced_blobs_removed: int


class _FileBlobWriter(io.RawIOBase):
    """Hashes and counts what it writes into a temporary file beside the final blobs."""

    def __init__(self, store: FilesystemBlobStore) -> None:
        super().__init__()
        self._store = store
        self._tmp = store.root / f"{_TMP_PREFIX}{secrets.token_hex(16)}"
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0
        self._ref: BlobRef | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
        if self._file is None:
            raise BlobStoreError("blob writer is closed")
        self._file.write(data)
        self._hash.update(data)
        size = len(data)
        self._size += size
        return size

    def commit(self) -> BlobRef:
        if self._ref is not None:
            return self._ref
        if self._file is None:
            raise BlobStoreError("blob writer was aborted")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        digest = self._hash.hexdigest()
        os.replace(self._tmp, self._store.root / digest)
        self._store.sync_directory()
        self._ref = BlobRef(digest, self._size)
        return self._ref

    def abort(self) -> None:
        if self._ref is not None:
            return
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def close(self) -> None:
        self.abort()
        super().close()


class FilesystemBlobStore:
    """Blobs as files named by their SHA-256 in one directory (mode 0700)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def sync_directory(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def writer(self) -> _FileBlobWriter:
        return _FileBlobWriter(self)

    def put(self, src: BinaryIO) -> BlobRef:
        writer = self.writer()
        try:
            while chunk := src.read(1 << 20):
                writer.write(chunk)
            return writer.commit()
        finally:
            writer.abort()

    def path(self, digest: str) -> Path:
        return self.root / _check_digest(digest)

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as err:
            raise BlobNotFoundError(f"no blob {digest}") from err

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))
        self.sync_directory()

    def iter_digests(self) -> Iterator[str]:
        for entry in os.scandir(self.root):
            if len(entry.name) == 64 and set(entry.name) <= _HEX and entry.is_file():
                yield entry.name

    def collect_garbage(
        self,
        is_referenced: Callable[[str], bool],
        *,
        grace_seconds: float,
        now: float | None = None,
    ) -> GarbageReport:
        """Delete temporary files and unreferenced blobs last modified before the grace period.

        ``is_referenced(digest)`` must answer from the database *after* the
        grace cut-off was taken, so a blob committed meanwhile is kept.
        """
        cutoff = (time.time() if now is None else now) - grace_seconds
        temps = blobs = 0
        for entry in list(os.scandir(self.root)):
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if mtime >= cutoff:
                continue
            if entry.name.startswith(_TMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                temps += 1
            elif (len(entry.name) == 64 and set(entry.name) <= _HEX
                  and not is_referenced(entry.name)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                blobs += 1
        if temps or blobs:
            self.sync_directory()
        return GarbageReport(temps, blobs)
