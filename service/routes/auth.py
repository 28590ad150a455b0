"""Sign in and out, who am I, personal API tokens, own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from ...schemas.accounts import (
    AccountOut,
    ChangePasswordRequest,
    CreateTokenRequest,
    IssuedTokenOut,
    LoginRequest,
    LoginResponse,
    TokenOut,
)
from ..auth import accounts
from ..auth.principal import CSRF_COOKIE_NAME, session_cookie_name
from ..auth.rules import AnyPrincipal, public
from ..deps import DbSession, JsonBody, SettingsDep
from ._convert import account_out, token_out

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
Public = Annotated[None, Depends(public())]


@router.post("/login", response_model=LoginResponse)
def login(_rule: Public, _json: JsonBody, body: LoginRequest, request: Request,
          response: Response, session: DbSession, settings: SettingsDep) -> LoginResponse:
    """Public by necessity. Sets an HttpOnly, Secure, SameSite=Strict session cookie.

    Failed attempts are throttled per account and per client (429 with Retry-After).
    """
    client = request.client.host if request.client else "unknown"
    result = accounts.login(session, settings, username=body.username,
                            password=body.password.get_secret_value(), client=client)
    max_age = settings.session_ttl_seconds
    response.set_cookie(session_cookie_name(settings), result.session_token, max_age=max_age,
                        path="/", secure=settings.cookie_secure, httponly=True, samesite="strict")
    # Readable by the page's script (double submit), useless to other sites.
    response.set_cookie(CSRF_COOKIE_NAME, result.csrf_token, max_age=max_age, path="/",
                        secure=settings.cookie_secure, httponly=False, samesite="strict")
    response.headers["Cache-Control"] = "no-store"
    return LoginResponse(account=account_out(result.account), csrf_token=result.csrf_token,
                         expires_at=result.expires_at)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: AnyPrincipal, session: DbSession, settings: SettingsDep,
           response: Response) -> Response:
    """Ends the session (an API token is not ended by this; revoke it instead)."""
    if principal.via == "session":
        accounts.logout(session, account_id=principal.account_id,
                        session_id=principal.credential_id)
    out = Response(status_code=status.HTTP_204_NO_CONTENT)
    out.delete_cookie(session_cookie_name(settings), path="/", secure=settings.cookie_secure,
                      httponly=True, samesite="strict")
    out.delete_cookie(CSRF_COOKIE_NAME, path="/", secure=settings.cookie_secure,
                      samesite="strict")
    return out


@router.get("/me", response_model=AccountOut)
def me(principal: AnyPrincipal, session: DbSession) -> AccountOut:
    return account_out(accounts.get_account(session, principal.account_id))


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(principal: AnyPrincipal, _json: JsonBody, body: ChangePasswordRequest,
                    session: DbSession, settings: SettingsDep) -> Response:
    accounts.change_own_password(session, settings, account_id=principal.account_id,
                                 current=body.current_password.get_secret_value(),
                                 new=body.new_password.get_secret_value())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(principal: AnyPrincipal, session: DbSession) -> list[TokenOut]:
    return [token_out(t) for t in accounts.list_api_tokens(session, principal.account_id)]


@router.post("/tokens", response_model=IssuedTokenOut, status_code=status.HTTP_201_CREATED)
def create_token(principal: AnyPrincipal, _json: JsonBody, body: CreateTokenRequest,
                 session: DbSession, response: Response) -> IssuedTokenOut:
    """Creates a personal API token for the caller; the token is in this answer only."""
    issued = accounts.create_api_token(session, actor=principal.account_id,
                                       account_id=principal.account_id, name=body.name)
    response.headers["Cache-Control"] = "no-store"
    return IssuedTokenOut(**token_out(issued.row).model_dump(), token=issued.token)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(principal: AnyPrincipal, token_id: str, session: DbSession) -> TokenOut:
    return token_out(accounts.revoke_api_token(session, actor=principal.account_id,
                                               account_id=principal.account_id,
                                               token_id=token_id))
