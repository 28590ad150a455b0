"""The filesystem blob store: content addressing, atomic commit, garbage collection."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from pathlib import Path

import pytest
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


def test_a_writer_leaves_nothing_until_commit_and_nothing_after_abort(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()
    writer.write(b"ciphertext")
    names = os.listdir(tmp_path)
    assert len(names) == 1 and names[0].startswith(".tmp-")
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


def test_garbage_collection_spares_fresh_and_referenced_blobs(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    kept = store.put(io.BytesIO(b"referenced"))
    orphan = store.put(io.BytesIO(b"never committed to the database"))
    fresh = store.put(io.BytesIO(b"an upload still in progress"))
    stale_tmp = store.writer()
    stale_tmp.write(b"died mid-upload")
    live_tmp = store.writer()
    live_tmp.write(b"still streaming")
    old = time.time() - 7200
    for name in os.listdir(tmp_path):
        if name not in {fresh.sha256} and not name.endswith(live_tmp._tmp.name[-8:]):
            os.utime(tmp_path / name, (old, old))

    report = store.collect_garbage(lambda digest: digest == kept.sha256, grace_seconds=3600)

    assert report.temp_files_removed == 1
    assert report.unreferenced_blobs_removed == 1
    assert store.exists(kept.sha256)
    assert store.exists(fresh.sha256)
    assert not store.exists(orphan.sha256)
    remaining_temps = [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    assert remaining_temps == [live_tmp._tmp.name]
    live_tmp.abort()
    stale_tmp.abort()
