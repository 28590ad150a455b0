"""service/rawsql.py: compiled statements on the DBAPI cursor behave as Connection.execute.

Values go through the column types' bind processors and come back through
their result processors; a statement's fixed values (a LIMIT) are sent; driver
errors surface as SQLAlchemy's exceptions. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from evidence_intake.service.db import Database
from evidence_intake.service.models.recipients import KeyKind
from evidence_intake.service.models.types import UTCDateTime
from evidence_intake.service.rawsql import Compiled, RawCursor, StatementSet
from evidence_intake.service.settings import Settings
from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    Enum,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

metadata = MetaData()
things = Table(
    f"rawsql_things_{secrets.token_hex(4)}", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=True),
    Column("kind", Enum(KeyKind, native_enum=False, length=32)),
    Column("flag", Boolean),
    Column("name", String(40)),
)


class _Things(StatementSet):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.insert = Compiled(insert(things), dialect, ("id", "at", "kind", "flag", "name"))
        self.newest = Compiled(
            select(things.c.id, things.c.at, things.c.kind, things.c.flag, things.c.name)
            .where(things.c.name == bindparam("name")).order_by(things.c.id.desc()).limit(1),
            dialect)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Database]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    else:
        settings = Settings(database_url=request.getfixturevalue("postgres_url"))
    created = Database.from_settings(settings)
    metadata.create_all(created.engine)
    try:
        yield created
    finally:
        metadata.drop_all(created.engine)
        created.dispose()


def test_values_round_trip_through_the_column_types(database: Database) -> None:
    bangkok = timezone(timedelta(hours=7))
    at = datetime(2026, 11, 29, 20, 30, 15, 123456, tzinfo=bangkok)
    with database.write_connection() as connection:
        connection.begin()
        statements = _Things.for_dialect(connection.dialect)
        cursor = RawCursor(connection, statements)
        try:
            cursor.executemany(statements.insert, [
                {"id": 1, "at": at, "kind": KeyKind.x25519, "flag": True, "name": "a"},
                {"id": 2, "at": None, "kind": KeyKind.mlkem768x25519, "flag": False,
                 "name": "a"},
            ])
            cursor.execute(statements.newest, {"name": "a"})  # LIMIT 1, a fixed value
            newest = cursor.rows(statements.newest)
            with pytest.raises(IntegrityError):  # as Connection.execute would raise it
                cursor.execute(statements.insert, {"id": 1, "at": at, "kind": KeyKind.x25519,
                                                   "flag": True, "name": "b"})
        finally:
            cursor.close()
        connection.rollback()
    assert newest == [(2, None, KeyKind.mlkem768x25519, False, "a")]
    # What SQLAlchemy reads back for the first row, and what the raw path reads.
    with database.write_connection() as connection:
        connection.begin()
        statements = _Things.for_dialect(connection.dialect)
        cursor = RawCursor(connection, statements)
        try:
            cursor.execute(statements.insert, {"id": 1, "at": at, "kind": KeyKind.x25519,
                                               "flag": True, "name": "c"})
            cursor.execute(statements.newest, {"name": "c"})
            raw = cursor.rows(statements.newest)
        finally:
            cursor.close()
        general = connection.execute(select(things).where(things.c.name == "c")).one()
        connection.rollback()
    assert raw == [tuple(general)]
    assert raw[0][1] == at and raw[0][1].tzinfo == UTC  # stored and read as UTC
