"""Fixtures for the service API tests (helpers live in intake_api_support.py).

``backend`` is parametrised, so every test that uses ``api`` runs on SQLite
and on PostgreSQL. The PostgreSQL database is created fresh for the test
session (``intake_test_api_<random>``) and dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidence_intake.service.db import Database
from evidence_intake.service.settings import Settings
from intake_api_support import Api, make_api, prepare_schema


@pytest.fixture(scope="session")
def postgres_database(postgres_url: str) -> Iterator[str]:
    import psycopg

    name = f"intake_test_api_{secrets.token_hex(6)}"
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
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    yield from make_api(tmp_path, backend, request)
