"""ORM rows to API models (kept in one place so every route shows the same fields)."""

from __future__ import annotations

from ...schemas.accounts import AccountOut, TokenOut
from ...schemas.recipients import BodyOut, RecipientOut
from ..models.accounts import Account, ApiToken
from ..models.recipients import ReceivingBody, Recipient
from ..recipient_sets import key_kinds


def account_out(row: Account) -> AccountOut:
    return AccountOut(id=row.id, username=row.username, role=row.role.value,
                      disabled=row.disabled, created_at=row.created_at)


def token_out(row: ApiToken) -> TokenOut:
    return TokenOut(id=row.id, name=row.name, created_at=row.created_at,
                    last_used_at=row.last_used_at, revoked_at=row.revoked_at)


def recipient_out(row: Recipient) -> RecipientOut:
    return RecipientOut(id=row.id, body_id=row.body_id, organisation=row.organisation,
                        person=row.person, recipient=row.recipient, kind=row.kind.value,
                        post_quantum=row.kind.post_quantum, fingerprint=row.fingerprint,
                        created_at=row.created_at, retired_at=row.retired_at,
                        active=row.retired_at is None)


def body_out(row: ReceivingBody) -> BodyOut:
    return BodyOut(id=row.id, name=row.name, description=row.description,
                   created_at=row.created_at,
                   key_kinds=[k.value for k in key_kinds(row)],
                   active_recipients=sum(1 for r in row.recipients if r.retired_at is None),
                   recipients=[recipient_out(r) for r in row.recipients])
