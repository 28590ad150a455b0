"""Creating an export: select, log, sign a checkpoint, write the bundle, log its digest.

Threat model: the export officer (or someone with their account) may try to
send a statement to a body the witness did not consent to, or one whose
consent was withdrawn; the blob store may have been tampered with since
sealing; and the bundle will be checked by people who trust neither us nor
the courier. So: the rules of :mod:`.selection` are applied per statement;
the ``export.created`` audit entry (who, which body, which statements, the
contents digest) is appended, statements are re-checked under the log's lock
so a concurrent withdrawal cannot slip through, and a checkpoint covering the
entry is signed, all in one transaction; the bundle is then written outside
the transaction (an export of many GiB must not hold the log's lock), each
blob's SHA-256 compared with the digest recorded at sealing while it is
copied; finally ``export.written`` records the bundle file's SHA-256 and size
(or ``export.failed`` the reason). The bundle cannot contain the digest of
itself, hence two entries.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ... import __version__
from ...audit.checkpoint import open_checkpoint
from ...audit.note import NoteSigner
from ...bundle import manifest as fmt
from ...crypto.minisign import SigningKey
from .. import auditlog
from ..errors import ConflictError, NotFoundError, PolicyError, ServiceError
from ..intake.blobstore import FilesystemBlobStore
from ..models.exports import Export, ExportItem, ExportStatus
from ..models.recipients import ReceivingBody
from ..settings import Settings
from .evidence import entries_bytes, inclusion_proofs, seqs_about_statements
from .selection import Chosen, Refusal, candidate_ids, choose, still_active
from .writer import (
    AuditMaterial,
    BundleHeader,
    BundleWriteError,
    SealedSource,
    StatementSpec,
    contents_digest_of,
    write_bundle,
)

ACTION_CREATED = "export.created"
ACTION_WRITTEN = "export.written"
ACTION_FAILED = "export.failed"


class NothingToExportError(PolicyError):
    slug, title = "nothing-to-export", "No statement may be exported"


class ExportFailedError(ServiceError):
    """The bundle could not be written; the failure is in the audit log."""

    status, slug, title = 500, "export-failed", "The export failed"


class StatementsRefusedError(PolicyError):
    slug, title = "statements-refused", "Some statements may not be exported"


@dataclass(frozen=True)
class ExportOutcome:
    export: Export
    refused: list[Refusal]
    checkpoint: str
    path: Path
    key_kinds: list[str]


def export_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports"


def bundle_path(settings: Settings, export_id: str) -> Path:
    return export_dir(settings) / f"bundle-{export_id}.zip"


def _refusals_extra(refused: Sequence[Refusal]) -> dict[str, Any]:
    return {"refused": [{"statement_id": r.statement_id, "code": r.code.value,
                         "reason": r.reason} for r in refused]}


def _load_keys(settings: Settings) -> tuple[SigningKey, NoteSigner]:
    node_key = SigningKey.from_file_text(settings.node_key_path.read_text(encoding="utf-8"), None)
    log_key = auditlog.load_log_signer(settings.log_key_path)
    return node_key, log_key


def _spec(chosen: Chosen, store: FilesystemBlobStore, audit_seqs: tuple[int, ...]) -> StatementSpec:
    sid = chosen.statement.id
    sources = []
    for blob in chosen.blobs:
        path = (fmt.statement_path(sid) if blob.part == 0
                else fmt.attachment_path(sid, blob.part - 1))
        sources.append(SealedSource(path=path, size=blob.size, sha256=blob.sha256,
                                    open=functools.partial(store.open, blob.sha256)))
    routing = json.loads(chosen.statement.routing_json)
    return StatementSpec(id=sid, key_kind=chosen.key_kind.value, routing=routing,
                         audit_seqs=audit_seqs, statement=sources[0],
                         attachments=tuple(sources[1:]))


def _body_doc(body: ReceivingBody, kinds: Sequence[str]) -> dict[str, Any]:
    return {
        "id": body.id, "name": body.name, "key_kind": ",".join(sorted(set(kinds))),
        "recipients": [{"fingerprint": r.fingerprint, "recipient": r.recipient,
                        "organisation": r.organisation, "person": r.person}
                       for r in body.recipients if r.retired_at is None],
    }


def create_export(sessions: sessionmaker[Session], settings: Settings, *, actor: str,
                  body_id: str, statement_ids: Sequence[str] | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  new_only: bool = False, now: datetime | None = None) -> ExportOutcome:
    """Create one export bundle in DATA_DIR/exports and return what was done.

    Raises :class:`StatementsRefusedError` (explicit ids, any refused) or
    :class:`NothingToExportError` (nothing exportable), both with the reason
    per statement, and :class:`NotFoundError` for an unknown body.
    """
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    node_key, log_key = _load_keys(settings)
    store = FilesystemBlobStore(settings.blob_path)
    export_id = str(uuid.uuid4())
    target = bundle_path(settings, export_id)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    # 1. Select, log and sign, in one transaction.
    with sessions() as session:
        body = session.get(ReceivingBody, body_id)
        if body is None:
            raise NotFoundError(f"no receiving body {body_id}")
        ids = candidate_ids(session, body_id, statement_ids=statement_ids, since=since,
                            until=until, new_only=new_only)
        selection = choose(session, body_id, ids)
        if statement_ids is not None and selection.refused:
            raise StatementsRefusedError(
                f"{len(selection.refused)} of {len(ids)} statements may not go to this body",
                extra=_refusals_extra(selection.refused))
        if not selection.chosen:
            raise NothingToExportError("no statement in the selection may go to this body",
                                       extra=_refusals_extra(selection.refused))
        digest = contents_digest_of([_spec(c, store, ()) for c in selection.chosen])
        entry = auditlog.append(session, actor=actor, action=ACTION_CREATED,
                                subject={"export": export_id, "body": body_id},
                                details={"bundle_id": export_id, "body_id": body_id,
                                         "statements": [c.statement.id
                                                        for c in selection.chosen],
                                         "contents_digest": digest,
                                         "key_kinds": sorted({c.key_kind.value
                                                              for c in selection.chosen})},
                                now=created)
        # The append holds the log's lock until commit: a withdrawal racing
        # with this export is either already visible here or comes after it.
        chosen_ids = [c.statement.id for c in selection.chosen]
        changed = still_active(session, chosen_ids)
        if changed:
            raise ConflictError(f"statement {changed[0]} was withdrawn meanwhile; "
                                "nothing was exported")
        history = seqs_about_statements(session, chosen_ids, upto=entry.seq)
        specs = [_spec(c, store, tuple(history[c.statement.id])) for c in selection.chosen]
        note = auditlog.sign_checkpoint(session, log_key)
        checkpoint = open_checkpoint(note, log_key.verifier)
        seqs = sorted({entry.seq, *(s for spec in specs for s in spec.audit_seqs)})
        entries = entries_bytes(session, seqs)
        proofs = inclusion_proofs(session, entries, checkpoint.size, checkpoint.root_hash)
        export = Export(id=export_id, body_id=body_id, key_kind=specs[0].key_kind,
                        created_at=created, created_by=actor, status=ExportStatus.writing,
                        statement_count=len(specs), contents_digest=digest,
                        audit_seq=entry.seq, checkpoint_size=checkpoint.size,
                        file_name=target.name)
        export.items = [ExportItem(statement_id=s.id, position=n) for n, s in enumerate(specs)]
        session.add(export)
        body_doc = _body_doc(body, [s.key_kind for s in specs])
        session.commit()

    # 2. Write the bundle outside the transaction; 3. log its digest or the failure.
    audit = AuditMaterial(checkpoint_note=note, origin=checkpoint.origin,
                          tree_size=checkpoint.size, root_hash=checkpoint.root_hash,
                          entries=entries, proofs=proofs, export_entry_seq=entry.seq)
    header = BundleHeader(bundle_id=export_id, created=created, created_by=actor,
                          generator=f"evidence-intake {__version__}", body=body_doc)
    try:
        result = write_bundle(target, header=header, node_key=node_key, audit=audit,
                              statements=specs)
    except (BundleWriteError, OSError) as err:
        with sessions() as session:
            row = session.get(Export, export_id)
            if row is not None:
                row.status = ExportStatus.failed
                row.failure = str(err)
            auditlog.append(session, actor=actor, action=ACTION_FAILED,
                            subject={"export": export_id, "body": body_id},
                            details={"bundle_id": export_id, "reason": type(err).__name__})
            session.commit()
        raise ExportFailedError(
            "the bundle could not be written (a sealed file differs from the digest recorded "
            "when it was sealed, or the disk failed); the failure is in the audit log") from err
    with sessions() as session:
        auditlog.append(session, actor=actor, action=ACTION_WRITTEN,
                        subject={"export": export_id, "body": body_id},
                        details={"bundle_id": export_id, "bundle_sha256": result.sha256,
                                 "bundle_size": result.size,
                                 "manifest_sha256": result.manifest_sha256})
        row = session.get(Export, export_id)
        if row is None:
            raise NotFoundError(f"export {export_id} vanished")
        row.status = ExportStatus.complete
        row.bundle_sha256 = result.sha256
        row.bundle_size = result.size
        session.commit()
        session.refresh(row)
        _ = list(row.items)
        session.expunge(row)
    return ExportOutcome(export=row, refused=selection.refused, checkpoint=note, path=target,
                         key_kinds=sorted({spec.key_kind for spec in specs}))

