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

import atexit
import contextlib
import fcntl
import hashlib
import io
import mmap
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

_TMP_PREFIX = ".tmp-"
_LEASE_PREFIX = ".lease-"
# A temporary file this young may belong to an upload that has created it but
# not yet taken its lease; garbage collection leaves it alone.
_MIN_ORPHAN_AGE_SECONDS = 2.0
_HEX = frozenset("0123456789abcdef")
# A large blob's pages are handed to the kernel for write-back every this many
# bytes, while the upload goes on, so that the fdatasync at the end (which the
# durability guarantee needs) waits for the last few MiB instead of the whole
# blob. posix_fadvise(DONTNEED) starts write-back of dirty pages on Linux
# (without waiting) and drops clean ones: ciphertext is not read back soon.
_WRITEBACK_BYTES = 8 << 20
_fadvise = getattr(os, "posix_fadvise", None)
# Ciphertext is hashed and written in buffers of this size, by two threads of
# the blob's own (one hashes, one writes) once the blob outgrows one buffer;
# at most _BUFFERS per blob (six measured a little faster than four once the
# write stage waits for the disk; docs/intake.md, "Throughput").
_BUFFER_BYTES = 1 << 20
_BUFFERS = 6
# Once a blob has a flusher, its file is written with O_DIRECT where the file
# system allows it: the ciphertext goes from the flusher's buffer to the disk
# without a copy into the page cache (which cost about a third of a second of
# CPU per 512 MiB here, more on a freshly booted virtual machine) and without
# write-back by kernel threads. O_DIRECT needs buffers, lengths and file
# offsets aligned to the device's block size; a page (4096 bytes) satisfies
# every common device, and the flusher's buffers are page-aligned anonymous
# mappings. Durability is unchanged: the fdatasync in finish() still flushes
# the device's cache and the file's size before the blob is named.
_DIRECT = getattr(os, "O_DIRECT", 0)
_ALIGN = 4096

Buffer = bytearray | mmap.mmap


