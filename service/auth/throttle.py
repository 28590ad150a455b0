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

from sqlalchemy import delete, select
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
    for subject in subjects:
        row = session.scalars(select(LoginThrottle).where(LoginThrottle.subject == subject.key)
                              .with_for_update()).one_or_none()
        if row is None:
            row = LoginThrottle(subject=subject.key, failures=0, first_failure_at=now)
            session.add(row)
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


def clear_account(session: Session, subjects: list[Subject]) -> None:
    """A successful login forgets the account's failures (not the client's)."""
    account_keys = [s.key for s in subjects if s.key.startswith("account:")]
    session.execute(delete(LoginThrottle).where(LoginThrottle.subject.in_(account_keys)))
