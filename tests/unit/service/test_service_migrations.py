"""The packaged migrations build the schema from empty, and it matches the models (SQLite)."""

from __future__ import annotations

from pathlib import Path

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


def test_upgrade_from_empty_matches_the_models(tmp_path: Path) -> None:
    engine = create_engine_from_settings(Settings(data_dir=tmp_path))
    try:
        upgrade_to_head(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert pending_differences(engine) == []
        # Running it again is a no-op (intake init is idempotent).
        upgrade_to_head(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_there_is_exactly_one_head() -> None:
    from alembic.script import ScriptDirectory
    from evidence_intake.service.migrations.runner import alembic_config

    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1
