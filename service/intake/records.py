"""Statements in the database: commit, receipts, listing, withdrawal and purge.

Order of a submission (docs/intake.md, "Atomicity"):

1. every blob is sealed into a temporary file, fsynced and renamed to its
   digest while the request streams (``Submission``);
2. one database transaction inserts the statement, its bodies, blobs and
   recipients *and* appends the audit entry (:func:`commit_submissions`, several
   statements per transaction under load: ``committer.py``);
3. if step 2 fails or never happens (error, disconnect, crash), the blobs of
   step 1 are unreferenced: the request deletes them itself, and after a crash
   :func:`collect_garbage` deletes them once older than the grace period.

A statement therefore exists with all its blobs and its audit entry, or not at
all. Purge runs the other way round: the rows are marked purged and the audit
entry written in one transaction, then the files are deleted; a crash in
between leaves unreferenced blobs that garbage collection removes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam, insert, select
from sqlalchemy.orm import Session, sessionmaker

from ...audit.entry import Entry
from ...schemas.statements import RECEIPT_SCHEMA, AuditRef, Receipt, Routing, StatementSummary
from .. import audit_hook, auditlog
from ..errors import NotFoundError
from ..models.recipients import KeyKind
from ..models.statements import (
    SealedBlob,
    Statement,
    StatementBody,
    StatementRecipient,
    StatementStatus,
)
from ..rawsql import Compiled, RawCursor, StatementSet
from ..recipient_sets import ActiveKey, active_recipients_for_bodies
from .blobstore import FilesystemBlobStore, GarbageReport
from .errors import (
    IntakeError,
    InvalidStatementError,
    StatementNotFoundError,
    StatementStateError,
)
from .submission import SealedSubmission

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
    from .. import auditlog

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


class _SubmissionStatements(StatementSet):
    """The statement commit's SQL for one dialect (see service/rawsql.py)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.amended_status = Compiled(_AMENDED_STATUS, dialect)
        self.latest_checkpoint = Compiled(auditlog.LATEST_CHECKPOINT, dialect)
        self.insert_statement = Compiled(insert(_STATEMENTS), dialect, _STATEMENT_KEYS)
        self.insert_body = Compiled(insert(_BODIES), dialect, _BODY_KEYS)
        self.insert_blob = Compiled(insert(_BLOBS), dialect, _BLOB_KEYS)
        self.insert_recipient = Compiled(insert(_RECIPIENTS), dialect, _RECIPIENT_KEYS)


_AMENDED_STATUS = select(_STATEMENTS.c.status).where(_STATEMENTS.c.id == bindparam("statement"))
_STATEMENT_KEYS = ("id", "created_at", "counsellor_id", "amends_id", "status", "priority",
                   "restricted", "routing_json", "audit_seq", "audit_entry_hash")
_BODY_KEYS = ("statement_id", "body_id", "key_kind")
_BLOB_KEYS = ("statement_id", "key_kind", "part", "sha256", "size", "purged")
_RECIPIENT_KEYS = ("statement_id", "recipient_id", "key_kind")


@dataclass
class CommitJob:
    """One sealed statement to commit, and who submitted it."""

    sealed: SealedSubmission
    actor: str
    # Runs just before the COMMIT is sent: from then on the outcome may be
    # unknown to the caller if the connection fails.
    before_commit: Callable[[], None] | None = None


@dataclass
class _Rows:
    statement: dict[str, object]
    bodies: list[dict[str, object]]
    blobs: list[dict[str, object]]
    recipients: list[dict[str, object]]
    details: dict[str, Any]


def _rows(sealed: SealedSubmission) -> _Rows:
    """Every row of a statement, built before the transaction (on SQLite it holds the lock)."""
    routing = sealed.routing
    statement_id = routing.record_id
    recipients: dict[str, KeyKind] = {}
    for group in sealed.plan.groups:
        for key in group.keys:
            recipients.setdefault(key.recipient_id, key.kind)
    return _Rows(
        statement={
            "id": statement_id,
            "created_at": routing.created_at,
            "counsellor_id": routing.counsellor_account_id,
            "amends_id": routing.amends,
            "status": StatementStatus.active,
            "priority": routing.priority,
            "restricted": routing.restricted,
            "routing_json": routing.model_dump_json(by_alias=True, exclude_none=True),
        },
        bodies=[{"statement_id": statement_id, "body_id": body.body_id,
                 "key_kind": KeyKind(body.key_kind)} for body in routing.bodies],
        blobs=[{"statement_id": statement_id, "key_kind": kind, "part": part,
                "sha256": ref.sha256, "size": ref.size, "purged": False}
               for kind, refs in sealed.blobs.items() for part, ref in enumerate(refs)],
        recipients=[{"statement_id": statement_id, "recipient_id": recipient_id,
                     "key_kind": kind} for recipient_id, kind in recipients.items()],
        details={
            "record_id": routing.record_id,
            "counsellor": routing.counsellor_account_id,
            "amends": routing.amends,
            "bodies": [body.model_dump(mode="json") for body in routing.bodies],
            "copies": [copy.model_dump(mode="json") for copy in _copies(routing)],
            "recipients": sorted({r.fingerprint for r in routing.recipients}),
        },
    )


