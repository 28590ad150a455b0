"""Who is calling: a bearer API token or a session cookie, resolved to an account.

Order: an ``Authorization: Bearer`` header wins; a browser session cookie is
used otherwise. A cookie-authenticated request with an unsafe method must
carry the session's CSRF token in ``X-CSRF-Token`` (the browser sends the
cookie to any site's form post; it never lets another site read the token).
Bearer tokens need no CSRF check: browsers never attach them on their own.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from fastapi import Request
from sqlalchemy import Connection, Dialect, Update, bindparam, or_, select, update

from ..db import Database
from ..errors import AuthenticationError, CSRFError
from ..models.accounts import Account, ApiToken, LoginSession, Role
from ..models.types import utcnow
from ..rawsql import Compiled, StatementSet, query
from ..settings import Settings
from .tokens import API_TOKEN_PREFIX, csrf_token_for, digests_equal, token_digest

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
# Writes of "last used" are rate-limited so reads stay reads.
_TOUCH_INTERVAL = timedelta(seconds=60)


def session_cookie_name(settings: Settings) -> str:
    # The __Host- prefix makes the browser refuse the cookie unless it is
    # Secure, host-only and for path /, so a sibling domain cannot plant one.
    return "__Host-intake_session" if settings.cookie_secure else "intake_session"


CSRF_COOKIE_NAME = "intake_csrf"


@dataclass(frozen=True)
class Principal:
    account_id: str
    role: Role
    via: str  # "token" or "session"
    credential_id: str  # the API token's or the session's id


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationError("malformed Authorization header; use 'Bearer TOKEN'")
    return value.strip()


# One query per credential: the token or session row and its account's role
# and status, read as plain columns (no ORM objects to build per request).
_TOKEN_LOOKUP = (
    select(ApiToken.id, ApiToken.token_sha256, ApiToken.revoked_at, ApiToken.last_used_at,
           Account.id.label("account_id"), Account.role, Account.disabled)
    .join(Account, Account.id == ApiToken.account_id)
    .where(ApiToken.token_sha256 == bindparam("digest"))
)
_SESSION_LOOKUP = (
    select(LoginSession.id, LoginSession.token_sha256, LoginSession.ended_at,
           LoginSession.expires_at, LoginSession.last_seen_at,
           Account.id.label("account_id"), Account.role, Account.disabled)
    .join(Account, Account.id == LoginSession.account_id)
    .where(LoginSession.token_sha256 == bindparam("digest"))
)


class _TokenRow(NamedTuple):
    id: str
    token_sha256: str
    revoked_at: datetime | None
    last_used_at: datetime | None
    account_id: str
    role: str
    disabled: bool


class _SessionRow(NamedTuple):
    id: str
    token_sha256: str
    ended_at: datetime | None
    expires_at: datetime
    last_seen_at: datetime
    account_id: str
    role: str
    disabled: bool


class _Lookups(StatementSet):
    """The credential lookups, compiled once per dialect (every request asks)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.token = Compiled(_TOKEN_LOOKUP, dialect)
        self.session = Compiled(_SESSION_LOOKUP, dialect)


def _lookup(reader: Connection, which: str, digest: str) -> tuple[Any, ...] | None:
    """The credential's row, read on the connection's DBAPI cursor (service/rawsql.py)."""
    statements = _Lookups.for_dialect(reader.dialect)
    statement = statements.token if which == "token" else statements.session
    rows = query(reader, statements, statement, {"digest": digest})
    return rows[0] if rows else None


def _check_active(disabled: bool) -> None:
    if disabled:
        raise AuthenticationError("this account is disabled")


# A "last used" write still owed after the read-only lookup: (statement) or None.
_Touch = Update | None


def _from_token(reader: Connection, token: str, now: datetime) -> tuple[Principal, _Touch]:
    if not token.startswith(API_TOKEN_PREFIX):
        raise AuthenticationError("invalid or revoked API token")
    digest = token_digest(token)
    found = _lookup(reader, "token", digest)
    row = None if found is None else _TokenRow(*found)
    if row is None or row.revoked_at is not None or not digests_equal(row.token_sha256, digest):
        raise AuthenticationError("invalid or revoked API token")
    _check_active(row.disabled)
    touch: _Touch = None
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_INTERVAL:
        # Never moves the time backwards if a concurrent request wrote a later one.
        touch = (update(ApiToken)
                 .where(ApiToken.id == row.id,
                        or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now))
                 .values(last_used_at=now))
    return Principal(row.account_id, Role(row.role), "token", row.id), touch


def _from_session(request: Request, reader: Connection, settings: Settings,
                  cookie: str, now: datetime) -> tuple[Principal, _Touch]:
    digest = token_digest(cookie)
    found = _lookup(reader, "session", digest)
    row = None if found is None else _SessionRow(*found)
    if (row is None or row.ended_at is not None or row.expires_at <= now
            or now - row.last_seen_at > timedelta(seconds=settings.session_idle_seconds)
            or not digests_equal(row.token_sha256, digest)):
        raise AuthenticationError("your session has ended; sign in again")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        expected = csrf_token_for(settings.secret_key_bytes(), digest)
        if not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("ascii")):
            raise CSRFError(f"send the session's CSRF token in the {CSRF_HEADER} header")
    _check_active(row.disabled)
    touch: _Touch = None
    if now - row.last_seen_at > _TOUCH_INTERVAL:
        touch = (update(LoginSession)
                 .where(LoginSession.id == row.id, LoginSession.last_seen_at < now)
                 .values(last_seen_at=now))
    return Principal(row.account_id, Role(row.role), "session", row.id), touch


def authenticate(request: Request, settings: Settings) -> Principal | None:
    """The caller's principal, None if anonymous; raises if credentials are bad.

    Blocking (database I/O): call it from a worker thread. The lookup (one
    query) runs on a read-only connection (on SQLite a deferred transaction,
    which does not queue behind writers); the rare "last used" update (at
    most once a minute per credential) is then written in a session and
    transaction of its own. Both transactions are ended before returning, so
    a long upload that follows holds no database lock.
    """
    now = utcnow()
    database: Database = request.app.state.database
    token = _bearer(request)
    cookie = None if token is not None else request.cookies.get(session_cookie_name(settings))
    principal: Principal | None = None
    touch: _Touch = None
    if token is not None or cookie:
        with database.read_connection() as reader:
            if token is not None:
                principal, touch = _from_token(reader, token, now)
            elif cookie:
                principal, touch = _from_session(request, reader, settings, cookie, now)
    if touch is not None:
        with database.session() as session:
            session.execute(touch)
            session.commit()
    if principal is not None:
        request.scope.setdefault("state", {})["account_id"] = principal.account_id
    return principal
