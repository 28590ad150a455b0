"""Database engine and sessions, made from settings (never at import time).

SQLite is the embedded default. Each connection gets:

- ``journal_mode=WAL`` so readers never block the writer;
- ``foreign_keys=ON`` (SQLite ignores foreign keys otherwise);
- ``busy_timeout`` so concurrent writers wait instead of failing;
- ``synchronous=FULL``: a committed statement survives a power cut, which an
  evidence store owes its witnesses;
- transactions opened with ``BEGIN IMMEDIATE``: the write lock is taken at the
  start, so two transactions that both read then write cannot deadlock on the
  lock upgrade, and audit-log appends (read the head, write the next entry)
  are serialised across processes;
- except in :meth:`Database.read_session` and :meth:`Database.read_connection`,
  whose transactions only read:
  they open with a plain (deferred) ``BEGIN``, i.e. a WAL snapshot that takes
  no lock, so authentication and key lookups do not queue behind a writer's
  commit (and its fsync). Such a session must not write: a deferred
  transaction that writes can fail to upgrade its lock under contention.

PostgreSQL (``postgresql+psycopg://``) is used as is; pool pre-ping drops
connections the server closed, so several workers survive a database restart.
The single-SELECT lookups of :meth:`Database.read_connection` run there in
autocommit (no BEGIN and ROLLBACK round trips); every write is a transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from .settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 15_000
# Execution option marking the connections of read-only sessions.
_READ_ONLY = "intake_read_only"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (the "begin" hook below) decide when transactions
        # start, instead of the sqlite3 module's implicit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY)
        statement = "BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE"
        # Sent straight to the driver: every transaction begins here, and
        # SQLAlchemy's statement machinery cost more than the BEGIN itself.
        # Errors (a lock not granted within busy_timeout) are raised as
        # SQLAlchemy would raise them.
        try:
            connection.connection.driver_connection.execute(statement)
        except sqlite3.Error as err:
            raise DBAPIError.instance(statement, None, err, sqlite3.Error,
                                      dialect=connection.dialect) from err


def create_engine_from_settings(settings: Settings) -> Engine:
    """A new engine for ``settings.sqlalchemy_url``; the caller disposes of it."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        if settings.database_url is None:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """An engine and its session factory; one per application instance."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(bind=engine, expire_on_commit=False)
        # Same pool and event hooks; only the begin statement differs (SQLite).
        self._read_engine = engine.execution_options(**{_READ_ONLY: True})
        self._read_sessions = sessionmaker(bind=self._read_engine, expire_on_commit=False)
        # PostgreSQL: the lookups of read_connection run in autocommit. Each is
        # one SELECT, atomic on its own, so a BEGIN and a ROLLBACK would only
        # add two round trips to every request's credential and key lookups.
        self._lookup_engine = (
            self._read_engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql" else self._read_engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(create_engine_from_settings(settings))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose uncommitted work is rolled back when the block ends."""
        with self.sessions() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only; its transaction is rolled back when the block ends.

        On SQLite it does not take the write lock (see the module docstring);
        writing through it is a bug. On PostgreSQL it is an ordinary session.
        """
        with self._read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """Like :meth:`read_session`, without the ORM: a plain connection for Core reads.

        For the lookups every request makes (credentials, keys), where an ORM
        session's bookkeeping would cost more than the query. On PostgreSQL the
        connection is in autocommit: every statement reads its own snapshot, so
        use it for lookups that need no consistency across statements.
        """
        with self._lookup_engine.connect() as connection:
            try:
                yield connection
            finally:
                connection.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
