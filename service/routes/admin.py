"""User administration (admin only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from sqlalchemy import select

from ...schemas.accounts import AccountOut, CreateAccountRequest, SetPasswordRequest
from ..auth import accounts
from ..auth.rules import AdminPrincipal
from ..deps import DbSession, JsonBody, SettingsDep
from ..models.accounts import Account, Role
from ._convert import account_out

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

# Settings an admin may see; secrets (the key, the database URL with its
# password) are never part of the answer.
_HIDDEN_SETTINGS = frozenset({"secret_key", "database_url"})


@router.get("/users", response_model=list[AccountOut])
def list_users(principal: AdminPrincipal, session: DbSession) -> list[AccountOut]:
    return [account_out(a) for a in session.scalars(select(Account).order_by(Account.username))]


@router.post("/users", response_model=AccountOut, status_code=status.HTTP_201_CREATED)
def create_user(principal: AdminPrincipal, _json: JsonBody, body: CreateAccountRequest,
                session: DbSession, settings: SettingsDep) -> AccountOut:
    account = accounts.create_account(session, settings, actor=principal.account_id,
                                      username=body.username, role=Role(body.role),
                                      password=body.password.get_secret_value())
    return account_out(account)


@router.get("/users/{account_id}", response_model=AccountOut)
def get_user(principal: AdminPrincipal, account_id: str, session: DbSession) -> AccountOut:
    return account_out(accounts.get_account(session, account_id))


@router.post("/users/{account_id}/password", response_model=AccountOut)
def reset_password(principal: AdminPrincipal, account_id: str, _json: JsonBody,
                   body: SetPasswordRequest, session: DbSession,
                   settings: SettingsDep) -> AccountOut:
    """Sets a new password and ends the account's sessions."""
    return account_out(accounts.reset_password(
        session, settings, actor=principal.account_id, account_id=account_id,
        password=body.password.get_secret_value()))


@router.post("/users/{account_id}/disable", response_model=AccountOut)
def disable_user(principal: AdminPrincipal, account_id: str, session: DbSession) -> AccountOut:
    """Disables the account: its sessions end and its API tokens stop working."""
    return account_out(accounts.set_disabled(session, actor=principal.account_id,
                                             account_id=account_id, disabled=True))


@router.post("/users/{account_id}/enable", response_model=AccountOut)
def enable_user(principal: AdminPrincipal, account_id: str, session: DbSession) -> AccountOut:
    return account_out(accounts.set_disabled(session, actor=principal.account_id,
                                             account_id=account_id, disabled=False))


@router.get("/settings")
def effective_settings(principal: AdminPrincipal, settings: SettingsDep) -> dict[str, Any]:
    """The node's effective settings, secrets left out (the database is named by kind only)."""
    shown = settings.model_dump(mode="json", exclude=set(_HIDDEN_SETTINGS))
    shown["database"] = "sqlite" if settings.is_sqlite else "postgresql"
    shown["secret_key_set"] = settings.secret_key is not None
    return shown
