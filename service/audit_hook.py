"""The one place the accounts, recipients and intake code reaches the audit log.

Every action (user.created, recipient.added, login.failed, statement.sealed, ...)
is recorded through ``evidence_intake.service.auditlog.append`` in the same
database transaction as the change it records: if either fails, both roll
back. This module only adapts the call; it never swallows a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from . import auditlog

ANONYMOUS = "anonymous"
SYSTEM = "system"


def record(
    session: Session | Connection,
    *,
    actor: str,
    action: str,
    subject: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    also: auditlog.AlsoWrite | None = None,
) -> Any:
    """Append one audit entry in ``session``'s transaction and return what the log returns.

    ``also`` adds the caller's writes that need the entry (see ``auditlog.append``).

    ``actor`` is an account id (or ``anonymous`` / ``system``), never a name;
    ``subject`` holds ids; ``details`` holds non-secret facts (sizes, digests,
    fingerprints). Nothing identifying a witness goes here.
    """
    return auditlog.append(session, actor=actor, action=action, subject=dict(subject or {}),
                           details=dict(details or {}), also=also)


def record_many(session: Session | Connection, pending: list[auditlog.Pending], *,
                commit: bool = False, before_commit: Callable[[], None] | None = None
                ) -> list[Any]:
    """Append several entries, in order, in ``session``'s transaction, under one lock.

    Each ``Pending`` holds the arguments of :func:`record`; the same rules apply.
    With ``commit`` the transaction is committed with the entries (see
    ``auditlog.append_many``).
    """
    return auditlog.append_many(session, pending, commit=commit, before_commit=before_commit)


def trigger_ddl(dialect: str) -> list[str]:
    """The audit log's append-only trigger statements for ``dialect`` (migrations use it)."""
    return list(auditlog.trigger_ddl(dialect))
