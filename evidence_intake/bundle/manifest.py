"""The bundle manifest (``manifest.json``, format ``evidence-intake/bundle/v1``).

Only :func:`parse_manifest` turns bytes into a :class:`Manifest`, and the
verifier calls it only after the minisign signature over those exact bytes
has been checked with the pinned node key (a signature is checked before the
signed text is parsed). The parser is strict: unknown format, duplicate JSON
keys, a missing field or a value of the wrong type is a :class:`ManifestError`.

The byte layout of the bundle and every field are specified in
docs/formats/bundle.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .archive import check_member_name
from .errors import ArchiveError, ManifestError

FORMAT = "evidence-intake/bundle/v1"

MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.json.minisig"
SUMS = "SHA256SUMS"
SUMS_SIG = "SHA256SUMS.minisig"
README = "README.txt"
CHECKPOINT = "audit/checkpoint"
ENTRIES = "audit/entries.jsonl"
PROOFS = "audit/proofs.jsonl"
#: Files that are not listed in the manifest's ``files`` (they sign or index it).
UNLISTED = frozenset({MANIFEST, MANIFEST_SIG, SUMS, SUMS_SIG})

#: Statement ids become directory names; they must be plain tokens.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def statement_path(statement_id: str) -> str:
    return f"statements/{statement_id}/statement.age"


def attachment_path(statement_id: str, index: int) -> str:
    return f"statements/{statement_id}/attachments/{index}.age"


def sums_line(sha256_hex: str, path: str) -> str:
    """One line of ``sha256sum`` output (text mode: two spaces)."""
    return f"{sha256_hex}  {path}\n"


def contents_digest(files: Iterable[tuple[str, str]]) -> str:
    """SHA-256 over the sealed files, as recorded in the ``export.created`` audit entry.

    ``files`` are (path, sha256 hex) pairs of the statement and attachment
    files. The digest is SHA-256 of their ``sha256sum`` lines sorted by path
    (byte order), so it can be recomputed with
    ``sha256sum statements/*/statement.age statements/*/attachments/*.age |
    LC_ALL=C sort -k2 | sha256sum``.
    """
    text = "".join(sums_line(digest, path) for path, digest in sorted(
        files, key=lambda item: item[0].encode("utf-8")))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class StatementEntry:
    id: str
    key_kind: str
    statement: str
    attachments: tuple[str, ...]
    audit_seqs: tuple[int, ...]
    routing: Mapping[str, Any]

    @property
    def sealed_files(self) -> tuple[str, ...]:
        return (self.statement, *self.attachments)


@dataclass(frozen=True)
class Recipient:
    fingerprint: str
    recipient: str
    organisation: str
    person: str


@dataclass(frozen=True)
class Manifest:
    bundle_id: str
    created: str
    created_by: str
    generator: str
    body_id: str
    body_name: str
    key_kind: str
    recipients: tuple[Recipient, ...]
    node_key_id: str
    node_public_key: str
    log_origin: str
    tree_size: int
    root_hash: str
    export_entry_seq: int
    contents_digest: str
    statements: tuple[StatementEntry, ...]
    files: tuple[FileEntry, ...]

    def file(self, path: str) -> FileEntry | None:
        for entry in self.files:
            if entry.path == path:
                return entry
        return None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ManifestError(f"duplicate key {key!r} in manifest", subject=MANIFEST)
        out[key] = value
    return out


def _field(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"manifest: {where}.{key} is missing", subject=MANIFEST)
    value = obj[key]
    if kind is int and isinstance(value, bool):
        raise ManifestError(f"manifest: {where}.{key} must be an integer", subject=MANIFEST)
    if not isinstance(value, kind):
        raise ManifestError(f"manifest: {where}.{key} must be {kind.__name__}", subject=MANIFEST)
    return value


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"manifest: {where} must be a path", subject=MANIFEST)
    try:
        check_member_name(value)
    except ArchiveError as err:
        raise ManifestError(f"manifest: unsafe path in {where}: {value!r}",
                            subject=MANIFEST) from err
    return value


def parse_manifest(data: bytes) -> Manifest:
    """Parse a manifest whose signature has ALREADY been verified.

    Raises :class:`ManifestError` for anything that is not a well-formed v1
    manifest. It does not look at the archive: the verifier compares the two.
    """
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError) as err:
        raise ManifestError(f"manifest is not valid UTF-8 JSON: {err}", subject=MANIFEST) from err
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object", subject=MANIFEST)
    if doc.get("format") != FORMAT:
        raise ManifestError(f"unknown manifest format {doc.get('format')!r} (expected {FORMAT})",
                            subject=MANIFEST)
    body = _field(doc, "receiving_body", dict, "")
    node = _field(doc, "node_key", dict, "")
    audit = _field(doc, "audit", dict, "")
    recipients = tuple(
        Recipient(fingerprint=_field(r, "fingerprint", str, "recipients[]"),
                  recipient=_field(r, "recipient", str, "recipients[]"),
                  organisation=_field(r, "organisation", str, "recipients[]"),
                  person=_field(r, "person", str, "recipients[]"))
        for r in _field(body, "recipients", list, "receiving_body"))
    statements = []
    for raw in _field(doc, "statements", list, ""):
        if not isinstance(raw, dict):
            raise ManifestError("manifest: statements[] must be objects", subject=MANIFEST)
        sid = _field(raw, "id", str, "statements[]")
        if not _ID.match(sid):
            raise ManifestError(f"manifest: invalid statement id {sid!r}", subject=MANIFEST)
        seqs = _field(raw, "audit_seqs", list, f"statements[{sid}]")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seqs):
            raise ManifestError(f"manifest: statements[{sid}].audit_seqs must be integers",
                                subject=MANIFEST)
        statements.append(StatementEntry(
            id=sid,
            key_kind=_field(raw, "key_kind", str, f"statements[{sid}]"),
            statement=_path(_field(raw, "statement", str, f"statements[{sid}]"),
                            f"statements[{sid}].statement"),
            attachments=tuple(_path(a, f"statements[{sid}].attachments")
                              for a in _field(raw, "attachments", list, f"statements[{sid}]")),
            audit_seqs=tuple(seqs),
            routing=_field(raw, "routing", dict, f"statements[{sid}]"),
        ))
    files = []
    for raw in _field(doc, "files", list, ""):
        if not isinstance(raw, dict):
            raise ManifestError("manifest: files[] must be objects", subject=MANIFEST)
        digest = _field(raw, "sha256", str, "files[]")
        if not _HEX64.match(digest):
            raise ManifestError(f"manifest: bad sha256 {digest!r}", subject=MANIFEST)
        size = _field(raw, "size", int, "files[]")
        if size < 0:
            raise ManifestError("manifest: negative file size", subject=MANIFEST)
        files.append(FileEntry(path=_path(raw.get("path"), "files[].path"), size=size,
                               sha256=digest))
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise ManifestError("manifest: a path is listed twice in files", subject=MANIFEST)
    ids = [s.id for s in statements]
    if len(set(ids)) != len(ids):
        raise ManifestError("manifest: a statement is listed twice", subject=MANIFEST)
    return Manifest(
        bundle_id=_field(doc, "bundle_id", str, ""),
        created=_field(doc, "created", str, ""),
        created_by=_field(doc, "created_by", str, ""),
        generator=_field(doc, "generator", str, ""),
        body_id=_field(body, "id", str, "receiving_body"),
        body_name=_field(body, "name", str, "receiving_body"),
        key_kind=_field(body, "key_kind", str, "receiving_body"),
        recipients=recipients,
        node_key_id=_field(node, "key_id", str, "node_key"),
        node_public_key=_field(node, "public_key", str, "node_key"),
        log_origin=_field(audit, "origin", str, "audit"),
        tree_size=_field(audit, "tree_size", int, "audit"),
        root_hash=_field(audit, "root_hash", str, "audit"),
        export_entry_seq=_field(audit, "export_entry_seq", int, "audit"),
        contents_digest=_field(doc, "contents_digest", str, ""),
        statements=tuple(statements),
        files=tuple(files),
    )


def parse_sums(data: bytes) -> dict[str, str]:
    """Parse ``SHA256SUMS`` (``sha256sum`` text output) into {path: digest}."""
    out: dict[str, str] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError("SHA256SUMS is not UTF-8", subject=SUMS) from err
    if text and not text.endswith("\n"):
        raise ManifestError("SHA256SUMS does not end with a newline", subject=SUMS)
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, path = line.partition("  ")
        if not sep or not _HEX64.match(digest) or path in out:
            raise ManifestError(f"SHA256SUMS line {number} is malformed or repeated", subject=SUMS)
        out[path] = digest
    return out
