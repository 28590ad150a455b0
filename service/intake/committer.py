"""Committing sealed statements: the transaction, and group commit across requests.

:func:`commit_submissions` is the transaction: each statement's rows and its
audit entry, for one statement or several. :class:`GroupCommitter` decides
which statements share it: those of one process's concurrent requests.

Every statement's commit appends to the audit log, whose head is one row: on
PostgreSQL a row lock, on SQLite the database's write lock, held from the
append to the COMMIT. So commits are serial, and with many requests at once
each one spent most of its time queued behind the others' round trips and
fsyncs. Here the thread that finds no commit running becomes the *leader*: it
takes every statement queued at that moment (its own included) and commits
them in one transaction (``commit_submissions``); the threads whose
statements it took wait for their outcome, and the next thread still holding
an uncommitted statement leads the next batch. Under no load a batch is one
statement, committed at once; under load the batch grows, and the lock, the
round trips and the fsync are paid once per batch.

What stays the same for each statement: its rows and its own audit entry are
written in one transaction, or nothing is. A batch fails as a whole only if
its COMMIT was sent: the outcome is then unknown for all of its statements,
as it would be for one (their blobs are left to garbage collection, which
checks the database). An error before the COMMIT (a driver error, a
constraint) rolls the batch back, and each statement is then committed in a
transaction of its own, so one bad statement fails alone.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam, insert, select

from ...audit.entry import Entry
from ...schemas.statements import AuditRef, Receipt
from .. import audit_hook, auditlog
from ..db import Database
from ..models.recipients import KeyKind
from ..models.statements import (
    SealedBlob,
    Statement,
    StatementBody,
    StatementRecipient,
    StatementStatus,
)
from ..rawsql import Compiled, RawCursor, StatementSet, Write, still_uncommitted
from . import records
from .errors import IntakeError, StatementStateError
from .submission import SealedSubmission

_STATEMENTS: Table = Statement.__table__  # type: ignore[assignment]  # a mapped Table
_BODIES: Table = StatementBody.__table__  # type: ignore[assignment]
_BLOBS: Table = SealedBlob.__table__  # type: ignore[assignment]
_RECIPIENTS: Table = StatementRecipient.__table__  # type: ignore[assignment]

# ------------------------------------------------------------------ one transaction


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
            "copies": [copy.model_dump(mode="json") for copy in list(routing.copies or [])],
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
    the caller rolls back the whole transaction (see :class:`GroupCommitter`).
    ``before_commit`` runs after the jobs' own, right before the COMMIT is sent.
    """
    prepared = [_rows(job.sealed) for job in jobs]
    statements = _SubmissionStatements.for_dialect(connection.dialect)
    outcomes: list[Receipt | IntakeError | None] = [None] * len(jobs)
    hashes: dict[int, bytes] = {}

    def writes(index: int) -> auditlog.AlsoWrite:
        rows = prepared[index]

        def also(entry: Entry, entry_hash: bytes) -> list[Write]:
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

    def sending() -> None:
        for index in live:
            callback = jobs[index].before_commit
            if callback is not None:
                callback()
        if before_commit is not None:
            before_commit()

    # The entries, the statements' rows and the COMMIT: on PostgreSQL one
    # round trip while the log's head is locked.
    entries = audit_hook.record_many(connection, [
        auditlog.Pending(jobs[index].actor, records.ACTION_SEALED,
                         {"statement": jobs[index].sealed.routing.record_id},
                         prepared[index].details, writes(index))
        for index in live], commit=True, before_commit=sending)
    for index, entry in zip(live, entries, strict=True):
        routing = jobs[index].sealed.routing
        audit = AuditRef(seq=entry.seq, entry_hash=hashes[index].hex())
        outcomes[index] = records.build_receipt(
            routing.record_id, routing.created_at, routing.amends, StatementStatus.active,
            routing, audit, checkpoint)
    return [outcome for outcome in outcomes if outcome is not None]  # all are set by now


# ------------------------------------------------------------------ batching


# Statements per transaction at most; the rest wait for the next batch.
MAX_BATCH = 32


@dataclass(eq=False)
class _Waiting:
    job: CommitJob
    attempted: bool = False  # its COMMIT was sent (the outcome may be unknown)
    done: bool = False
    receipt: Receipt | None = None
    error: BaseException | None = None


class GroupCommitter:
    """Commits the sealed statements of one process's requests, several per transaction."""

    def __init__(self, database: Database, max_batch: int = MAX_BATCH) -> None:
        self._database = database
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._queue: deque[_Waiting] = deque()
        self._leading = False

    def commit(self, sealed: SealedSubmission, *, actor: str,
               before_commit: Callable[[], None] | None = None) -> Receipt:
        """Commit one statement (see ``commit_submissions``); blocks until it is done.

        ``before_commit`` runs just before the COMMIT is sent (by whichever
        thread leads the batch): from then on the outcome may be unknown.
        """
        waiting = _Waiting(CommitJob(sealed, actor, before_commit))
        with self._changed:
            self._queue.append(waiting)
            while not waiting.done and self._leading:
                self._changed.wait()
            if waiting.done:
                return _outcome(waiting)
            self._leading = True
            batch = [self._queue.popleft()
                     for _ in range(min(len(self._queue), self._max_batch))]
        try:
            self._commit(batch)
        finally:
            with self._changed:
                for item in batch:
                    item.done = True
                self._leading = False
                self._changed.notify_all()
        if not waiting.done:  # pragma: no cover - its own statement is always in its batch
            raise RuntimeError("the group commit lost a statement")
        return _outcome(waiting)

    def _commit(self, batch: list[_Waiting]) -> None:
        try:
            self._transaction(batch)
            return
        except BaseException as err:
            if len(batch) == 1 or any(item.attempted for item in batch):
                for item in batch:
                    item.error = err
                return
        # Refused before its COMMIT: each statement alone, so that one bad
        # statement does not fail the others.
        for item in batch:
            try:
                self._transaction([item])
            except BaseException as err:
                item.error = err

    def _transaction(self, batch: list[_Waiting]) -> None:
        def sending() -> None:
            for item in batch:
                item.attempted = True

        with self._database.write_connection() as connection:
            try:
                outcomes = commit_submissions(connection, [item.job for item in batch],
                                              before_commit=sending)
            except BaseException:
                # The COMMIT went out with the writes (PostgreSQL), but the
                # database says a write failed first, so it never ran: the
                # outcome is known after all, and each statement may be retried.
                if still_uncommitted(connection):
                    for item in batch:
                        item.attempted = False
                raise
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                item.error = outcome
            else:
                item.receipt = outcome


def _outcome(waiting: _Waiting) -> Receipt:
    if waiting.error is not None:
        raise waiting.error
    if waiting.receipt is None:  # pragma: no cover - a finished batch sets one or the other
        raise RuntimeError("the group commit finished without an outcome")
    return waiting.receipt


_COMMITTERS: weakref.WeakKeyDictionary[Database, GroupCommitter] = weakref.WeakKeyDictionary()
_COMMITTERS_LOCK = threading.Lock()


def committer_for(database: Database) -> GroupCommitter:
    """The process's group committer for ``database`` (made at its first use)."""
    found = _COMMITTERS.get(database)
    if found is None:
        with _COMMITTERS_LOCK:
            found = _COMMITTERS.get(database)
            if found is None:
                found = _COMMITTERS[database] = GroupCommitter(database)
    return found
