"""Writing an export bundle: one zip, members stored, streamed to disk in one pass.

This module is pure (standard library, the minisign signer and the bundle
format definitions): the export service gathers statements, audit entries
and proofs from the database and hands them here. Memory stays bounded
whatever the bundle size: sealed files are copied in 1 MiB chunks, their
SHA-256 computed on the way and compared with the digest the database holds
(a blob-store file that changed since sealing aborts the export), and the
whole archive's SHA-256 is computed as it is written.

The zip is written sequentially (local header, data, data descriptor), never
seeking back, which is what lets the archive digest be computed in the same
pass; members are stored, never compressed (ciphertext does not compress),
and members of 4 GiB or more use ZIP64 records.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import tempfile
import threading
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ...bundle import manifest as fmt
from ...bundle.verify import trusted_comment
from ...crypto.minisign import SigningKey
from .readme import render_readme

_CHUNK = 1 << 20
#: Members at least this large get ZIP64 size fields (the classic fields stop at 4 GiB - 1).
ZIP64_THRESHOLD = 1 << 32
# Regular file, read-only for everyone, in the "external attributes" of a Unix zip.
_FILE_ATTR = (0o100444) << 16


class BundleWriteError(Exception):
    """The bundle could not be written; no partial bundle is left behind."""


@dataclass(frozen=True)
class SealedSource:
    """A sealed file to copy into the bundle, as the database knows it."""

    path: str
    size: int
    sha256: str
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class StatementSpec:
    id: str
    key_kind: str
    routing: dict[str, Any]
    audit_seqs: tuple[int, ...]
    statement: SealedSource
    attachments: tuple[SealedSource, ...] = ()


@dataclass(frozen=True)
class AuditMaterial:
    """Audit evidence for the bundle: a signed checkpoint, entries and proofs.

    ``entries`` are the entries' canonical bytes (one JSON object each, no
    newline), in increasing ``seq``; ``proofs`` maps each seq to its inclusion
    proof hashes against the checkpoint's tree.
    """

    checkpoint_note: str
    origin: str
    tree_size: int
    root_hash: bytes
    entries: Sequence[tuple[int, bytes]]
    proofs: Mapping[int, Sequence[bytes]]
    export_entry_seq: int


@dataclass(frozen=True)
class BundleHeader:
    bundle_id: str
    created: datetime
    created_by: str
    generator: str
    body: dict[str, Any]


@dataclass
class BundleResult:
    path: Path
    size: int
    sha256: str
    manifest_sha256: str
    files: list[fmt.FileEntry] = field(default_factory=list)


class _HashingSink:
    """A write-only, non-seekable file that hashes what goes through it, in a thread.

    Being non-seekable makes :mod:`zipfile` write data descriptors instead of
    seeking back to patch local headers, so the hash is of the final bytes.
    Hashing and writing the archive run in a background thread fed through a
    bounded queue (at most ``_QUEUE`` chunks, so memory stays bounded), which
    lets them overlap with reading and hashing the next blob on another core;
    ``hashlib`` and file writes release the GIL for large buffers.
    """

    _QUEUE = 8

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self._offset = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self._QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="bundle-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self._hash.update(item)
                    self._raw.write(item)
            except BaseException as err:  # handed to the producer at its next call
                self._error = err
            finally:
                self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise OSError(f"writing the bundle failed: {self._error}") from self._error

    def write(self, data: bytes | memoryview) -> int:
        self._check()
        # A copy: the caller reuses its buffer while this chunk waits in the queue.
        self._queue.put(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def seek(self, *_args: object) -> int:
        raise OSError("not seekable")

    def flush(self) -> None:
        self._queue.join()
        self._check()
        self._raw.flush()

    def close(self) -> None:
        """The caller owns and closes the underlying file (after fsync)."""

    def finish(self) -> None:
        """Write everything queued and stop the thread; raise a write error if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._check()

    @property
    def size(self) -> int:
        return self._offset

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def contents_digest_of(statements: Sequence[StatementSpec]) -> str:
    """The contents digest the ``export.created`` entry records, from known digests."""
    return fmt.contents_digest(
        (source.path, source.sha256)
        for spec in statements for source in (spec.statement, *spec.attachments))


