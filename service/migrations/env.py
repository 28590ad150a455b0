"""Alembic environment: runs on a connection the runner hands over.

The runner (``runner.py``) puts an open SQLAlchemy connection in
``config.attributes["connection"]``; the URL never passes through the ini
file (it may carry a password). ``Base.metadata`` holds every model because
``evidence_intake.service.models`` imports each model module.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from evidence_intake.service import models  # noqa: F401 - registers every table
from evidence_intake.service.models.base import Base
from sqlalchemy.types import TypeDecorator

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our TypeDecorators as the plain SQLAlchemy type they store.

    Migrations then depend on SQLAlchemy alone, not on the application's
    modules as they happen to be at upgrade time.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through evidence_intake.service.migrations.runner")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: copy-and-move batches.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
