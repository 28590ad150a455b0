"""Login throttling: lockout at the limit, doubling, forgetting after the window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidence_intake.service import models  # noqa: F401 - registers every table
from evidence_intake.service.auth import throttle
from evidence_intake.service.db import Database
from evidence_intake.service.errors import ThrottledError
from evidence_intake.service.models.base import Base
from evidence_intake.service.settings import Settings
from sqlalchemy.orm import Session

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Session, Settings]]:
    settings = Settings(data_dir=tmp_path, secret_key="s" * 40, login_max_failures_per_account=3,
                        login_max_failures_per_client=100, login_lockout_seconds=60,
                        login_failure_window_seconds=900)
    database = Database.from_settings(settings)
    Base.metadata.create_all(database.engine)
    with database.session() as session:
        yield session, settings
    database.dispose()


def _subjects(settings: Settings) -> list[throttle.Subject]:
    return throttle.subjects_for(settings, account_id="acc-1", username="a", client="10.0.0.1")


def test_lockout_starts_at_the_limit_and_doubles(setup: tuple[Session, Settings]) -> None:
    session, settings = setup
    subjects = _subjects(settings)
    assert not throttle.record_failure(session, subjects, settings, T0)
    assert not throttle.record_failure(session, subjects, settings, T0)
    throttle.check(session, subjects, T0)
    assert throttle.record_failure(session, subjects, settings, T0)
    with pytest.raises(ThrottledError) as first:
        throttle.check(session, subjects, T0 + timedelta(seconds=1))
    assert 58 <= first.value.retry_after <= 60
    later = T0 + timedelta(seconds=61)
    throttle.check(session, subjects, later)  # the first lockout is over
    assert throttle.record_failure(session, subjects, settings, later)
    with pytest.raises(ThrottledError) as second:
        throttle.check(session, subjects, later)
    assert second.value.retry_after == 120


def test_failures_are_forgotten_after_the_window(setup: tuple[Session, Settings]) -> None:
    session, settings = setup
    subjects = _subjects(settings)
    throttle.record_failure(session, subjects, settings, T0)
    throttle.record_failure(session, subjects, settings, T0)
    much_later = T0 + timedelta(seconds=901)
    assert not throttle.record_failure(session, subjects, settings, much_later)
    throttle.check(session, subjects, much_later)


def test_success_clears_the_account_but_not_the_client(setup: tuple[Session, Settings]) -> None:
    session, settings = setup
    subjects = _subjects(settings)
    for _ in range(3):
        throttle.record_failure(session, subjects, settings, T0)
    throttle.clear_account(session, subjects)
    throttle.check(session, subjects, T0)
    from evidence_intake.service.models.accounts import LoginThrottle

    remaining = {row.subject: row.failures for row in session.query(LoginThrottle)}
    assert list(remaining.values()) == [3]
    assert next(iter(remaining)).startswith("client:")
    assert "10.0.0.1" not in next(iter(remaining))
