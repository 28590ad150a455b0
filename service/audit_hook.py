"""The one place the accounts and recipients code reaches the audit log.

Every admin action (user.created, recipient.added, login.failed, ...) is
recorded through ``evidence_intake.service.auditlog.append`` in the same
database transaction as the change it records: if either fails, both roll
back. This module only adapts the call; it never swallows a failure. If the
audit log package does not provide ``append`` the action fails with
:class:`AuditUnavailableError` rather than happening unrecorded.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

ANONYMOUS = "anonymous"
SYSTEM = "system"


class AuditUnavailableError(RuntimeError):
    """The audit log cannot be written, so the action it would record must not happen."""


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Any:
    """Append one audit entry in ``session``'s transaction and return what the log returns.

    ``actor`` is an account id (or ``anonymous`` / ``system``), never a name;
    ``subject`` holds ids; ``details`` holds non-secret facts (sizes, digests,
    fingerprints). Nothing identifying a witness goes here.
    """
    try:
        auditlog = importlib.import_module("evidence_intake.service.auditlog")
        append = auditlog.append
    except (ImportError, AttributeError) as err:
        raise AuditUnavailableError(
            "the audit log (service.auditlog.append) is not available") from err
    return append(session, actor=actor, action=action, subject=dict(subject or {}),
                  details=dict(details or {}))


def trigger_ddl(dialect: str) -> list[str]:
    """The audit log's append-only trigger statements for ``dialect`` (migrations use it)."""
    try:
        auditlog = importlib.import_module("evidence_intake.service.auditlog")
        ddl = auditlog.trigger_ddl
    except (ImportError, AttributeError) as err:
        raise AuditUnavailableError(
            "the audit log (service.auditlog.trigger_ddl) is not available") from err
    return list(ddl(dialect))
