"""Apply the packaged Alembic migrations programmatically.

``intake init`` and ``intake migrate`` call :func:`upgrade_to_head`; tests call
:func:`pending_differences` to prove that the migrations produce exactly the
tables the models declare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database at ``engine`` to the newest revision (a no-op when it is)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def pending_differences(engine: Engine) -> list[Any]:
    """What autogenerate would still change: empty when the schema matches the models."""
    from .. import models  # noqa: F401 - registers every table
    from ..models.base import Base

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def regenerate_initial(message: str = "initial schema") -> Path:
    """Replace every revision with one initial migration made from the current models.

    For the lead, once all models are in (see regenerate.md). Autogenerate runs
    against an empty SQLite database in a temporary directory; the template
    adds the audit-log triggers to the initial revision.
    """
    import tempfile

    from sqlalchemy import create_engine

    versions = HERE / "versions"
    for old in versions.glob("*.py"):
        old.unlink()
    config = alembic_config()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/empty.db")
        try:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                script = command.revision(config, message=message, autogenerate=True,
                                          rev_id="0001")
        finally:
            engine.dispose()
    if script is None or isinstance(script, list):
        raise RuntimeError("alembic did not write exactly one revision")
    path = Path(script.path)
    _tidy(path)
    return path


def _tidy(path: Path) -> None:
    """Format the generated file with the project's ruff, when it is installed."""
    import shutil
    import subprocess
    import sys

    ruff = Path(sys.executable).with_name("ruff")
    command = str(ruff) if ruff.exists() else shutil.which("ruff")
    if command is None:
        return
    subprocess.run([command, "format", "-q", str(path)], check=True)  # noqa: S603
    subprocess.run([command, "check", "-q", "--fix", str(path)], check=False)  # noqa: S603


if __name__ == "__main__":
    print(regenerate_initial())
