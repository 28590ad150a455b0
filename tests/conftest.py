"""Fixtures shared by every test folder.

- ``shared_dir``: ``../shared`` beside the repository (test vectors). Missing
  vectors fail the run; they never make a test silently pass.
- ``postgres_url``: the PostgreSQL URL from ``INTAKE_TEST_POSTGRES_URL``. In CI
  (``CI=true``) a missing or unreachable database is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"test vectors not found: {SHARED} (clone with ../shared beside the repo)")
    return SHARED


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("INTAKE_TEST_POSTGRES_URL", "")
    if not url:
        if _in_ci():
            pytest.fail("INTAKE_TEST_POSTGRES_URL is not set; PostgreSQL tests must run in CI")
        pytest.skip("INTAKE_TEST_POSTGRES_URL is not set")
    try:
        import psycopg

        plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(plain, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as err:  # any failure to connect is reported the same way
        if _in_ci():
            pytest.fail(f"cannot connect to PostgreSQL at {url}: {err}")
        pytest.skip(f"cannot connect to PostgreSQL at {url}: {err}")
    return url