class _Zip:
    def __init__(self, sink: _HashingSink, when: datetime) -> None:
        self._zip = zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._date_time = (when.year, when.month, when.day, when.hour, when.minute, when.second)
        self.files: list[fmt.FileEntry] = []

    def _info(self, path: str, size: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = _FILE_ATTR
        info.file_size = size
        return info

    def add_bytes(self, path: str, data: bytes) -> fmt.FileEntry:
        with self._zip.open(self._info(path, len(data)), "w") as out:
            out.write(data)
        entry = fmt.FileEntry(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        self.files.append(entry)
        return entry

    def add_source(self, source: SealedSource) -> fmt.FileEntry:
        hasher = hashlib.sha256()
        size = 0
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        with source.open() as src, self._zip.open(
                self._info(source.path, source.size), "w",
                force_zip64=source.size >= ZIP64_THRESHOLD) as out:
            while True:
                count = src.readinto(view)  # type: ignore[attr-defined]
                if not count:
                    break
                hasher.update(view[:count])
                out.write(view[:count])
                size += count
        digest = hasher.hexdigest()
        if size != source.size or not hmac.compare_digest(digest, source.sha256):
            raise BundleWriteError(
                f"{source.path}: stored ciphertext has size {size} and SHA-256 {digest}, "
                f"the database recorded {source.size} and {source.sha256}")
        entry = fmt.FileEntry(path=source.path, size=size, sha256=digest)
        self.files.append(entry)
        return entry

    def close(self) -> None:
        self._zip.close()


def _json_line(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_manifest(header: BundleHeader, node_key: SigningKey, audit: AuditMaterial,
                   statements: Sequence[StatementSpec], files: Sequence[fmt.FileEntry]) -> bytes:
    import base64

    doc = {
        "format": fmt.FORMAT,
        "bundle_id": header.bundle_id,
        "created": header.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_by": header.created_by,
        "generator": header.generator,
        "receiving_body": header.body,
        "node_key": {"key_id": node_key.public_key.fingerprint,
                     "public_key": node_key.public_key.to_string()},
        "audit": {
            "origin": audit.origin,
            "tree_size": audit.tree_size,
            "root_hash": base64.b64encode(audit.root_hash).decode("ascii"),
            "export_entry_seq": audit.export_entry_seq,
        },
        "contents_digest": contents_digest_of(statements),
        "statements": [
            {"id": spec.id, "key_kind": spec.key_kind, "routing": spec.routing,
             "audit_seqs": list(spec.audit_seqs), "statement": spec.statement.path,
             "attachments": [a.path for a in spec.attachments]}
            for spec in statements
        ],
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"


def write_bundle(target: Path, *, header: BundleHeader, node_key: SigningKey,
                 audit: AuditMaterial, statements: Sequence[StatementSpec]) -> BundleResult:
    """Write the bundle to ``target`` atomically (temp file, fsync, rename).

    Raises :class:`BundleWriteError` if a sealed file differs from what the
    database recorded; the temporary file is then removed.
    """
    import base64

    for spec in statements:
        expected = (fmt.statement_path(spec.id),
                    *(fmt.attachment_path(spec.id, n) for n in range(len(spec.attachments))))
        actual = (spec.statement.path, *(a.path for a in spec.attachments))
        if expected != actual:
            raise BundleWriteError(f"statement {spec.id}: sealed files at unexpected paths")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _HashingSink(raw)
            archive = _Zip(sink, header.created)
            try:
                for spec in statements:
                    archive.add_source(spec.statement)
                    for attachment in spec.attachments:
                        archive.add_source(attachment)
                archive.add_bytes(fmt.CHECKPOINT, audit.checkpoint_note.encode("utf-8"))
                archive.add_bytes(fmt.ENTRIES, b"".join(raw_entry + b"\n"
                                                        for _, raw_entry in audit.entries))
                archive.add_bytes(fmt.PROOFS, b"".join(
                    _json_line({"seq": seq, "tree_size": audit.tree_size,
                                "hashes": [base64.b64encode(h).decode("ascii")
                                           for h in audit.proofs[seq]]}) + b"\n"
                    for seq, _ in audit.entries))
                readme = render_readme(header=header, node_key=node_key, log_origin=audit.origin,
                                       statements=[(s.id, s.statement.path) for s in statements])
                archive.add_bytes(fmt.README, readme.encode("utf-8"))
                listed = list(archive.files)
                manifest = build_manifest(header, node_key, audit, statements, listed)
                manifest_entry = archive.add_bytes(fmt.MANIFEST, manifest)
                archive.add_bytes(fmt.MANIFEST_SIG, node_key.sign(
                    manifest, trusted_comment(header.bundle_id, fmt.MANIFEST)).encode("utf-8"))
                sums = "".join(fmt.sums_line(f.sha256, f.path) for f in archive.files).encode()
                archive.add_bytes(fmt.SUMS, sums)
                archive.add_bytes(fmt.SUMS_SIG, node_key.sign(
                    sums, trusted_comment(header.bundle_id, fmt.SUMS)).encode("utf-8"))
            except BaseException:
                with contextlib.suppress(Exception):  # the temp file is deleted below
                    archive.close()
                with contextlib.suppress(Exception):
                    sink.finish()
                raise
            archive.close()
            sink.finish()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return BundleResult(path=target, size=sink.size, sha256=sink.hexdigest(),
                        manifest_sha256=manifest_entry.sha256, files=listed)
