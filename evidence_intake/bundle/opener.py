"""Opening a verified bundle: decrypt what the investigator's identities can open.

Threat model: the output directory is on the investigator's machine, and the
bundle's names must not be able to write anywhere else. The directory must
be new or empty; everything inside is created by this module with exclusive
creation, statement directories are named by validated ids, attachments by
their index plus a sanitised original name. Each file is decrypted to a
temporary file beside its final name, and renamed only after age has
authenticated the whole payload AND the ciphertext read during decryption
has the SHA-256 that verification established; anything else is deleted, so
plaintext released before a failure never remains. The ciphertext digest
check also closes the gap between verifying and opening: a bundle swapped
on disk in between is detected.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..crypto import age
from ..crypto.age.stanza import Identity
from ..crypto.errors import AgeError, NoIdentityMatchError
from .archive import SafeArchive
from .errors import OutputError
from .manifest import Manifest, StatementEntry
from .names import safe_filename
from .verify import Verification

NOT_SEALED = "not sealed to this identity"
DECRYPTED = "decrypted"


@dataclass
class Item:
    """One sealed file of the bundle and what opening it produced."""

    statement_id: str
    kind: str
    bundle_path: str
    ciphertext_size: int
    ciphertext_sha256: str
    status: str = ""
    ciphertext_sha256_read: str = ""
    output: str = ""
    plaintext_size: int = 0
    plaintext_sha256: str = ""
    declared_sha256: str = ""
    original_name: str = ""

    @property
    def ok(self) -> bool:
        return self.status == DECRYPTED


@dataclass
class OpenResult:
    out_dir: Path
    items: list[Item] = field(default_factory=list)

    @property
    def all_opened(self) -> bool:
        return all(item.ok for item in self.items)


class _HashingReader:
    """Wraps the member stream so the ciphertext is hashed as age reads it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count: int = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self.hash.update(memoryview(buffer)[:count])
        self.size += count
        return count

    def readable(self) -> bool:
        return True


class _HashingWriter:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()


def prepare_output(out_dir: Path) -> None:
    """Create ``out_dir`` (0700), or accept it only if it is an empty real directory."""
    if out_dir.is_symlink():
        raise OutputError(f"{out_dir} is a symbolic link; give a new directory",
                          subject=str(out_dir))
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputError(f"{out_dir} is not a directory", subject=str(out_dir))
        if any(out_dir.iterdir()):
            raise OutputError(f"{out_dir} is not empty; give a new or empty directory",
                              subject=str(out_dir))
        return
    try:
        out_dir.mkdir(mode=0o700, parents=False)
    except OSError as err:
        raise OutputError(f"cannot create {out_dir}: {err.strerror}",
                          subject=str(out_dir)) from err


@contextlib.contextmanager
def _staged(final: Path) -> Iterator[BinaryIO]:
    """A temp file beside ``final``, renamed to ``final`` on success; never overwrites.

    ``final`` is first created exclusively (``O_EXCL | O_NOFOLLOW``: it must not
    exist, not even as a link), then the temp file is renamed over that empty
    placeholder. Unlike a hard link this works on FAT and exFAT sticks too.
    """
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _decrypt_member(archive: SafeArchive, item: Item, identities: Sequence[Identity],
                    final: Path) -> None:
    """Decrypt one member into ``final``, setting ``item.status`` whatever happens."""

    class _DiscardError(Exception):
        pass

    try:
        with archive.open_member(item.bundle_path) as member, _staged(final) as out:
            reader = _HashingReader(member)
            writer = _HashingWriter(out)
            try:
                age.decrypt(reader, writer, identities)  # type: ignore[arg-type]
            except NoIdentityMatchError:
                item.status = NOT_SEALED
                raise _DiscardError from None
            except AgeError as err:
                item.status = f"failed: {type(err).__name__} (plaintext discarded)"
                raise _DiscardError from None
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError):
                item.status = "failed: the bundle changed since verification (discarded)"
                raise _DiscardError from None
            item.ciphertext_sha256_read = reader.hash.hexdigest()
            if reader.size != item.ciphertext_size or not hmac.compare_digest(
                    item.ciphertext_sha256_read, item.ciphertext_sha256):
                item.status = "failed: ciphertext changed since verification (discarded)"
                raise _DiscardError
            item.plaintext_size = writer.size
            item.plaintext_sha256 = writer.hash.hexdigest()
    except _DiscardError:
        return
    item.status = DECRYPTED