def _aligned_buffer() -> mmap.mmap:
    """A zeroed, page-aligned buffer of :data:`_BUFFER_BYTES` (anonymous memory, no file)."""
    return mmap.mmap(-1, _BUFFER_BYTES)


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
    """A blob being written. ``write`` appends ciphertext.

    ``finish`` makes the content durable (fsync) and returns its
    :class:`BlobRef`, but the blob stays invisible; ``publish`` then moves it
    under its digest and makes the move durable. ``publish(sync=False)``
    leaves the move's durability to the caller, who publishes several blobs
    and then calls the store's ``sync_directory()`` once, before relying on
    them. ``abort`` discards a blob that was not published (idempotent).
    Errors: :class:`BlobStoreError` or :class:`OSError`.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def finish(self) -> BlobRef: ...

    def publish(self, *, sync: bool = True) -> BlobRef: ...

    def abort(self) -> None: ...


class BlobStore(Protocol):
    """Where sealed blobs live. Implementations must store ciphertext only.

    ``open`` raises :class:`BlobNotFoundError`; ``delete`` is idempotent.
    """

    def writer(self, lease: Lease | None = None) -> BlobWriter: ...

    def put(self, src: BinaryIO) -> BlobRef: ...

    def open(self, digest: str) -> BinaryIO: ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...


class Lease:
    """An exclusive ``flock`` on ``.lease-ID`` held while an upload writes its temp files.

    Garbage collection deletes an upload's temporary files as soon as its
    lease is free, i.e. its process is gone (killed, crashed), whatever their
    age. The lock is released by the kernel when the process dies.
    """

    def __init__(self, root: Path) -> None:
        self.id = secrets.token_hex(12)
        self.path = root / f"{_LEASE_PREFIX}{self.id}"
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


# One lease per process and store directory, taken at the first upload and held
# until the process ends (see FilesystemBlobStore.process_lease).
_PROCESS_LEASES: dict[tuple[int, Path], Lease] = {}
_PROCESS_LEASES_LOCK = threading.Lock()


def _release_process_leases() -> None:
    pid = os.getpid()
    with _PROCESS_LEASES_LOCK:
        for (owner, _root), lease in list(_PROCESS_LEASES.items()):
            if owner == pid:
                lease.release()
        _PROCESS_LEASES.clear()


atexit.register(_release_process_leases)


@dataclass(frozen=True)
class GarbageReport:
    temp_files_removed: int
    unreferenced_blobs_removed: int


class _FileBlobWriter(io.RawIOBase):
    """Hashes and counts what it writes into a temporary file beside the final blobs.

    Writes are gathered into buffers of :data:`_BUFFER_BYTES`. Once a blob
    fills one, it gets a flusher of its own, two threads that hash and then
    write the full buffers (both release the GIL) while the caller goes on
    encrypting into the next one; at most :data:`_BUFFERS` buffers exist per
    blob, so memory stays bounded and a slow disk slows the upload down
    instead. A blob smaller than one buffer (the statement record, most
    photos) never starts a thread: :meth:`finish` hashes and writes it.
    """

    def __init__(self, store: FilesystemBlobStore, lease: Lease | None) -> None:
        super().__init__()
        self._store = store
        owner = lease.id if lease is not None else "none"
        self._tmp = store.root / f"{_TMP_PREFIX}{owner}-{secrets.token_hex(8)}"
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._hash = hashlib.sha256()
        self._size = 0  # bytes accepted by write()
        self._buffer: Buffer = bytearray()
        self._fill = 0
        self._flusher: _Flusher | None = None
        # Owned by whoever stores chunks: the flusher's thread once it runs.
        self._direct = False  # the file has O_DIRECT now
        self._writeback = True  # early write-back from the page cache
        self._written = 0
        self._written_back = 0
        self._advised_from = 0
        self._finished: BlobRef | None = None
        self._ref: BlobRef | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            room = _BUFFER_BYTES - self._fill
            take = min(len(view), room or _BUFFER_BYTES)
            self.reserve(take)[:] = view[:take]
            view = view[take:]
        return size

    def reserve(self, size: int, /) -> memoryview:
        """Append ``size`` bytes that the caller fills in before it calls this writer again.

        The age encryptor seals each chunk straight into this space instead of
        into a buffer of its own that :meth:`write` would copy. The view must
        not be kept: the buffer goes to the flusher at a later call.
        """
        if self._fd is None or self._finished is not None:
            raise BlobStoreError("blob writer is closed")
        if size > _BUFFER_BYTES:
            raise ValueError(f"reserve at most {_BUFFER_BYTES} bytes at a time")
        fill = self._fill
        if self._flusher is None and fill + size < _BUFFER_BYTES:
            # Small so far: the buffer grows with the blob (it holds exactly
            # ``fill`` bytes), so a small blob never allocates a full buffer.
            self._buffer += bytes(size)  # type: ignore[operator] # a bytearray until then
        else:
            if len(self._buffer) < _BUFFER_BYTES:
                buffer = _aligned_buffer()
                buffer[:fill] = self._buffer
                self._buffer = buffer
            if fill + size > _BUFFER_BYTES:
                if self._flusher is None:
                    self._start_direct()
                    self._flusher = _Flusher(self._hash_chunk, self._write_chunk)
                # Whole blocks go to the flusher; the last partial block (the
                # age chunks that fill a buffer do not end on a block) moves
                # to the start of the next buffer, so every write but the
                # blob's last one is aligned for O_DIRECT.
                aligned = fill - fill % _ALIGN
                if fill - aligned + size > _BUFFER_BYTES:
                    # No room for the partial block beside this reservation:
                    # the buffer goes whole, and the blob's writes end off a
                    # block from here on (the rest goes through the page cache).
                    aligned = fill
                full, self._buffer = self._buffer, self._flusher.take()
                self._buffer[: fill - aligned] = full[aligned:fill]
                self._flusher.submit(full, aligned)
                fill -= aligned
        self._fill = fill + size
        self._size += size
        return memoryview(self._buffer)[fill : fill + size]

    def _start_direct(self) -> None:
        """Write the rest of this blob with O_DIRECT, if the file system takes it.

        Called before the flusher starts, when nothing has been written yet.
        A file system without direct I/O (tmpfs on older kernels, some network
        file systems) refuses the flag; the blob is then written through the
        page cache, with early write-back, as before.
        """
        if not _DIRECT or self._fd is None:
            return
        try:
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | _DIRECT)
        except OSError:
            return
        self._direct = True
        self._writeback = False

    def _end_direct(self) -> None:
        if self._direct and self._fd is not None:
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_DIRECT)
        self._direct = False

    def _store_chunk(self, data: memoryview) -> None:
        """Hash and write ``data`` (a blob that never had a flusher)."""
        self._hash_chunk(data)
        self._write_chunk(data)

    def _hash_chunk(self, data: memoryview) -> None:
        self._hash.update(data)

    def _write_chunk(self, data: memoryview) -> None:
        """Write ``data``, then maybe start write-back (one thread at a time)."""
        if self._fd is None:
            raise BlobStoreError("blob writer is closed")
        size = len(data)
        if self._direct:
            # Only the blob's last chunk may end off a block: its whole blocks
            # go direct, and the tail through the page cache.
            aligned = size - size % _ALIGN
            while aligned:
                written = os.write(self._fd, data[:aligned])
                data, aligned = data[written:], aligned - written
                if written % _ALIGN:  # a short write off a block: no more direct
                    break
            if data:
                self._end_direct()
        while data:
            data = data[os.write(self._fd, data) :]
        self._written += size
        if (self._writeback and _fadvise is not None
                and self._written - self._written_back >= _WRITEBACK_BYTES):
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Start (not wait for) write-back of everything written so far.

        This is an optimisation only: it promises nothing about durability,
        which still comes from the fdatasync in :meth:`finish`. The whole
        range advised starts one step back, so pages still under write-back at
        the previous call (not yet clean, hence kept) are dropped now.
        """
        if self._fd is None or _fadvise is None:
            return
        start = self._advised_from
        _fadvise(self._fd, start, self._written - start, os.POSIX_FADV_DONTNEED)
        self._advised_from, self._written_back = self._written_back, self._written

    def _drain(self) -> None:
        """Store the partly filled buffer and wait for the flusher to finish everything."""
        flusher, self._flusher = self._flusher, None
        if flusher is None:
            if self._fill:
                self._store_chunk(memoryview(self._buffer)[: self._fill])
        else:
            if self._fill:
                flusher.submit(self._buffer, self._fill)
            flusher.close()
        self._fill = 0
        self._buffer = bytearray()

    def finish(self) -> BlobRef:
        if self._finished is not None:
            return self._finished
        if self._fd is None:
            raise BlobStoreError("blob writer was aborted")
        self._drain()
        os.fdatasync(self._fd)  # the content; the rename is synced with the directory
        os.close(self._fd)
        self._fd = None
        self._finished = BlobRef(self._hash.hexdigest(), self._size)
        return self._finished

    def publish(self, *, sync: bool = True) -> BlobRef:
        ref = self.finish()
        if self._ref is None:
            # The modification time becomes the publication time, which is
            # what garbage collection's grace period is measured from: a blob
            # written long ago by a slow upload is not an old orphan yet.
            os.utime(self._tmp)
            os.replace(self._tmp, self._store.root / ref.sha256)
            self._ref = ref
            if sync:
                self._store.sync_directory()
        return ref

    def abort(self) -> None:
        if self._ref is not None:
            return
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
        self._buffer = bytearray()
        self._fill = 0
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def close(self) -> None:
        self.abort()
        super().close()