def commit_submissions(connection: Connection, jobs: Sequence[CommitJob], *,
                       before_commit: Callable[[], None] | None = None
                       ) -> list[Receipt | IntakeError]:
    """Commit several statements in one transaction: each with its rows and audit entry.

    Each statement still commits with its own audit entry, atomically; they
    only share the transaction (and on SQLite its fsync, on PostgreSQL its
    round trips and its hold of the log's head). An amendment whose original
    was withdrawn meanwhile gets its :class:`StatementStateError` in the
    result and is left out; the others commit. Any other error propagates and
    the caller rolls back the whole transaction (see ``committer.py``).
    ``before_commit`` runs after the jobs' own, right before the COMMIT is sent.
    """
    prepared = [_rows(job.sealed) for job in jobs]
    statements = _SubmissionStatements.for_dialect(connection.dialect)
    outcomes: list[Receipt | IntakeError | None] = [None] * len(jobs)
    hashes: dict[int, bytes] = {}

    def writes(index: int) -> auditlog.AlsoWrite:
        rows = prepared[index]

        def also(entry: Entry, entry_hash: bytes
                 ) -> list[tuple[Compiled, Sequence[Mapping[str, object]]]]:
            # The statement row carries its audit entry's seq and hash, so it
            # is written after the entry, in the same batch (one round trip on
            # PostgreSQL), while the log's head is locked until the commit.
            hashes[index] = entry_hash
            row = {**rows.statement, "audit_seq": entry.seq,
                   "audit_entry_hash": entry_hash.hex()}
            return [(statements.insert_statement, [row]),
                    (statements.insert_body, rows.bodies),
                    (statements.insert_blob, rows.blobs),
                    (statements.insert_recipient, rows.recipients)]
        return also

    # Begun here, through SQLAlchemy (on SQLite: BEGIN IMMEDIATE, the write
    # lock), because the statements below go to the DBAPI cursor directly.
    connection.begin()
    cursor = RawCursor(connection, statements)
    try:
        for index, job in enumerate(jobs):
            amends = job.sealed.routing.amends
            if amends is None:
                continue
            # Checked again inside the transaction: the original may have
            # been withdrawn while this upload was streaming.
            cursor.execute(statements.amended_status, {"statement": amends})
            found = cursor.one_or_none()
            if found is None or StatementStatus(found[0]) is not StatementStatus.active:
                outcomes[index] = StatementStateError(
                    f"statement {amends} cannot be amended any more",
                    field="record.routing.amends")
        # The latest checkpoint cannot cover the entries about to be appended.
        cursor.execute(statements.latest_checkpoint, {})
        found = cursor.one_or_none()
        checkpoint = None if found is None else str(found[0])
    finally:
        cursor.close()
    live = [index for index in range(len(jobs)) if outcomes[index] is None]
    if not live:
        connection.rollback()
        return [outcome for outcome in outcomes if outcome is not None]
    entries = audit_hook.record_many(connection, [
        auditlog.Pending(jobs[index].actor, ACTION_SEALED,
                         {"statement": jobs[index].sealed.routing.record_id},
                         prepared[index].details, writes(index))
        for index in live])
    for index in live:
        callback = jobs[index].before_commit
        if callback is not None:
            callback()
    if before_commit is not None:
        before_commit()
    connection.commit()
    for index, entry in zip(live, entries, strict=True):
        routing = jobs[index].sealed.routing
        audit = AuditRef(seq=entry.seq, entry_hash=hashes[index].hex())
        outcomes[index] = _receipt(routing.record_id, routing.created_at, routing.amends,
                                   StatementStatus.active, routing, audit, checkpoint)
    return [outcome for outcome in outcomes if outcome is not None]  # all are set by now


# ------------------------------------------------------------------ reading


def _receipt(statement_id: str, created_at: datetime, amends: str | None,
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
    return _receipt(statement.id, statement.created_at, statement.amends_id, statement.status,
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


