"""Statements in the database: commit, receipts, listing, withdrawal and purge.

Order of a submission (docs/intake.md, "Atomicity"):

1. every blob is sealed into a temporary file, fsynced and renamed to its
   digest while the request streams (``Submission``);
2. one database transaction inserts the statement, its bodies, blobs and
   recipients *and* appends the audit entry (``committer.commit_submissions``,
   several statements per transaction under load);
3. if step 2 fails or never happens (error, disconnect, crash), the blobs of
   step 1 are unreferenced: the request deletes them itself, and after a crash
   :func:`collect_garbage` deletes them once older than the grace period.

A statement therefore exists with all its blobs and its audit entry, or not at
all. Purge runs the other way round: the rows are marked purged and the audit
entry written in one transaction, then the files are deleted; a crash in
between leaves unreferenced blobs that garbage collection removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from ...schemas.statements import RECEIPT_SCHEMA, AuditRef, Receipt, Routing, StatementSummary
from .. import audit_hook, auditlog
from ..errors import NotFoundError
from ..models.statements import (
    SealedBlob,
    Statement,
    StatementBody,
    StatementRecipient,
    StatementStatus,
)
from ..recipient_sets import ActiveKey, active_recipients_for_bodies
from .blobstore import FilesystemBlobStore, GarbageReport
from .errors import (
    InvalidStatementError,
    StatementNotFoundError,
    StatementStateError,
)

ACTION_SEALED = "statement.sealed"
ACTION_WITHDRAWN = "statement.consent_withdrawn"
ACTION_PURGED = "statement.purged"
_STATEMENTS: Table = Statement.__table__  # type: ignore[assignment]  # a mapped Table
_BODIES: Table = StatementBody.__table__  # type: ignore[assignment]
_BLOBS: Table = SealedBlob.__table__  # type: ignore[assignment]
_RECIPIENTS: Table = StatementRecipient.__table__  # type: ignore[assignment]


# ------------------------------------------------------------------ helpers


def active_keys(session: Session | Connection,
                body_ids: Sequence[str]) -> dict[str, list[ActiveKey]]:
    """The active keys of each consented body; an unknown body is a 422."""
    try:
        return active_recipients_for_bodies(session, body_ids)
    except NotFoundError as err:
        raise InvalidStatementError(err.detail, field="record.sealed.consent.sharing") from None


def _audit(session: Session, *, actor: str, action: str, subject: str,
           details: dict[str, Any]) -> AuditRef:
    entry = audit_hook.record(session, actor=actor, action=action,
                              subject={"statement": subject}, details=details)
    digest = entry.entry_hash()
    return AuditRef(seq=entry.seq, entry_hash=digest.hex() if isinstance(digest, bytes)
                    else str(digest))


def latest_checkpoint(session: Session | Connection) -> str | None:
    """The newest signed checkpoint note, or None before the first one is signed."""

    return auditlog.latest_checkpoint(session)


def _load(session: Session, statement_id: str) -> Statement:
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise StatementNotFoundError(f"no statement {statement_id}")
    return statement


def _copies(routing: Routing) -> list[Any]:
    return list(routing.copies or [])


# ------------------------------------------------------------------ submission


_AMENDABLE = select(_STATEMENTS.c.counsellor_id, _STATEMENTS.c.status).where(
    _STATEMENTS.c.id == bindparam("statement"))


def check_amendable(session: Session | Connection, amends: str, *, account_id: str,
                    is_admin: bool) -> None:
    """An amendment points to an existing, active statement of the same counsellor."""
    original = session.execute(_AMENDABLE, {"statement": amends}).one_or_none()
    if original is None or not (is_admin or original.counsellor_id == account_id):
        raise StatementNotFoundError(f"no statement {amends} to amend",
                                     field="record.routing.amends")
    if StatementStatus(original.status) is not StatementStatus.active:
        raise StatementStateError(f"statement {amends} was withdrawn and cannot be amended",
                                  field="record.routing.amends")


# ------------------------------------------------------------------ reading


def build_receipt(statement_id: str, created_at: datetime, amends: str | None,
             status: StatementStatus, routing: Routing, audit: AuditRef,
             checkpoint: str | None) -> Receipt:
    return Receipt(
        schema_=RECEIPT_SCHEMA,
        statement_id=statement_id,
        created_at=created_at,
        amends=amends,
        status=status.value,
        copies=_copies(routing),
        audit=audit,
        checkpoint=checkpoint,
    )


def get_statement(session: Session, statement_id: str, *, account_id: str,
                  is_admin: bool) -> Statement:
    """A statement visible to the account (its counsellor, or an admin); 404 otherwise."""
    statement = session.get(Statement, statement_id)
    if statement is None or not (is_admin or statement.counsellor_id == account_id):
        raise StatementNotFoundError(f"no statement {statement_id}")
    return statement


def routing_of(statement: Statement) -> Routing:
    return Routing.model_validate_json(statement.routing_json)


def receipt_for(session: Session, statement: Statement) -> Receipt:
    audit = AuditRef(seq=statement.audit_seq, entry_hash=statement.audit_entry_hash)
    return build_receipt(statement.id, statement.created_at, statement.amends_id, statement.status,
                    routing_of(statement), audit, latest_checkpoint(session))


def summary_of(statement: Statement) -> StatementSummary:
    return StatementSummary(
        routing=routing_of(statement),
        status=statement.status.value,
        withdrawn_at=statement.withdrawn_at,
        purged_at=statement.purged_at,
        audit=AuditRef(seq=statement.audit_seq, entry_hash=statement.audit_entry_hash),
    )


def list_statements(session: Session, *, counsellor_id: str, limit: int,
                    before: datetime | None = None) -> list[StatementSummary]:
    """A counsellor's own statements, newest first: routing metadata and status only."""
    query = select(Statement).where(Statement.counsellor_id == counsellor_id)
    if before is not None:
        query = query.where(Statement.created_at < before)
    query = query.order_by(Statement.created_at.desc(), Statement.id).limit(limit)
    return [summary_of(row) for row in session.scalars(query)]


