"""Choosing the statements of an export, and refusing the others with a reason each.

A statement may go to a receiving body only if (1) the witness consented to
that body (a ``statement_bodies`` row), (2) it is still active (not withdrawn,
not purged), and (3) the copy that body receives is sealed to at least one of
the body's keys (active or retired: a retired key is never used for new
seals, but its holder can still open what was sealed to it) and its blobs are
present. The sealed copy picked is the one of the body's key kind, recorded
at sealing time; nothing is ever re-encrypted (the server cannot).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..models.exports import Export, ExportItem, ExportStatus
from ..models.recipients import KeyKind, Recipient
from ..models.statements import (
    SealedBlob,
    Statement,
    StatementBody,
    StatementRecipient,
    StatementStatus,
)


class RefusalCode(enum.StrEnum):
    not_found = "not_found"
    not_consented = "not_consented"
    withdrawn = "withdrawn"
    purged = "purged"
    not_sealed_to_body = "not_sealed_to_body"
    missing_copy = "missing_copy"


_REASONS = {
    RefusalCode.not_found: "no such statement",
    RefusalCode.not_consented: "the witness did not consent to sharing with this body",
    RefusalCode.withdrawn: "consent was withdrawn",
    RefusalCode.purged: "consent was withdrawn and the ciphertext purged",
    RefusalCode.not_sealed_to_body: "not sealed to any key of this body",
    RefusalCode.missing_copy: "the sealed copy for this body's key kind is missing or purged",
}


@dataclass(frozen=True)
class Refusal:
    statement_id: str
    code: RefusalCode

    @property
    def reason(self) -> str:
        return _REASONS[self.code]


@dataclass(frozen=True)
class Chosen:
    """An exportable statement and the blobs of the copy this body receives, in part order."""

    statement: Statement
    key_kind: KeyKind
    blobs: tuple[SealedBlob, ...]


@dataclass
class Selection:
    chosen: list[Chosen] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def candidate_ids(session: Session, body_id: str, *, statement_ids: Sequence[str] | None,
                  since: datetime | None, until: datetime | None, new_only: bool) -> list[str]:
    """The statement ids an export request names, before the per-statement rules."""
    if statement_ids is not None:
        return list(dict.fromkeys(statement_ids))
    query = (select(Statement.id)
             .join(StatementBody, StatementBody.statement_id == Statement.id)
             .where(StatementBody.body_id == body_id)
             .order_by(Statement.created_at, Statement.id))
    if since is not None:
        query = query.where(Statement.created_at >= since)
    if until is not None:
        query = query.where(Statement.created_at < until)
    if new_only:
        exported = (select(ExportItem.statement_id)
                    .join(Export, Export.id == ExportItem.export_id)
                    .where(Export.body_id == body_id, Export.status != ExportStatus.failed))
        query = query.where(Statement.id.not_in(exported))
    return list(session.scalars(query))


def _chunks(values: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def choose(session: Session, body_id: str, ids: Sequence[str]) -> Selection:
    """Apply the rules of the module docstring to each id, in order (a few bulk queries)."""
    body_keys = set(session.scalars(select(Recipient.id).where(Recipient.body_id == body_id)))
    statements: dict[str, Statement] = {}
    sealed_to_body: set[tuple[str, KeyKind]] = set()
    for chunk in _chunks(list(ids)):
        statements.update((row.id, row) for row in session.scalars(
            select(Statement).where(Statement.id.in_(chunk))
            .options(selectinload(Statement.bodies), selectinload(Statement.blobs))))
        sealed_to_body.update((sid, kind) for sid, kind in session.execute(
            select(StatementRecipient.statement_id, StatementRecipient.key_kind).where(
                StatementRecipient.statement_id.in_(chunk),
                StatementRecipient.recipient_id.in_(body_keys))))
    result = Selection()
    for sid in ids:
        statement = statements.get(sid)
        if statement is None:
            result.refused.append(Refusal(sid, RefusalCode.not_found))
            continue
        route = next((b for b in statement.bodies if b.body_id == body_id), None)
        if route is None:
            result.refused.append(Refusal(sid, RefusalCode.not_consented))
            continue
        if statement.status is StatementStatus.purged:
            result.refused.append(Refusal(sid, RefusalCode.purged))
            continue
        if statement.status is not StatementStatus.active:
            result.refused.append(Refusal(sid, RefusalCode.withdrawn))
            continue
        if (sid, route.key_kind) not in sealed_to_body:
            result.refused.append(Refusal(sid, RefusalCode.not_sealed_to_body))
            continue
        blobs = tuple(sorted((b for b in statement.blobs if b.key_kind == route.key_kind),
                             key=lambda b: b.part))
        if not blobs or any(b.purged for b in blobs) or [b.part for b in blobs] != list(
                range(len(blobs))):
            result.refused.append(Refusal(sid, RefusalCode.missing_copy))
            continue
        result.chosen.append(Chosen(statement=statement, key_kind=route.key_kind, blobs=blobs))
    return result


def still_active(session: Session, ids: Sequence[str]) -> list[str]:
    """The ids among ``ids`` that are no longer active, read afresh from the database."""
    changed: list[str] = []
    for chunk in _chunks(list(ids)):
        changed.extend(session.scalars(select(Statement.id).where(
            Statement.id.in_(chunk), Statement.status != StatementStatus.active)))
    return sorted(changed)
