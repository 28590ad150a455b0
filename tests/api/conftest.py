"""Fixtures for the service API tests (helpers live in intake_api_support.py).

``backend`` is parametrised, so every test that uses ``api`` runs on SQLite
and on PostgreSQL. The PostgreSQL database is created fresh for the test
session (``intake_test_api_<random>``) and dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from intake_api_support import Api, fresh_postgres_database, make_api


@pytest.fixture(scope="session")
def postgres_database(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url, "intake_test_api") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    yield from make_api(tmp_path, backend, request)