def exportable(session: Session, statement_ids: Sequence[str]) -> set[str]:
    """The ids among ``statement_ids`` that may still be exported (consent not withdrawn)."""
    if not statement_ids:
        return set()
    query = select(Statement.id).where(Statement.id.in_(list(statement_ids)),
                                       Statement.status == StatementStatus.active)
    return set(session.scalars(query))


# ------------------------------------------------------------------ withdrawal


def _amendment_chain(session: Session, root: Statement) -> list[Statement]:
    """The statement and every statement amending it, transitively."""
    chain, frontier = [root], [root.id]
    while frontier:
        rows = list(session.scalars(select(Statement).where(Statement.amends_id.in_(frontier))))
        chain.extend(rows)
        frontier = [row.id for row in rows]
    return chain


def withdraw(
    session: Session,
    store: FilesystemBlobStore,
    statement: Statement,
    *,
    actor: str,
    withdrawn_at: datetime,
    purge: bool,
    now: datetime | None = None,
) -> list[str]:
    """Record the witness's withdrawal of consent for ``statement`` and its amendments.

    Every statement of the chain is marked withdrawn (never exported again) with
    one audit entry each; with ``purge`` their ciphertext rows become tombstones
    (digests kept) and, after the commit, the blob files are deleted. Returns
    the ids affected. Withdrawing twice is a 409, purging a withdrawn statement
    is allowed.
    """
    recorded = now or datetime.now(UTC)
    chain = _amendment_chain(session, statement)
    if statement.status is StatementStatus.purged or (
            statement.status is StatementStatus.withdrawn and not purge):
        raise StatementStateError(f"statement {statement.id} is already {statement.status.value}")
    doomed: list[str] = []
    for row in chain:
        if row.status is StatementStatus.active:
            row.status = StatementStatus.withdrawn
            row.withdrawn_at = withdrawn_at
            row.withdrawal_recorded_at = recorded
            row.withdrawn_by = actor
            _audit(session, actor=actor, action=ACTION_WITHDRAWN, subject=row.id, details={
                "withdrawn_at": withdrawn_at.isoformat(), "via": statement.id})
        if purge and row.status is not StatementStatus.purged:
            row.status = StatementStatus.purged
            row.purged_at = recorded
            digests = []
            for blob in row.blobs:
                blob.purged = True
                digests.append(blob.sha256)
            doomed.extend(digests)
            _audit(session, actor=actor, action=ACTION_PURGED, subject=row.id,
                   details={"tombstone": sorted(digests), "via": statement.id})
    session.commit()
    for digest in doomed:
        if not _still_referenced(session, digest):
            store.delete(digest)
    return [row.id for row in chain]


def _still_referenced(session: Session, digest: str) -> bool:
    query = select(SealedBlob.statement_id).where(SealedBlob.sha256 == digest,
                                                  SealedBlob.purged.is_(False)).limit(1)
    return session.scalars(query).first() is not None


# ------------------------------------------------------------------ garbage


def collect_garbage(sessions: sessionmaker[Session], store: FilesystemBlobStore, *,
                    grace_seconds: float) -> GarbageReport:
    """Delete stale temporary files and blobs no live statement references.

    Called at start-up and by ``intake gc``. The grace period protects uploads
    in progress in other workers and hosts sharing the store.
    """
    def referenced(digests: list[str]) -> set[str]:
        found: set[str] = set()
        with sessions() as session:
            for start in range(0, len(digests), 500):
                batch = digests[start:start + 500]
                found.update(session.scalars(select(SealedBlob.sha256).where(
                    SealedBlob.sha256.in_(batch), SealedBlob.purged.is_(False))))
            session.rollback()
        return found

    return store.collect_garbage(referenced, grace_seconds=grace_seconds)


