"""The packaged migrations build the schema from empty on PostgreSQL, matching the models."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from evidence_intake.service import models  # noqa: F401 - registers every table
from evidence_intake.service.db import create_engine_from_settings
from evidence_intake.service.migrations.runner import (
    current_revision,
    head_revision,
    pending_differences,
    upgrade_to_head,
)
from evidence_intake.service.models.base import Base
from evidence_intake.service.settings import Settings
from sqlalchemy import inspect

pytestmark = pytest.mark.postgres


def test_upgrade_from_empty_matches_the_models_on_postgres(postgres_url: str) -> None:
    name = f"intake_test_migrations_{secrets.token_hex(6)}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = postgres_url.rpartition("/")[0] + f"/{name}"
        engine = create_engine_from_settings(Settings(database_url=url))
        try:
            upgrade_to_head(engine)
            assert current_revision(engine) == head_revision()
            assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
            assert pending_differences(engine) == []
            upgrade_to_head(engine)
        finally:
            engine.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
