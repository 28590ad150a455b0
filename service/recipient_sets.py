"""Receiving bodies and their investigators' keys: the admin side of consent.

Threat model: whoever controls the recipient list decides who can read every
future statement. So: each key is checked by the age parser before it is
stored; its fingerprint is shown for an out-of-band check with the
investigator; every change is an audit entry; keys are retired, never
deleted (old statements stay linked to the key they were sealed to); and
with ``require_pq_recipients`` classical keys are refused for new recipients,
so a body's protection can only be raised, never silently lowered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, and_, bindparam, select
from sqlalchemy.orm import Session, selectinload

from . import audit_hook
from .errors import ConflictError, NotFoundError, PolicyError
from .models.recipients import KeyKind, ReceivingBody, Recipient
from .models.types import utcnow
from .rawsql import Compiled, StatementSet, query
from .settings import Settings


@dataclass(frozen=True)
class ParsedRecipient:
    canonical: str
    kind: KeyKind
    fingerprint: str


def parse_recipient_string(text: str) -> ParsedRecipient:
    """Validate an ``age1…`` or ``age1pq1…`` string with the age parser.

    Raises :class:`PolicyError` with the parser's message (which quotes no key).
    """
    from ..crypto.age import recipient_fingerprint
    from ..crypto.age.keys import PQ_RECIPIENT_PREFIX, parse_recipient
    from ..crypto.errors import CryptoError

    try:
        parsed = parse_recipient(text.strip())
    except CryptoError as err:
        raise PolicyError(f"not a valid age recipient: {err}") from err
    canonical = str(parsed)
    kind = KeyKind.mlkem768x25519 if canonical.startswith(PQ_RECIPIENT_PREFIX) else KeyKind.x25519
    # The project's one fingerprint form (crypto.age.recipient_fingerprint):
    # SHA-256 hex of the recipient string, which an investigator can recompute
    # with `printf %s age1… | sha256sum` and read back over the phone.
    return ParsedRecipient(canonical, kind, recipient_fingerprint(parsed))


def list_bodies(session: Session) -> list[ReceivingBody]:
    return list(session.scalars(select(ReceivingBody).options(
        selectinload(ReceivingBody.recipients)).order_by(ReceivingBody.name)))


def get_body(session: Session, body_id: str) -> ReceivingBody:
    body = session.get(ReceivingBody, body_id, options=[selectinload(ReceivingBody.recipients)])
    if body is None:
        raise NotFoundError("no such receiving body")
    return body


def create_body(session: Session, *, actor: str, name: str, description: str) -> ReceivingBody:
    name = name.strip()
    if session.scalars(select(ReceivingBody).where(ReceivingBody.name == name)).first():
        raise ConflictError("a receiving body with that name exists")
    body = ReceivingBody(name=name, description=description)
    session.add(body)
    session.flush()
    audit_hook.record(session, actor=actor, action="body.created", subject={"body": body.id})
    session.commit()
    return body


def add_recipient(session: Session, settings: Settings, *, actor: str, body_id: str,
                  organisation: str, person: str, recipient: str) -> Recipient:
    body = get_body(session, body_id)
    parsed = parse_recipient_string(recipient)
    if settings.require_pq_recipients and not parsed.kind.post_quantum:
        raise PolicyError("this node requires post-quantum (age1pq1…) keys for new recipients")
    for existing in body.recipients:
        if existing.recipient == parsed.canonical:
            raise ConflictError("that key is already registered for this body"
                                + (" (retired)" if existing.retired_at else ""))
    row = Recipient(body_id=body.id, organisation=organisation.strip(), person=person.strip(),
                    recipient=parsed.canonical, kind=parsed.kind,
                    fingerprint=parsed.fingerprint, created_by=actor)
    session.add(row)
    session.flush()
    audit_hook.record(session, actor=actor, action="recipient.added",
                      subject={"body": body.id, "recipient": row.id},
                      details={"fingerprint": row.fingerprint, "kind": row.kind.value})
    session.commit()
    return row


def retire_recipient(session: Session, *, actor: str, body_id: str,
                     recipient_id: str) -> Recipient:
    row = session.get(Recipient, recipient_id)
    if row is None or row.body_id != body_id:
        raise NotFoundError("no such recipient in this body")
    if row.retired_at is not None:
        raise ConflictError("the recipient is already retired")
    row.retired_at = utcnow()
    audit_hook.record(session, actor=actor, action="recipient.retired",
                      subject={"body": body_id, "recipient": row.id},
                      details={"fingerprint": row.fingerprint})
    session.commit()
    return row


class ActiveKey(NamedTuple):
    """An active recipient of a body, as sealing reads it (plain row values)."""

    id: str
    body_id: str
    recipient: str
    kind: KeyKind
    fingerprint: str


class _ActiveKeyStatements(StatementSet):
    """The lookup for 1 to :data:`_COMPILED_BODIES` bodies, compiled once per count."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._by_count: dict[int, Compiled] = {}

    def for_count(self, count: int) -> Compiled:
        found = self._by_count.get(count)
        if found is None:
            names: list[Any] = [bindparam(f"body_{i}") for i in range(count)]
            found = self._by_count[count] = Compiled(
                _ACTIVE_KEYS.where(ReceivingBody.id.in_(names)), self.dialect)
        return found