def _record(path: Path) -> Mapping[str, Any] | None:
    """The sealed record of a decrypted statement, or None if it is not JSON."""
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    sealed = doc.get("sealed", doc)
    return sealed if isinstance(sealed, dict) else None


def _typed_bytes(text: Mapping[str, Any]) -> bytes | None:
    """The statement's bytes as typed, if present and matching their recorded SHA-256."""
    encoded, digest = text.get("typed_base64"), text.get("typed_sha256")
    if not isinstance(encoded, str) or not isinstance(digest, str):
        return None
    try:
        typed = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return typed if hmac.compare_digest(hashlib.sha256(typed).hexdigest(), digest) else None


def _write_text(final: Path, data: bytes) -> None:
    with _staged(final) as out:
        out.write(data)


def _open_statement(archive: SafeArchive, manifest: Manifest, verification: Verification,
                    statement: StatementEntry, identities: Sequence[Identity],
                    out_dir: Path) -> list[Item]:
    digests = {entry.path: entry for entry in manifest.files}
    base = out_dir / statement.id
    base.mkdir(mode=0o700)
    items = []
    main = Item(statement_id=statement.id, kind="statement", bundle_path=statement.statement,
                ciphertext_size=digests[statement.statement].size,
                ciphertext_sha256=digests[statement.statement].sha256)
    items.append(main)
    _decrypt_member(archive, main, identities, base / "statement.json")
    record = None
    if main.ok:
        main.output = f"{statement.id}/statement.json"
        record = _record(base / "statement.json")
        text = record.get("statement") if record else None
        if isinstance(text, Mapping) and isinstance(text.get("unicode"), str):
            unicode_text = text["unicode"].encode("utf-8")
            _write_text(base / "statement.txt", unicode_text)
            typed = _typed_bytes(text)
            if typed is not None and typed != unicode_text:
                # E.g. Zawgyi: the bytes exactly as the counsellor typed them.
                _write_text(base / "statement.typed.txt", typed)
    declared: dict[int, Mapping[str, Any]] = {}
    if record and isinstance(record.get("attachments"), list):
        for meta in record["attachments"]:
            if isinstance(meta, Mapping) and isinstance(meta.get("index"), int):
                declared[meta["index"]] = meta
    if statement.attachments:
        (base / "attachments").mkdir(mode=0o700)
    for index, path in enumerate(statement.attachments):
        meta = declared.get(index, {})
        original = meta.get("filename") if isinstance(meta.get("filename"), str) else ""
        name = f"{index}-{safe_filename(str(original), 'attachment')}" if original \
            else f"{index}.bin"
        item = Item(statement_id=statement.id, kind="attachment", bundle_path=path,
                    ciphertext_size=digests[path].size, ciphertext_sha256=digests[path].sha256,
                    original_name=str(original),
                    declared_sha256=str(meta.get("sha256", "")))
        items.append(item)
        final = base / "attachments" / name
        _decrypt_member(archive, item, identities, final)
        if item.ok:
            item.output = f"{statement.id}/attachments/{name}"
            if item.declared_sha256 and not hmac.compare_digest(item.declared_sha256,
                                                                item.plaintext_sha256):
                final.unlink()
                item.output = ""
                item.status = "failed: plaintext SHA-256 differs from the sealed record (discarded)"
    return items


def open_bundle(archive: SafeArchive, verification: Verification,
                identities: Sequence[Identity], out_dir: Path) -> OpenResult:
    """Decrypt every statement and attachment ``identities`` can open into ``out_dir``.

    The caller has already decided whether to proceed (verification passed,
    or ``--force``); ``out_dir`` must have been prepared by
    :func:`prepare_output`. Items that cannot be opened are reported with
    their reason (``not sealed to this identity`` and the age failure kinds).
    """
    manifest = verification.manifest
    if manifest is None:
        raise OutputError("the manifest could not be authenticated or parsed; nothing to open")
    result = OpenResult(out_dir=out_dir)
    listed = {entry.path for entry in manifest.files}
    for statement in manifest.statements:
        if not all(path in listed and path in archive.members
                   for path in statement.sealed_files):
            for path in statement.sealed_files:
                result.items.append(Item(statement_id=statement.id, kind="file",
                                         bundle_path=path, ciphertext_size=0,
                                         ciphertext_sha256="", status="failed: missing"))
            continue
        result.items.extend(_open_statement(archive, manifest, verification, statement,
                                            identities, out_dir))
    return result