class _Flusher:
    """Threads that pass queued buffers through ``stages``, in order, and recycle them.

    Each stage runs on a thread of its own and hands each buffer on to the
    next: the blob writer's stages are hashing and writing, so the hash of
    one buffer overlaps the (direct, hence blocking) write of the one before.
    At most :data:`_BUFFERS` buffers exist, so :meth:`take` blocks while all
    the others are in the pipeline (back pressure). An error in a stage is
    raised by the next :meth:`submit` or by :meth:`close`; no stage works on
    anything after it. :meth:`cancel` drops everything queued and waits for
    the threads, so nothing touches the file once it returns.
    """

    def __init__(self, *stages: Callable[[memoryview], None]) -> None:
        self._inboxes: list[queue.SimpleQueue[tuple[Buffer, int] | None]] = [
            queue.SimpleQueue() for _ in stages]
        self._free: queue.SimpleQueue[Buffer] = queue.SimpleQueue()
        self._allocated = 1  # the buffer the writer filled first
        self._error: BaseException | None = None
        self._cancelled = False
        self._threads = [
            threading.Thread(target=self._run, args=(index, stage), name="blob-flusher",
                             daemon=True)
            for index, stage in enumerate(stages)]
        for thread in self._threads:
            thread.start()

    def _run(self, index: int, stage: Callable[[memoryview], None]) -> None:
        inbox = self._inboxes[index]
        following = self._inboxes[index + 1] if index + 1 < len(self._inboxes) else None
        while (item := inbox.get()) is not None:
            buffer, size = item
            if self._error is None and not self._cancelled:
                try:
                    stage(memoryview(buffer)[:size])
                except BaseException as err:  # raised again in the writer's thread
                    self._error = err
            if following is not None:
                following.put(item)
            else:
                self._free.put(buffer)
        if following is not None:
            following.put(None)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, buffer: Buffer, size: int) -> None:
        """Queue ``buffer[:size]``; the buffer belongs to the flusher from now on."""
        self._raise()
        self._inboxes[0].put((buffer, size))

    def take(self) -> Buffer:
        """An empty buffer: a stored one, a new one, or the next one stored."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._allocated < _BUFFERS:
            self._allocated += 1
            return _aligned_buffer()
        return self._free.get()

    def close(self) -> None:
        """Wait until everything queued is stored; raise a stage's error if any."""
        self._inboxes[0].put(None)
        for thread in self._threads:
            thread.join()
        self._raise()

    def cancel(self) -> None:
        self._cancelled = True
        self._inboxes[0].put(None)
        for thread in self._threads:
            thread.join()


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

    def writer(self, lease: Lease | None = None) -> _FileBlobWriter:
        return _FileBlobWriter(self, lease)

    def lease(self) -> Lease:
        """A new lease of its own; the caller releases it."""
        return Lease(self.root)

    def process_lease(self) -> Lease:
        """This process's lease on the store: taken once, held until the process ends.

        Uploads write their temporary files under it instead of taking a lease
        each: creating and deleting a lease file per request cost more than the
        rest of a small statement's file work. The guarantee is the same one,
        because what a lease protects against is the death of its process: an
        upload that fails in a living process deletes its own temporary files,
        and a dead process's lock is released by the kernel, so garbage
        collection then deletes them. Never release it; a process that forks
        gets a lease of its own at its first upload.
        """
        key = (os.getpid(), self.root)
        lease = _PROCESS_LEASES.get(key)
        if lease is None:
            with _PROCESS_LEASES_LOCK:
                lease = _PROCESS_LEASES.get(key)
                if lease is None:
                    lease = _PROCESS_LEASES[key] = Lease(self.root)
        return lease

    def put(self, src: BinaryIO) -> BlobRef:
        lease = self.lease()
        writer = self.writer(lease)
        try:
            while chunk := src.read(1 << 20):
                writer.write(chunk)
            return writer.publish()
        finally:
            writer.abort()
            lease.release()

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

    def _lease_is_free(self, lease_id: str) -> bool:
        """True if no living process holds the lease (or it is gone)."""
        try:
            fd = os.open(self.root / f"{_LEASE_PREFIX}{lease_id}", os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    def collect_garbage(
        self,
        referenced: Callable[[list[str]], set[str]],
        *,
        grace_seconds: float,
        now: float | None = None,
    ) -> GarbageReport:
        """Delete orphaned temporary files and unreferenced blobs.

        - a temporary file or lease whose lease is free (its upload's process
          is gone) is deleted at once;
        - a temporary file with a held lease is never touched;
        - a published blob is deleted if it was published more than
          ``grace_seconds`` ago and is not in ``referenced(candidates)`` (the
          digests among the candidates that the database references; asked once,
          after the cut-off, so a blob committed meanwhile is kept).
        """
        clock = time.time() if now is None else now
        cutoff = clock - grace_seconds
        temps = blobs = 0
        candidates: list[str] = []
        for entry in list(os.scandir(self.root)):
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            name = entry.name
            if name.startswith((_TMP_PREFIX, _LEASE_PREFIX)):
                if clock - mtime < _MIN_ORPHAN_AGE_SECONDS:
                    continue
                lease_id = (name[len(_TMP_PREFIX):].split("-", 1)[0]
                            if name.startswith(_TMP_PREFIX) else name[len(_LEASE_PREFIX):])
                if self._lease_is_free(lease_id):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                    temps += name.startswith(_TMP_PREFIX)
            elif len(name) == 64 and set(name) <= _HEX and mtime < cutoff:
                candidates.append(name)
        if candidates:
            keep = referenced(candidates)
            for name in candidates:
                if name not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.root / name)
                    blobs += 1
        if temps or blobs:
            self.sync_directory()
        return GarbageReport(temps, blobs)
