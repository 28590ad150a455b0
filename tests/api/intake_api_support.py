"""Support for the service API tests: the app on SQLite and on PostgreSQL.

``backend`` is parametrised, so every test that uses ``api`` runs twice. The
PostgreSQL database is created fresh for the test session
(``intake_test_api_<random>``) and dropped afterwards, since other test runs
share the server. Tables are created from the models (every model module is
registered in ``evidence_intake.service.models``) plus the audit log's
append-only triggers; the migrations themselves are tested in
tests/unit/service/test_service_migrations.py.
"""

from __future__ import annotations

import contextlib
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from evidence_intake.service import models  # noqa: F401 - registers every table
from evidence_intake.service.app import create_app
from evidence_intake.service.db import Database
from evidence_intake.service.models.base import Base
from evidence_intake.service.settings import Settings
from sqlalchemy import text

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789abcdef"
PASSWORD = "correct horse battery staple"
ROLES = ("admin", "counsellor", "export_officer", "auditor")


def client_class() -> Any:
    """Starlette's TestClient, imported without its httpx deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # StarletteDeprecationWarning: httpx vs httpx2
        from fastapi.testclient import TestClient
    return TestClient


def prepare_schema(database: Database) -> None:
    """Every table; the audit log's append-only triggers come with them (DDL events)."""
    Base.metadata.create_all(database.engine)


@contextlib.contextmanager
def fresh_postgres_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """Create ``<prefix>_<random>`` with the service schema; drop it afterwards."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    url = f"{base}/{name}"
    created = Database.from_settings(Settings(database_url=url))
    try:
        prepare_schema(created)
    finally:
        created.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        # A key per app: client identifiers are keyed hashes, so throttling
        # state of one test never leaks into another sharing the database.
        "secret_key": TEST_SECRET + secrets.token_hex(8),
        "argon2_opslimit": 1,
        "argon2_memlimit": 8192,
        "log_json": True,
        **overrides,
    }
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)


@dataclass
class Api:
    """A running app, its database and helpers to make accounts and sign in."""

    client: Any
    settings: Settings
    database: Database
    audit_start: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    def create_account(self, role: str, username: str | None = None) -> tuple[str, str]:
        """(account id, user name), made directly through the domain layer."""
        from evidence_intake.service.auth.accounts import create_account
        from evidence_intake.service.models.accounts import Role

        username = username or self.unique(role.replace("_", "-"))
        with self.database.session() as session:
            account = create_account(session, self.settings, actor="system", username=username,
                                     role=Role(role), password=PASSWORD)
            return account.id, username

    def token_for(self, role: str) -> str:
        """A bearer token of a fresh account with ``role`` (cached per test)."""
        if role not in self.tokens:
            from evidence_intake.service.auth.accounts import create_api_token

            account_id, _ = self.create_account(role)
            with self.database.session() as session:
                issued = create_api_token(session, actor="system", account_id=account_id,
                                          name="test")
            self.tokens[role] = issued.token
            self.accounts[role] = account_id
        return self.tokens[role]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(role)}"}

    def audit_actions(self) -> list[str]:
        """The ``action`` of every audit entry in the database, by ``seq`` (index = seq)."""
        with self.database.engine.connect() as conn:
            rows = conn.execute(text("SELECT action FROM audit_entries ORDER BY seq"))
            return [row[0] for row in rows]

    def new_audit_actions(self) -> list[str]:
        """The actions written since this app started (the PostgreSQL database is shared)."""
        return self.audit_actions()[self.audit_start:]


def make_api(tmp_path: Path, backend: str, request: pytest.FixtureRequest,
             **overrides: Any) -> Iterator[Api]:
    url = request.getfixturevalue("postgres_database") if backend == "postgres" else None
    settings = make_settings(tmp_path / "var", url, **overrides)
    database = Database.from_settings(settings)
    if url is None:
        prepare_schema(database)
    app = create_app(settings, database=database)
    tc = client_class()
    with tc(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        with database.engine.connect() as conn:
            start = conn.execute(text("SELECT COUNT(*) FROM audit_entries")).scalar_one()
        yield Api(client, settings, database, audit_start=int(start))
    database.dispose()


