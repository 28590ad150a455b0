"""Group commit: the statements of one process's concurrent requests share a transaction.

Every statement's commit appends to the audit log, whose head is one row: on
PostgreSQL a row lock, on SQLite the database's write lock, held from the
append to the COMMIT. So commits are serial, and with many requests at once
each one spent most of its time queued behind the others' round trips and
fsyncs. Here the thread that finds no commit running becomes the *leader*: it
takes every statement queued at that moment (its own included) and commits
them in one transaction (``records.commit_submissions``); the threads whose
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
from collections.abc import Callable
from dataclasses import dataclass

from ...schemas.statements import Receipt
from ..db import Database
from . import records
from .submission import SealedSubmission

# Statements per transaction at most; the rest wait for the next batch.
MAX_BATCH = 32


@dataclass(eq=False)
class _Waiting:
    job: records.CommitJob
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
        """Commit one statement (see ``records.commit_submissions``); blocks until it is done.

        ``before_commit`` runs just before the COMMIT is sent (by whichever
        thread leads the batch): from then on the outcome may be unknown.
        """
        waiting = _Waiting(records.CommitJob(sealed, actor, before_commit))
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
            outcomes = records.commit_submissions(connection, [item.job for item in batch],
                                                  before_commit=sending)
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
