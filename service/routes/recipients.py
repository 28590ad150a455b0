"""Receiving bodies (recipient sets) and investigators' keys.

Admins manage them; counsellors read them (to choose the consent scope with
the witness) and export officers read them (to pick the body to export to).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from ...schemas.recipients import AddRecipientRequest, BodyOut, CreateBodyRequest, RecipientOut
from .. import recipient_sets
from ..auth.principal import Principal
from ..auth.rules import AdminPrincipal, require
from ..deps import DbSession, JsonBody, SettingsDep
from ..models.accounts import Role
from ._convert import body_out, recipient_out

router = APIRouter(prefix="/api/v1/bodies", tags=["recipients"])
Reader = Annotated[Principal, Depends(require(Role.admin, Role.counsellor, Role.export_officer))]


@router.get("", response_model=list[BodyOut])
def list_bodies(principal: Reader, session: DbSession) -> list[BodyOut]:
    """Every body with its keys, each key's kind and fingerprint, and the body's key kinds."""
    return [body_out(b) for b in recipient_sets.list_bodies(session)]


@router.post("", response_model=BodyOut, status_code=status.HTTP_201_CREATED)
def create_body(principal: AdminPrincipal, _json: JsonBody, body: CreateBodyRequest,
                session: DbSession) -> BodyOut:
    row = recipient_sets.create_body(session, actor=principal.account_id, name=body.name,
                                     description=body.description)
    return body_out(recipient_sets.get_body(session, row.id))


@router.get("/{body_id}", response_model=BodyOut)
def get_body(principal: Reader, body_id: str, session: DbSession) -> BodyOut:
    return body_out(recipient_sets.get_body(session, body_id))


@router.post("/{body_id}/recipients", response_model=RecipientOut,
             status_code=status.HTTP_201_CREATED)
def add_recipient(principal: AdminPrincipal, body_id: str, _json: JsonBody,
                  body: AddRecipientRequest, session: DbSession,
                  settings: SettingsDep) -> RecipientOut:
    """Registers an age1… or age1pq1… key; check the returned fingerprint with its owner."""
    return recipient_out(recipient_sets.add_recipient(
        session, settings, actor=principal.account_id, body_id=body_id,
        organisation=body.organisation, person=body.person, recipient=body.recipient))


@router.post("/{body_id}/recipients/{recipient_id}/retire", response_model=RecipientOut)
def retire_recipient(principal: AdminPrincipal, body_id: str, recipient_id: str,
                     session: DbSession) -> RecipientOut:
    """Retires a key: never used for new seals, never deleted."""
    return recipient_out(recipient_sets.retire_recipient(
        session, actor=principal.account_id, body_id=body_id, recipient_id=recipient_id))
