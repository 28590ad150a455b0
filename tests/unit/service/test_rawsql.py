"""service/rawsql.py: compiled statements on the DBAPI cursor behave as Connection.execute.

Values go through the column types' bind processors and come back through
their result processors; a statement's fixed values (a LIMIT) are sent; driver
errors surface as SQLAlchemy's exceptions. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from evidence_intake.service.db import Database
from evidence_intake.service.models.recipients import KeyKind
from evidence_intake.service.models.types import UTCDateTime
from evidence_intake.service.rawsql import Compiled, RawCursor, StatementSet, still_uncommitted
from evidence_intake.service.settings import Settings
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Dialect,
    Enum,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
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
    Column("note", Text, nullable=True),
    Column("data", LargeBinary, nullable=True),
)


class _Things(StatementSet):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.insert = Compiled(insert(things), dialect, ("id", "at", "kind", "flag", "name"))
        self.insert_all = Compiled(insert(things), dialect,
                                   ("id", "at", "kind", "flag", "name", "note", "data"))
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
        general = connection.execute(
            select(things.c.id, things.c.at, things.c.kind, things.c.flag, things.c.name)
            .where(things.c.name == "c")).one()
        connection.rollback()
    assert raw == [tuple(general)]
    assert raw[0][1] == at and raw[0][1].tzinfo == UTC  # stored and read as UTC


@contextmanager
def _raw_cursor(database: Database) -> Iterator[tuple[Connection, _Things, RawCursor]]:
    """A write transaction begun, its statements and a raw cursor (closed at the end)."""
    with database.write_connection() as connection:
        connection.begin()
        statements = _Things.for_dialect(connection.dialect)
        cursor = RawCursor(connection, statements)
        try:
            yield connection, statements, cursor
        finally:
            cursor.close()


# Values that client-side binding must quote exactly: quotes, backslashes,
# placeholders, statement separators, a COMMIT, Burmese, every byte value.
_AWKWARD_NOTES = [
    "it's \\ a 'quoted' \"value\"",
    "%s %(name)s %% {0}",
    "x'); DROP TABLE things; COMMIT; --",
    "\u1019\u103c\u1014\u103a\u1019\u102c \u1005\u102c",  # Burmese (Unicode)
    "line\nbreak\ttab\r\n",
    "",
]


def _awkward_rows(first_id: int) -> list[dict[str, object]]:
    at = datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=6, minutes=30)))
    rows: list[dict[str, object]] = [
        {"id": first_id + index, "at": at if index % 2 else None,
         "kind": KeyKind.x25519 if index % 2 else KeyKind.mlkem768x25519,
         "flag": bool(index % 2), "name": "awkward", "note": note,
         "data": bytes(range(256)) if index % 2 else b"\x00'\\"}
        for index, note in enumerate(_AWKWARD_NOTES)]
    rows.append({"id": first_id + len(rows), "at": None, "kind": KeyKind.x25519,
                 "flag": None, "name": "awkward", "note": None, "data": None})
    return rows


def test_write_and_commit_stores_every_value_exactly(database: Database) -> None:
    rows = _awkward_rows(100)
    called: list[bool] = []
    with _raw_cursor(database) as (connection, statements, cursor):
        cursor.write_and_commit([(statements.insert_all, rows[:3]),
                                 (statements.insert_all, []),  # no rows: no statement
                                 (statements.insert_all, rows[3:])],
                                lambda: called.append(connection.in_transaction()))
        assert not connection.in_transaction()
    assert called == [True]
    with database.read_connection() as reader:
        stored = reader.execute(select(things).where(things.c.name == "awkward")
                                .order_by(things.c.id)).all()
    assert [row._asdict() for row in stored] == rows
    with database.read_connection() as reader:  # the table is still there
        assert reader.execute(select(things.c.id).limit(1)).first() is not None


def test_a_failed_write_leaves_nothing_committed(database: Database) -> None:
    rows = _awkward_rows(200)
    duplicate = {**rows[0], "note": "a second row 200"}
    called: list[bool] = []
    with _raw_cursor(database) as (connection, statements, cursor):
        with pytest.raises(IntegrityError):
            cursor.write_and_commit([(statements.insert_all, rows[:2]),
                                     (statements.insert_all, [duplicate]),
                                     (statements.insert_all, rows[2:])],
                                    lambda: called.append(True))
        # PostgreSQL: the COMMIT went out with the writes but never ran, and
        # the server says so. SQLite: the failure came before the commit, but
        # the driver cannot vouch for that, so the answer is "unknown".
        postgres = connection.dialect.name == "postgresql"
        assert still_uncommitted(connection) is postgres
        assert called == ([True] if postgres else [])
        connection.rollback()
    with database.read_connection() as reader:
        assert reader.execute(select(things.c.id).where(things.c.id >= 200)).all() == []
