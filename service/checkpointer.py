"""Periodic checkpoints of the audit log: sign one when entries arrived and the interval passed.

Threat model: a checkpoint is what makes a rewrite of history detectable; an
entry that no signed checkpoint covers yet can be silently dropped by whoever
controls the database. Checkpoints are signed on every export and on demand;
this module closes the gap between those by signing at most every
``checkpoint_interval_seconds`` while the log grows, so no entry stays
uncovered much longer than that.

Several workers (processes) each run a :class:`PeriodicCheckpointer`. Each
attempt takes the audit log's append lock before asking
``checkpoint_due`` (PostgreSQL: ``FOR UPDATE`` on the head row; SQLite:
``BEGIN IMMEDIATE`` already holds the database's write lock), so a second
worker waiting on the lock sees the first one's checkpoint and signs nothing:
two workers never sign two checkpoints of the same size at the same moment.
(Were they to, it would be harmless: both notes sign the same size and root.)

A missing or unreadable log key is logged (once) and retried at the next
tick; it never stops the service.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import anyio
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from .auditlog import LogKeyError, checkpoint_due, load_log_signer, sign_checkpoint
from .auditlog.models import HEAD_ID, AuditHead
from .settings import Settings

log = structlog.get_logger("evidence_intake.service.checkpointer")


def lock_log(session: Session) -> None:
    """Take the audit log's append lock until ``session``'s transaction ends.

    On SQLite the transaction began with ``BEGIN IMMEDIATE`` (service/db.py),
    which holds the database's single write lock, and ``FOR UPDATE`` renders
    as nothing. On PostgreSQL this locks the head row every append locks.
    Before the first append there is no head row and nothing to checkpoint.
    """
    session.execute(select(AuditHead.size).where(AuditHead.id == HEAD_ID).with_for_update())


def sign_if_due(session: Session, settings: Settings, *, interval_seconds: float,
                now: datetime | None = None) -> str | None:
    """Sign and commit a checkpoint if one is due; return its note, or None.

    Raises ``LogKeyError`` if the log key cannot be read.
    """
    lock_log(session)
    if not checkpoint_due(session, interval_seconds=interval_seconds, now=now):
        session.rollback()
        return None
    signer = load_log_signer(settings.log_key_path)
    note = sign_checkpoint(session, signer, now=now)
    session.commit()
    return note


class PeriodicCheckpointer:
    """Every ``interval`` seconds, :func:`sign_if_due` in a worker thread.

    ``run`` is cancelled at shutdown; a signing in progress finishes (the
    thread is waited for), so a transaction is never cut in half.
    """

    def __init__(self, sessions: Callable[[], Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.interval = float(settings.checkpoint_interval_seconds)
        self.signed = 0
        self._key_warned = False

    def tick(self) -> str | None:
        """One attempt (blocking): sign if due; errors are logged, never raised."""
        try:
            with self.sessions() as session:
                note = sign_if_due(session, self.settings, interval_seconds=self.interval)
        except LogKeyError as err:
            if not self._key_warned:
                log.warning("audit_checkpoint_key_unavailable", error=str(err))
                self._key_warned = True
            return None
        except Exception as err:  # a database hiccup must not end the loop
            log.error("audit_checkpoint_failed", error_type=type(err).__name__)
            return None
        self._key_warned = False
        if note is not None:
            self.signed += 1
            size = note.split("\n", 2)[1]
            log.info("audit_checkpoint_signed", size=int(size), trigger="periodic")
        return note

    async def run(self) -> None:
        if not math.isfinite(self.interval) or self.interval <= 0:
            return
        while True:
            await anyio.sleep(self.interval)
            await anyio.to_thread.run_sync(self.tick)