# A submission consents to a few bodies; more than this many take the
# general (expanding IN) path.
_COMPILED_BODIES = 16
# The requested bodies with their active keys, in one query: a body without an
# active key comes back once with NULL key columns, an unknown body not at all.
_ACTIVE_KEYS = (
    select(ReceivingBody.id.label("requested"), Recipient.id, Recipient.body_id,
           Recipient.recipient, Recipient.kind, Recipient.fingerprint)
    .select_from(ReceivingBody)
    .outerjoin(Recipient, and_(Recipient.body_id == ReceivingBody.id,
                               Recipient.retired_at.is_(None)))
    .order_by(Recipient.created_at, Recipient.id)
)
_ACTIVE_KEYS_ANY = _ACTIVE_KEYS.where(ReceivingBody.id.in_(bindparam("bodies", expanding=True)))


def _active_key_rows(session: Session | Connection, wanted: list[str]) -> list[Any]:
    """(requested, id, body_id, recipient, kind, fingerprint) rows for the ``wanted`` bodies.

    On a plain connection, for a few bodies (every submission asks), the
    query is compiled once per count of bodies and run on the DBAPI cursor
    (service/rawsql.py), its rows processed as SQLAlchemy would.
    """
    if isinstance(session, Connection) and 0 < len(wanted) <= _COMPILED_BODIES:
        statements = _ActiveKeyStatements.for_dialect(session.dialect)
        return query(session, statements, statements.for_count(len(wanted)),
                     {f"body_{i}": body for i, body in enumerate(wanted)})
    return list(session.execute(_ACTIVE_KEYS_ANY, {"bodies": wanted}))


def active_recipients_for_bodies(session: Session | Connection,
                                 body_ids: Iterable[str]) -> dict[str, list[ActiveKey]]:
    """The active (not retired) recipients of each body, keyed by body id.

    Every requested id is a key of the result, with an empty list when the body
    has no active key, so the caller can refuse to seal ("no consent, no
    seal"). An id naming no body raises :class:`NotFoundError`. One query of
    plain rows, since every submission asks.
    """
    wanted = list(dict.fromkeys(body_ids))
    out: dict[str, list[ActiveKey]] = {}
    for requested, key_id, body_id, recipient, kind, fingerprint in _active_key_rows(
            session, wanted):
        keys = out.setdefault(requested, [])
        if key_id is not None:
            keys.append(ActiveKey(key_id, body_id, recipient, KeyKind(kind), fingerprint))
    missing = [b for b in wanted if b not in out]
    if missing:
        raise NotFoundError(f"no such receiving body: {', '.join(sorted(missing))}")
    return {body_id: out[body_id] for body_id in wanted}


def key_kinds(body: ReceivingBody) -> list[KeyKind]:
    """The kinds of the body's active keys, post-quantum first."""
    kinds = {r.kind for r in body.recipients if r.retired_at is None}
    return sorted(kinds, key=lambda k: (not k.post_quantum, k.value))
