"""Login throttling per account and per client, shared through the database.

After ``max`` failures within the window, the subject is locked for the
lockout time, doubling with each further failure (capped at one hour). Rows
live in the database so every worker on every host sees the same counts.
Client addresses are stored as keyed hashes: the NGO's counsellors' addresses
are themselves sensitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ThrottledError
from ..models.accounts import LoginThrottle
from ..settings import Settings
from .tokens import keyed_digest

MAX_LOCKOUT_SECONDS = 3600


@dataclass(frozen=True)
class Subject:
    key: str
    limit: int


def subjects_for(settings: Settings, *, account_id: str | None, username: str,
                 client: str) -> list[Subject]:
    secret = settings.secret_key_bytes()
    account_key = (f"account:{account_id}" if account_id
                   else "account:?" + keyed_digest(secret, "username", username.casefold())[:40])
    client_key = "client:" + keyed_digest(secret, "client", client)[:40]
    return [Subject(account_key, settings.login_max_failures_per_account),
            Subject(client_key, settings.login_max_failures_per_client)]


def check(session: Session, subjects: list[Subject], now: datetime) -> None:
    """Raise :class:`ThrottledError` if any subject is locked at ``now``."""
    keys = [s.key for s in subjects]
    rows = session.scalars(select(LoginThrottle).where(LoginThrottle.subject.in_(keys))).all()
    waits = [(row.locked_until - now).total_seconds() for row in rows
             if row.locked_until is not None and row.locked_until > now]
    if waits:
        raise ThrottledError("too many failed logins; try again later",
                             retry_after=max(1, math.ceil(max(waits))))


def record_failure(session: Session, subjects: list[Subject], settings: Settings,
                   now: datetime) -> bool:
    """Count one failure against each subject; True if a lockout started."""
    window = timedelta(seconds=settings.login_failure_window_seconds)
    locked = False
    # Forget stale state first, so rows for names that never existed do not pile up.
    session.execute(delete(LoginThrottle).where(
        LoginThrottle.first_failure_at < now - window,
        or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now)))
    for subject in subjects:
        row = _locked_row(session, subject.key, now)
        if now - row.first_failure_at > window and (row.locked_until is None
                                                   or row.locked_until <= now):
            row.failures = 0
            row.first_failure_at = now
        row.failures += 1
        if row.failures >= subject.limit:
            over = row.failures - subject.limit
            seconds = min(settings.login_lockout_seconds * 2 ** min(over, 20), MAX_LOCKOUT_SECONDS)
            row.locked_until = now + timedelta(seconds=seconds)
            locked = True
    session.flush()
    return locked


def _locked_row(session: Session, key: str, now: datetime) -> LoginThrottle:
    """The subject's row, locked for update; created if missing.

    Two workers may fail a login for the same new subject at once: the loser
    of the insert race gets an IntegrityError inside its savepoint and reads
    the winner's row instead of failing the request.
    """
    query = select(LoginThrottle).where(LoginThrottle.subject == key).with_for_update()
    row = session.scalars(query).one_or_none()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = LoginThrottle(subject=key, failures=0, first_failure_at=now)
            session.add(row)
    except IntegrityError:
        row = session.scalars(query).one()
    return row


def clear_account(session: Session, subjects: list[Subject]) -> None:
    """A successful login forgets the account's failures (not the client's)."""
    account_keys = [s.key for s in subjects if s.key.startswith("account:")]
    session.execute(delete(LoginThrottle).where(LoginThrottle.subject.in_(account_keys)))
