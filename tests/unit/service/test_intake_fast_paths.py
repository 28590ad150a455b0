"""The intake's fast paths keep their guarantees (see bench/intake.py for the speed).

- read-only sessions on SQLite do not wait for the write lock; write sessions still take it;
- a blob written with early write-back (no O_DIRECT) is intact and fdatasynced before it is named;
- a statement's renames are made durable by one directory fsync, before publish() returns;
- the multipart parser hands sinks views of its input, not copies.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from evidence_intake.crypto.age import X25519Identity, recipient_fingerprint
from evidence_intake.crypto.age.mlkem768x25519 import HybridIdentity
from evidence_intake.service import models  # noqa: F401 - registers every table
from evidence_intake.service.db import Database
from evidence_intake.service.intake import blobstore
from evidence_intake.service.intake.blobstore import FilesystemBlobStore
from evidence_intake.service.intake.multipart import StreamingFormParser
from evidence_intake.service.intake.routing import SealPlan, plan_seal
from evidence_intake.service.intake.submission import Limits, Submission
from evidence_intake.service.models.accounts import ApiToken
from evidence_intake.service.models.base import Base
from evidence_intake.service.models.recipients import KeyKind
from evidence_intake.service.settings import Settings
from intake_samples import multipart, record, record_bytes
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError


def _database(tmp_path: Path) -> Database:
    database = Database.from_settings(Settings(data_dir=tmp_path))
    Base.metadata.create_all(database.engine)
    return database


def _hold_write_lock(tmp_path: Path) -> sqlite3.Connection:
    """Another process's writer: a transaction holding SQLite's write lock."""
    other = sqlite3.connect(tmp_path / "intake.db", isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_read_session_is_not_blocked_by_a_writer(tmp_path: Path) -> None:
    database = _database(tmp_path)
    other = None
    try:
        other = _hold_write_lock(tmp_path)
        start = time.monotonic()
        with database.read_session() as session:
            assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
        assert time.monotonic() - start < 5  # the busy timeout is 15 s
    finally:
        if other is not None:
            other.rollback()
            other.close()
        database.dispose()


def test_a_write_session_still_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    database = _database(tmp_path)
    other = None
    try:
        other = _hold_write_lock(tmp_path)
        with database.engine.connect() as conn:
            # On the DBAPI connection: through SQLAlchemy it would begin first.
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA busy_timeout=50")
            with pytest.raises(OperationalError, match="locked"):
                conn.execute(text("SELECT 1"))  # the begin hook runs BEGIN IMMEDIATE
    finally:
        if other is not None:
            other.rollback()
            other.close()
        database.dispose()


def test_a_large_blob_with_early_writeback_is_intact(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if blobstore._fadvise is None:
        pytest.skip("no posix_fadvise on this platform: the final fdatasync does all")
    calls: list[tuple[int, int]] = []
    synced: list[int] = []
    real_fadvise, real_fdatasync = blobstore._fadvise, os.fdatasync

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length))
        real_fadvise(fd, offset, length, advice)

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(blobstore, "_fadvise", fadvise)
    monkeypatch.setattr(blobstore.os, "fdatasync", fdatasync)
    # Write-back is for blobs written through the page cache: where the file
    # system refuses O_DIRECT (here: as if it had none).
    monkeypatch.setattr(blobstore, "_DIRECT", 0)
    store = FilesystemBlobStore(tmp_path)
    writer = store.writer()
    digest = hashlib.sha256()
    chunk = os.urandom(65536 + 16)
    for _ in range(400):  # about 25 MiB: three write-back rounds
        writer.write(chunk)
        digest.update(chunk)
    assert not synced
    ref = writer.publish()
    assert len(synced) == 1
    assert len(calls) == 3
    # Each round starts where the one before the previous ended: nothing skipped.
    assert calls[0][0] == 0 and calls[1][0] == 0 and calls[2][0] == sum(calls[0])
    assert ref.sha256 == digest.hexdigest() == hashlib.sha256(
        (tmp_path / ref.sha256).read_bytes()).hexdigest()


class _Row:
    def __init__(self, body_id: str, identity: Any, kind: KeyKind) -> None:
        self.id = f"r-{body_id}"
        self.body_id = body_id
        self.recipient = str(identity.recipient)
        self.kind = kind
        self.fingerprint = recipient_fingerprint(identity.recipient)


def test_one_directory_fsync_per_statement_before_publish_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {"un": [_Row("un", X25519Identity.generate(), KeyKind.x25519)],
            "icc": [_Row("icc", HybridIdentity.generate(), KeyKind.mlkem768x25519)]}

    def plan(_record: Any, bodies: list[str]) -> SealPlan:
        return plan_seal(bodies, {b: rows[b] for b in bodies})

    events: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(FilesystemBlobStore, "sync_directory",
                        lambda self: events.append("fsync-dir"))
    monkeypatch.setattr(blobstore.os, "replace",
                        lambda a, b: (events.append("rename"), real_replace(a, b))[1])
    store = FilesystemBlobStore(tmp_path / "blobs")
    limits = Limits(max_request_bytes=1 << 24, max_attachment_bytes=1 << 20, max_attachments=2,
                    max_record_bytes=1 << 16)
    sub = Submission(store=store, limits=limits, record_id="0b6f3c1e-2a4d-4c8e-9f10-1234567890ab",
                     counsellor_id="c-1", created_at=datetime(2026, 11, 29, tzinfo=UTC),
                     plan_for=plan)
    body, ctype = multipart([
        ("record", None, "application/json", record_bytes(record(["un", "icc"]))),
        ("text", None, "text/plain; charset=utf-8", b"statement"),
        ("attachment", "a.bin", "application/octet-stream", os.urandom(5000)),
        ("attachment", "b.bin", "application/octet-stream", os.urandom(5000))])
    parser = StreamingFormParser(ctype.split("boundary=")[1].encode(), sub.open_part)
    parser.feed(body)
    parser.finish()
    sub.seal_statement()
    sub.publish()
    # 3 blobs (statement + 2 attachments) per key kind, 2 kinds: 6 renames, then one fsync.
    assert events == ["rename"] * 6 + ["fsync-dir"]


def test_part_data_reaches_the_sink_as_a_view_of_the_input() -> None:
    seen: list[object] = []

    class Sink:
        def write(self, data: memoryview, /) -> None:
            seen.append(type(data))

        def close(self) -> None:
            pass

    body, ctype = multipart([("attachment", "a.bin", "application/octet-stream",
                              os.urandom(100_000))])
    parser = StreamingFormParser(ctype.split("boundary=")[1].encode(),
                                 lambda _info: Sink())
    parser.feed(body)
    parser.finish()
    assert seen and all(kind is memoryview for kind in seen)

