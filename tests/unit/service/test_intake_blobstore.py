"""The filesystem blob store: content addressing, atomic commit, garbage collection."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from pathlib import Path

import pytest
from evidence_intake.service.intake import blobstore
from evidence_intake.service.intake.blobstore import (
    BlobNotFoundError,
    BlobStoreError,
    FilesystemBlobStore,
)


def test_blob_is_named_by_the_sha256_of_its_content(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    data = os.urandom(200_000)
    ref = store.put(io.BytesIO(data))
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert store.exists(ref.sha256)
    with store.open(ref.sha256) as blob:
        assert blob.read() == data
    assert stat.S_IMODE((tmp_path / "blobs").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path(ref.sha256).stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "blobs")) == [ref.sha256]


def test_a_writer_publishes_nothing_before_publish_and_nothing_after_abort(
        tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()
    writer.write(b"ciphertext")
    ref = writer.finish()
    names = os.listdir(tmp_path)
    assert len(names) == 1 and names[0].startswith(".tmp-")
    assert not store.exists(ref.sha256)
    writer.abort()
    writer.abort()  # idempotent
    assert os.listdir(tmp_path) == []


def test_delete_is_idempotent_and_open_after_delete_raises(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(io.BytesIO(b"x"))
    store.delete(ref.sha256)
    store.delete(ref.sha256)
    assert not store.exists(ref.sha256)
    with pytest.raises(BlobNotFoundError):
        store.open(ref.sha256)


@pytest.mark.parametrize("bad", ["../etc/passwd", "A" * 64, "0" * 63, ".tmp-x"])
def test_paths_outside_the_digest_space_are_refused(tmp_path: Path, bad: str) -> None:
    store = FilesystemBlobStore(tmp_path)
    with pytest.raises(BlobStoreError):
        store.open(bad)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_temp_files_of_a_dead_upload_go_at_once_those_of_a_live_one_never(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    live = store.lease()
    live_tmp = store.writer(live)
    live_tmp.write(b"still streaming")
    dead = store.lease()
    dead_tmp = store.writer(dead)
    dead_tmp.write(b"the process was killed")
    # What a kill -9 does: the kernel drops the lock, the files stay.
    assert dead._fd is not None
    os.close(dead._fd)
    dead._fd = None
    for name in os.listdir(tmp_path):
        _age(tmp_path / name, 10 * 86400 if live.id in name else 10)

    report = store.collect_garbage(lambda digests: set(), grace_seconds=86400)

    assert report.temp_files_removed == 1
    assert sorted(os.listdir(tmp_path)) == sorted([live.path.name, live_tmp._tmp.name])
    live_tmp.abort()
    live.release()
    assert os.listdir(tmp_path) == []


def test_unreferenced_blobs_go_after_the_grace_period_only(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    kept = store.put(io.BytesIO(b"referenced"))
    orphan = store.put(io.BytesIO(b"published, then the commit never happened"))
    fresh = store.put(io.BytesIO(b"published, commit in progress"))
    _age(store.path(kept.sha256), 7200)
    _age(store.path(orphan.sha256), 7200)

    report = store.collect_garbage(lambda digests: {kept.sha256} & set(digests),
                                  grace_seconds=3600)

    assert report.unreferenced_blobs_removed == 1
    assert store.exists(kept.sha256)
    assert store.exists(fresh.sha256)
    assert not store.exists(orphan.sha256)


def test_a_blob_published_now_is_young_however_long_ago_it_was_written(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()
    writer.write(b"first attachment of a slow upload")
    writer.finish()
    _age(writer._tmp, 3 * 86400)
    ref = writer.publish()
    report = store.collect_garbage(lambda digests: set(), grace_seconds=86400)
    assert report.unreferenced_blobs_removed == 0
    assert store.exists(ref.sha256)


def test_a_large_blob_goes_through_the_flusher_and_reserve_intact(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()
    digest = hashlib.sha256()
    for index in range(100):  # about 6.5 MiB: several buffers, most of them via reserve
        chunk = os.urandom(65536 + 16)
        if index % 3:
            writer.reserve(len(chunk))[:] = chunk
        else:
            writer.write(chunk)
        digest.update(chunk)
    assert writer._flusher is not None
    ref = writer.publish()
    assert ref.sha256 == digest.hexdigest()
    assert ref.size == 100 * (65536 + 16)
    assert hashlib.sha256(store.path(ref.sha256).read_bytes()).hexdigest() == ref.sha256


def _write_blob(store: FilesystemBlobStore, size: int) -> tuple[str, str]:
    """Write ``size`` random bytes in age-sized chunks; (our digest, published digest)."""
    writer = store.writer()
    digest = hashlib.sha256()
    left = size
    while left:
        chunk = os.urandom(min(left, 65536 + 16))
        writer.reserve(len(chunk))[:] = chunk
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest(), writer.publish().sha256


def _recording_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int, int]]:
    """Record (O_DIRECT set, file offset, length) of every os.write the blob store makes."""
    writes: list[tuple[bool, int, int]] = []
    real_write = os.write

    def write(fd: int, data: object) -> int:
        direct = bool(blobstore.fcntl.fcntl(fd, blobstore.fcntl.F_GETFL) & blobstore._DIRECT)
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        written = real_write(fd, data)  # type: ignore[arg-type]
        writes.append((direct, offset, written))
        return written

    monkeypatch.setattr(blobstore.os, "write", write)
    return writes


needs_direct = pytest.mark.skipif(not blobstore._DIRECT, reason="no O_DIRECT on this platform")


@needs_direct
@pytest.mark.parametrize("size", [(1 << 20) + 1, 3 * (1 << 20) + 4095, 5 * (1 << 20),
                                  5 * (1 << 20) + 4097])
def test_a_large_blob_is_written_direct_in_whole_blocks_and_its_tail_buffered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    store = FilesystemBlobStore(tmp_path)
    probe = tmp_path / "probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | blobstore._DIRECT)
    os.close(fd)  # raises here if this file system refuses O_DIRECT
    probe.unlink()
    writes = _recording_writes(monkeypatch)
    expected, published = _write_blob(store, size)
    assert published == expected
    assert hashlib.sha256(store.path(published).read_bytes()).hexdigest() == expected
    assert sum(length for _, _, length in writes) == size
    direct = [(offset, length) for is_direct, offset, length in writes if is_direct]
    buffered = [(offset, length) for is_direct, offset, length in writes if not is_direct]
    # Every direct write starts and ends on a block; only the tail after the
    # last whole block goes through the page cache, as the blob's last write.
    assert direct and all(offset % 4096 == 0 and length % 4096 == 0 for offset, length in direct)
    assert sum(length for _, length in direct) == size - size % 4096
    assert buffered == ([(size - size % 4096, size % 4096)] if size % 4096 else [])


@needs_direct
def test_a_short_direct_write_falls_back_to_the_page_cache_intact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemBlobStore(tmp_path)
    real_write = os.write
    calls = 0

    def short_once(fd: int, data: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second direct write stops mid-block
            fcntl, flags = blobstore.fcntl, blobstore.fcntl.fcntl(fd, blobstore.fcntl.F_GETFL)
            assert flags & blobstore._DIRECT
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~blobstore._DIRECT)
            written = real_write(fd, data[:1000])
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
            return written
        return real_write(fd, data)

    monkeypatch.setattr(blobstore.os, "write", short_once)
    expected, published = _write_blob(store, 4 * (1 << 20) + 123)
    assert calls > 3  # the rest of the blob was written after the short write
    assert published == expected
    assert hashlib.sha256(store.path(published).read_bytes()).hexdigest() == expected


def test_without_direct_io_a_large_blob_goes_through_the_page_cache_intact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that refuses O_DIRECT (tmpfs on older kernels): buffered writes."""
    store = FilesystemBlobStore(tmp_path)
    real_fcntl = blobstore.fcntl.fcntl

    def refuse_direct(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == blobstore.fcntl.F_SETFL and blobstore._DIRECT and arg & blobstore._DIRECT:
            raise OSError(22, "Invalid argument")
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(blobstore.fcntl, "fcntl", refuse_direct)
    writes = _recording_writes(monkeypatch)
    expected, published = _write_blob(store, 3 * (1 << 20) + 777)
    assert published == expected
    assert hashlib.sha256(store.path(published).read_bytes()).hexdigest() == expected
    assert writes and not any(is_direct for is_direct, _, _ in writes)


def test_reservations_up_to_a_whole_buffer_fit_after_any_partial_block(
        tmp_path: Path) -> None:
    """A full buffer's partial last block moves to the next one, unless the reservation
    leaves it no room: then the buffer goes whole and the rest is written buffered."""
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()
    digest = hashlib.sha256()
    largest = blobstore._BUFFER_BYTES
    for size in (4095, largest - 4095, 1, largest, 4097, largest - 1, largest, 100, 3):
        chunk = os.urandom(size)
        writer.reserve(size)[:] = chunk  # a view of the wrong size would raise here
        digest.update(chunk)
    with pytest.raises(ValueError, match="reserve at most"):
        writer.reserve(largest + 1)
    ref = writer.publish()
    assert ref.sha256 == digest.hexdigest()
    assert hashlib.sha256(store.path(ref.sha256).read_bytes()).hexdigest() == ref.sha256


def test_a_write_error_in_the_flusher_reaches_the_writer(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()

    def disk_full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobstore.os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(20):
            writer.write(os.urandom(1 << 20))
        writer.finish()
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_abort_stops_the_flusher_and_leaves_nothing(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()
    for _ in range(5):
        writer.write(os.urandom(1 << 20))
    flusher = writer._flusher
    assert flusher is not None
    writer.abort()
    assert flusher._threads and not any(thread.is_alive() for thread in flusher._threads)
    assert os.listdir(tmp_path) == []
    with pytest.raises(BlobStoreError):
        writer.write(b"more")


def test_the_process_lease_is_taken_once_and_guards_every_upload_of_the_process(
        tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    lease = store.process_lease()
    assert FilesystemBlobStore(tmp_path).process_lease() is lease  # one per process and store
    first, second = store.writer(lease), store.writer(lease)
    first.write(b"one upload")
    second.write(b"another upload")
    for name in os.listdir(tmp_path):
        _age(tmp_path / name, 10 * 86400)

    # Held by this (living) process: nothing of it is collected, however old.
    report = store.collect_garbage(lambda digests: set(), grace_seconds=86400)
    assert report.temp_files_removed == 0
    assert len(os.listdir(tmp_path)) == 3

    # A forked child takes a lease of its own; its death frees only that one.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        child = store.process_lease()
        os.write(write, child.id.encode())
        os._exit(0 if child is not lease else 1)
    _, status = os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_id != lease.id and (tmp_path / f".lease-{child_id}").exists()
    _age(tmp_path / f".lease-{child_id}", 10)
    store.collect_garbage(lambda digests: set(), grace_seconds=86400)
    assert not (tmp_path / f".lease-{child_id}").exists()
    assert lease.path.exists()
    first.abort()
    second.abort()
