"""The audit evidence inside a bundle: checkpoint, entries, inclusion proofs, relations.

These are steps 6-8 of bundle verification (see :mod:`.verify`). The
checkpoint is opened with the investigator's pinned log key (the signature
is checked before its text is parsed); each line of ``audit/entries.jsonl``
is an entry's canonical bytes, hashed exactly as read into its RFC 9162 leaf
hash and proved against the checkpoint's root; only then is the line parsed
and its fields compared with the manifest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..audit import checkpoint as audit_checkpoint
from ..audit import merkle
from ..audit.entry import Entry
from ..audit.errors import AuditError
from ..audit.note import NoteVerifier
from ..crypto.errors import CryptoError
from .archive import SafeArchive
from .errors import BundleError, EvidenceError
from .manifest import CHECKPOINT, ENTRIES, PROOFS, Manifest
from .report import Report

LogKey = NoteVerifier

MAX_CHECKPOINT = 1 << 20
MAX_AUDIT_FILE = 256 << 20
EXPORT_ACTION = "export.created"
SEALED_ACTION = "statement.sealed"
#: Actions after which a statement may no longer be exported.
WITHDRAWN_ACTIONS = frozenset({"statement.consent_withdrawn", "statement.purged"})


@dataclass
class EntryRecord:
    """One audit entry of the bundle, with what was proved about it."""

    seq: int
    raw: bytes
    fields: Mapping[str, Any]
    entry_hash: str
    proved: bool = False

    @property
    def action(self) -> str:
        return str(self.fields.get("action", ""))


@dataclass
class AuditEvidence:
    origin: str = ""
    tree_size: int = 0
    root_hash: str = ""
    checkpoint_ok: bool = False
    entries: dict[int, EntryRecord] = field(default_factory=dict)

    def about(self, statement_id: str) -> list[EntryRecord]:
        """Entries whose subject mentions ``statement_id``, in log order."""
        return [entry for _, entry in sorted(self.entries.items())
                if mentions(entry.fields.get("subject"), statement_id)]


def mentions(value: Any, needle: str) -> bool:
    """True if ``needle`` is one of the strings anywhere inside ``value``."""
    return any(item == needle for item in _strings(value))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def decode_b64(value: Any, what: str, subject: str) -> bytes:
    """Strict standard base64 (canonical, padded), as in checkpoints and proofs."""
    if not isinstance(value, str):
        raise EvidenceError(f"{what} is not a base64 string", subject=subject)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise EvidenceError(f"{what} is not valid base64", subject=subject) from err
    if base64.b64encode(raw).decode("ascii") != value:
        raise EvidenceError(f"{what} is not canonical base64", subject=subject)
    return raw


def load_json_object(raw: bytes, subject: str) -> Mapping[str, Any]:
    """Parse one JSON object, refusing duplicate keys (two readers must agree)."""
    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise EvidenceError(f"duplicate key {key!r}", subject=subject)
            out[key] = value
        return out

    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs_hook)
    except (UnicodeDecodeError, ValueError) as err:
        raise EvidenceError(f"not valid UTF-8 JSON: {err}", subject=subject) from err
    if not isinstance(value, dict):
        raise EvidenceError("not a JSON object", subject=subject)
    return value


def _lines(data: bytes, name: str) -> list[bytes]:
    if data and not data.endswith(b"\n"):
        raise EvidenceError(f"{name} does not end with a newline", subject=name)
    return data.split(b"\n")[:-1] if data else []


def check_evidence(archive: SafeArchive, manifest: Manifest, log_key: LogKey,
                   report: Report) -> AuditEvidence:
    """Steps 6-8: checkpoint, inclusion proofs, relations. Failures go to ``report``."""
    evidence = AuditEvidence()
    # 6. The checkpoint, opened with the pinned log key, must match the manifest.
    try:
        note_text = archive.read_small(CHECKPOINT, MAX_CHECKPOINT).decode("utf-8")
        checkpoint = audit_checkpoint.open_checkpoint(note_text, log_key)
    except (AuditError, CryptoError, UnicodeDecodeError, ValueError) as err:
        report.failed("checkpoint signature", EvidenceError(
            f"checkpoint does not verify with the pinned log key ({err})", subject=CHECKPOINT))
        return evidence
    root_b64 = base64.b64encode(checkpoint.root_hash).decode("ascii")
    evidence.origin, evidence.tree_size = checkpoint.origin, checkpoint.size
    evidence.root_hash, evidence.checkpoint_ok = root_b64, True
    report.passed("checkpoint signature", CHECKPOINT,
                  f"{checkpoint.origin}, size {checkpoint.size}")
    if (checkpoint.origin, checkpoint.size, root_b64) != (
            manifest.log_origin, manifest.tree_size, manifest.root_hash):
        report.failed("checkpoint", EvidenceError(
            f"checkpoint ({checkpoint.origin}, {checkpoint.size}, {root_b64}) differs from the "
            f"manifest ({manifest.log_origin}, {manifest.tree_size}, {manifest.root_hash})",
            subject=CHECKPOINT))

    # 7. Entries and their inclusion proofs.
    try:
        _load_entries(archive, evidence, report)
        _check_proofs(archive, checkpoint.root_hash, evidence, report)
    except BundleError as err:
        report.failed("audit entries", err)
        return evidence

    # 8. Relations between the entries, the manifest and the files.
    _check_relations(manifest, evidence, report)
    return evidence


def _load_entries(archive: SafeArchive, evidence: AuditEvidence, report: Report) -> None:
    previous = -1
    for number, line in enumerate(_lines(archive.read_small(ENTRIES, MAX_AUDIT_FILE), ENTRIES), 1):
        try:
            fields = Entry.from_canonical(line).to_json()
        except AuditError as err:
            raise EvidenceError(f"{ENTRIES} line {number} is not a canonical audit entry: {err}",
                                subject=ENTRIES) from err
        seq = fields["seq"]
        if seq <= previous:
            raise EvidenceError(f"entry seq {seq!r} is not an integer above {previous}",
                                subject=ENTRIES)
        previous = seq
        evidence.entries[seq] = EntryRecord(
            seq=seq, raw=line, fields=fields, entry_hash=hashlib.sha256(line).hexdigest())
    report.passed("audit entries", ENTRIES, f"{len(evidence.entries)} entries")


def _check_proofs(archive: SafeArchive, root: bytes, evidence: AuditEvidence,
                  report: Report) -> None:
    proofs: dict[int, Mapping[str, Any]] = {}
    for line in _lines(archive.read_small(PROOFS, MAX_AUDIT_FILE), PROOFS):
        proof = load_json_object(line, PROOFS)
        seq = proof.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq in proofs:
            raise EvidenceError(f"proof for seq {seq!r} is malformed or repeated", subject=PROOFS)
        proofs[seq] = proof
    for seq in sorted(set(proofs) - set(evidence.entries)):
        report.failed("inclusion proof", EvidenceError(
            f"proof for entry {seq}, which is not in {ENTRIES}", subject=f"entry {seq}"))
    for seq, entry in sorted(evidence.entries.items()):
        subject = f"entry {seq}"
        try:
            if seq not in proofs:
                raise EvidenceError(f"no inclusion proof for entry {seq}", subject=subject)
            proof = proofs[seq]
            if proof.get("tree_size") != evidence.tree_size:
                raise EvidenceError(
                    f"proof for entry {seq} is against tree size {proof.get('tree_size')!r}, "
                    f"checkpoint has {evidence.tree_size}", subject=subject)
            hashes = proof.get("hashes")
            if not isinstance(hashes, list):
                raise EvidenceError(f"proof for entry {seq} has no hash list", subject=subject)
            path = [decode_b64(h, f"proof hash of entry {seq}", subject) for h in hashes]
            merkle.verify_inclusion(merkle.leaf_hash(entry.raw), seq, evidence.tree_size,
                                    path, root)
        except AuditError as err:
            report.failed("inclusion proof", EvidenceError(
                f"entry {seq} is not included in the checkpoint: {err}", subject=subject))
            continue
        except EvidenceError as err:
            report.failed("inclusion proof", err)
            continue
        entry.proved = True
        report.passed("inclusion proof", subject, entry.entry_hash)


def _check_relations(manifest: Manifest, evidence: AuditEvidence, report: Report) -> None:
    digests = {entry.path: entry.sha256 for entry in manifest.files}
    statement_ids = {statement.id for statement in manifest.statements}
    export_seq = manifest.export_entry_seq
    export = evidence.entries.get(export_seq)
    subject = f"entry {export_seq}"
    if export is None or export.action != EXPORT_ACTION:
        report.failed("export entry", EvidenceError(
            f"entry {export_seq} is not an {EXPORT_ACTION} entry in {ENTRIES}", subject=subject))
    else:
        details = export.fields.get("details")
        details = details if isinstance(details, Mapping) else {}
        problems = []
        if details.get("bundle_id") != manifest.bundle_id:
            problems.append(f"bundle id {details.get('bundle_id')!r}")
        if details.get("body_id") != manifest.body_id:
            problems.append(f"receiving body {details.get('body_id')!r}")
        listed = details.get("statements")
        if not isinstance(listed, list) or sorted(map(str, listed)) != sorted(statement_ids):
            problems.append(f"statements {listed!r}")
        if not isinstance(details.get("contents_digest"), str) or not hmac.compare_digest(
                details["contents_digest"], manifest.contents_digest):
            problems.append(f"contents digest {details.get('contents_digest')!r}")
        if export.fields.get("actor") != manifest.created_by:
            problems.append(f"actor {export.fields.get('actor')!r}")
        if problems:
            report.failed("export entry", EvidenceError(
                f"the logged export differs from this bundle: {', '.join(problems)}",
                subject=subject))
        else:
            report.passed("export entry", subject, manifest.bundle_id)

    for statement in manifest.statements:
        about = evidence.about(statement.id)
        seqs = {entry.seq for entry in about if entry.seq != export_seq}
        if seqs != set(statement.audit_seqs):
            report.failed("statement history", EvidenceError(
                f"statement {statement.id}: manifest lists entries {sorted(statement.audit_seqs)},"
                f" the bundle has {sorted(seqs)}", subject=statement.statement))
        sealed = [entry for entry in about if entry.action == SEALED_ACTION]
        expected = [digests.get(path) for path in statement.sealed_files]
        if not sealed:
            report.failed("statement sealed", EvidenceError(
                f"statement {statement.id} has no {SEALED_ACTION} entry", subject=statement.id))
        elif expected not in _logged_copies(sealed[0], statement.key_kind):
            report.failed("statement sealed", EvidenceError(
                f"statement {statement.id}: the SHA-256 digests of its sealed files in the bundle "
                f"are not the {statement.key_kind} copy logged in entry {sealed[0].seq}",
                subject=statement.statement))
        else:
            report.passed("statement sealed", statement.id, f"entry {sealed[0].seq}")
        for entry in about:
            if entry.action in WITHDRAWN_ACTIONS and entry.seq < export_seq:
                report.failed("consent", EvidenceError(
                    f"statement {statement.id}: consent withdrawn in entry {entry.seq} before "
                    f"the export", subject=f"entry {entry.seq}"))
    for seq, entry in sorted(evidence.entries.items()):
        if seq != export_seq and not any(mentions(entry.fields.get("subject"), sid)
                                         for sid in statement_ids):
            report.failed("unrelated entry", EvidenceError(
                f"entry {seq} is about none of the bundle's statements", subject=f"entry {seq}"))


def _logged_copies(entry: EntryRecord, key_kind: str) -> list[list[Any]]:
    """The digest lists [statement, attachment 0, 1, ...] of each logged copy of ``key_kind``.

    A ``statement.sealed`` entry's details carry ``copies``: one per key kind,
    each with the SHA-256 of its statement and attachments in order.
    """
    details = entry.fields.get("details")
    copies = details.get("copies") if isinstance(details, Mapping) else None
    out = []
    for copy in copies if isinstance(copies, list) else []:
        if not isinstance(copy, Mapping) or copy.get("key_kind") != key_kind:
            continue
        main = copy.get("statement")
        attachments = copy.get("attachments")
        if not isinstance(main, Mapping) or not isinstance(attachments, list):
            continue
        out.append([main.get("sha256"), *(a.get("sha256") if isinstance(a, Mapping) else None
                                          for a in attachments)])
    return out
