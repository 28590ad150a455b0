"""Account management: users, passwords, API tokens, login and logout.

Every change is written to the audit log in the same transaction, and each
function commits only once both are in place. Actors are account ids (or
``system`` for the command line used on the server itself), never names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit_hook
from ..errors import AuthenticationError, ConflictError, NotFoundError, PolicyError
from ..models.accounts import Account, ApiToken, LoginSession, Role
from ..models.types import utcnow
from ..settings import Settings
from . import throttle
from .passwords import (
    WeakPasswordError,
    burn_equal_time,
    hash_password,
    needs_rehash,
    password_matches,
)
from .tokens import API_TOKEN_PREFIX, SESSION_TOKEN_PREFIX, csrf_token_for, new_token

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def _hash(settings: Settings, password: str) -> str:
    try:
        return hash_password(password, opslimit=settings.argon2_opslimit,
                             memlimit=settings.argon2_memlimit)
    except WeakPasswordError as err:
        raise PolicyError(str(err)) from err


def get_account(session: Session, account_id: str) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFoundError("no such account")
    return account


def find_by_username(session: Session, username: str) -> Account | None:
    return session.scalars(select(Account).where(Account.username == username)).one_or_none()


def create_account(session: Session, settings: Settings, *, actor: str, username: str,
                   role: Role, password: str) -> Account:
    if not USERNAME.match(username):
        raise PolicyError("a user name is 2-64 characters: a-z, 0-9, '.', '_' or '-'")
    if find_by_username(session, username) is not None:
        raise ConflictError("that user name is taken")
    account = Account(username=username, role=role, password_hash=_hash(settings, password))
    session.add(account)
    try:
        session.flush()
    except IntegrityError as err:
        raise ConflictError("that user name is taken") from err
    audit_hook.record(session, actor=actor, action="user.created",
                      subject={"account": account.id}, details={"role": role.value})
    session.commit()
    return account


def reset_password(session: Session, settings: Settings, *, actor: str, account_id: str,
                   password: str) -> Account:
    """Set a new password and end the account's sessions (tokens stay valid)."""
    account = get_account(session, account_id)
    account.password_hash = _hash(settings, password)
    account.password_changed_at = utcnow()
    _end_sessions(session, account.id)
    audit_hook.record(session, actor=actor, action="user.password_reset",
                      subject={"account": account.id})
    session.commit()
    return account


def set_disabled(session: Session, *, actor: str, account_id: str, disabled: bool) -> Account:
    """Disable (or re-enable) an account; disabling ends its sessions and tokens' use."""
    account = get_account(session, account_id)
    if disabled and actor == account.id:
        raise PolicyError("you cannot disable your own account")
    account.disabled = disabled
    if disabled:
        _end_sessions(session, account.id)
    audit_hook.record(session, actor=actor,
                      action="user.disabled" if disabled else "user.enabled",
                      subject={"account": account.id})
    session.commit()
    return account


def _end_sessions(session: Session, account_id: str) -> None:
    now = utcnow()
    for row in session.scalars(select(LoginSession).where(
            LoginSession.account_id == account_id, LoginSession.ended_at.is_(None))):
        row.ended_at = now


@dataclass(frozen=True)
class IssuedToken:
    row: ApiToken
    token: str  # shown once, never stored


def create_api_token(session: Session, *, actor: str, account_id: str, name: str) -> IssuedToken:
    account = get_account(session, account_id)
    if account.disabled:
        raise PolicyError("the account is disabled")
    token, digest = new_token(API_TOKEN_PREFIX)
    row = ApiToken(account_id=account.id, name=name, token_sha256=digest)
    session.add(row)
    session.flush()
    audit_hook.record(session, actor=actor, action="token.created",
                      subject={"account": account.id, "token": row.id})
    session.commit()
    return IssuedToken(row, token)


def list_api_tokens(session: Session, account_id: str) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.account_id == account_id)
                                .order_by(ApiToken.created_at)))


def revoke_api_token(session: Session, *, actor: str, account_id: str, token_id: str) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.account_id != account_id:
        raise NotFoundError("no such token")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit_hook.record(session, actor=actor, action="token.revoked",
                          subject={"account": account_id, "token": row.id})
    session.commit()
    return row


@dataclass(frozen=True)
class LoginResult:
    account: Account
    session_token: str  # the cookie value, never stored
    csrf_token: str
    expires_at: datetime


def login(session: Session, settings: Settings, *, username: str, password: str,
          client: str) -> LoginResult:
    """Check a password under throttling; open a server-side session on success.

    Failures are committed (throttle counts and a ``login.failed`` audit entry)
    before :class:`AuthenticationError` is raised, and every failure gives the
    same answer, whether the name exists or not.
    """
    now = utcnow()
    account = find_by_username(session, username)
    subjects = throttle.subjects_for(settings, account_id=account.id if account else None,
                                     username=username, client=client)
    throttle.check(session, subjects, now)
    if account is None:
        burn_equal_time(password, opslimit=settings.argon2_opslimit,
                        memlimit=settings.argon2_memlimit)
        ok, reason = False, "unknown_account"
    elif not password_matches(account.password_hash, password):
        ok, reason = False, "bad_password"
    elif account.disabled:
        ok, reason = False, "disabled"
    else:
        ok, reason = True, ""
    if not ok or account is None:
        locked = throttle.record_failure(session, subjects, settings, now)
        audit_hook.record(session, actor=account.id if account else audit_hook.ANONYMOUS,
                          action="login.failed",
                          subject={"account": account.id} if account else {},
                          details={"reason": reason, "throttled": locked})
        session.commit()
        raise AuthenticationError("wrong user name or password, or the account is disabled")
    if needs_rehash(account.password_hash, opslimit=settings.argon2_opslimit,
                    memlimit=settings.argon2_memlimit):
        account.password_hash = _hash_unchecked(settings, password)
    throttle.clear_account(session, subjects)
    # Sessions long over are of no further use; the audit log keeps the record.
    session.execute(delete(LoginSession).where(LoginSession.expires_at < now - timedelta(days=1)))
    token, digest = new_token(SESSION_TOKEN_PREFIX)
    expires = now + timedelta(seconds=settings.session_ttl_seconds)
    row = LoginSession(account_id=account.id, token_sha256=digest, created_at=now,
                       last_seen_at=now, expires_at=expires)
    session.add(row)
    session.flush()
    audit_hook.record(session, actor=account.id, action="login.succeeded",
                      subject={"account": account.id, "session": row.id})
    session.commit()
    return LoginResult(account, token, csrf_token_for(settings.secret_key_bytes(), digest),
                       expires)


def _hash_unchecked(settings: Settings, password: str) -> str:
    """Rehash an existing password even if it predates the current length policy."""
    import nacl.pwhash.argon2id as argon2id

    hashed: bytes = argon2id.str(password.encode("utf-8"), opslimit=settings.argon2_opslimit,
                                 memlimit=settings.argon2_memlimit)
    return hashed.decode("ascii")


def logout(session: Session, *, account_id: str, session_id: str) -> None:
    row = session.get(LoginSession, session_id)
    if row is not None and row.account_id == account_id and row.ended_at is None:
        row.ended_at = utcnow()
        audit_hook.record(session, actor=account_id, action="session.ended",
                          subject={"account": account_id, "session": row.id})
    session.commit()


def change_own_password(session: Session, settings: Settings, *, account_id: str,
                        current: str, new: str) -> None:
    account = get_account(session, account_id)
    if not password_matches(account.password_hash, current):
        raise AuthenticationError("the current password is wrong")
    account.password_hash = _hash(settings, new)
    account.password_changed_at = utcnow()
    audit_hook.record(session, actor=account.id, action="user.password_changed",
                      subject={"account": account.id})
    session.commit()
