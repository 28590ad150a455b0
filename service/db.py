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
- and a write gate in front of that ``BEGIN IMMEDIATE`` (:class:`_WriteGate`):
  within a process, writers queue on a lock and the next one starts as soon as
  the last one commits or rolls back; only one thread per process then asks
  SQLite, retrying every millisecond at most while another process writes.
  SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... 100 ms between
  tries, so under load its waiters slept long after the lock was free (90th
  percentile 80-180 ms with 16 concurrent statements, most of them idle). The
  wait is bounded as before: ``database is locked`` once the connection's
  ``busy_timeout`` has passed;
- except in :meth:`Database.read_session` and :meth:`Database.read_connection`,
  whose transactions only read:
  they open with a plain (deferred) ``BEGIN``, i.e. a WAL snapshot that takes
  no lock, so authentication and key lookups do not queue behind a writer's
  commit (and its fsync). Such a session must not write: a deferred
  transaction that writes can fail to upgrade its lock under contention.

PostgreSQL (``postgresql+psycopg://``) is used as is; a connection that sat
idle in the pool is pinged before use, and a dead one replaced, so several
workers survive a database restart (see :func:`_ping_idle_connections`).
The single-SELECT lookups of :meth:`Database.read_connection` run there in
autocommit (no BEGIN and ROLLBACK round trips), on a pool of their own whose
connections are made in autocommit (:func:`create_lookup_engine`); every
write is a transaction. Both pools hold as many connections as the worker
threads that use them at once, so a steady load opens no new ones.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from . import threads
from .settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 15_000
# Execution option marking the connections of read-only sessions.
_READ_ONLY = "intake_read_only"


# Between two tries at BEGIN IMMEDIATE while another process writes: short
# at first (a commit takes about a millisecond), never longer than this.
_RETRY_FIRST_SECONDS = 0.0001
_RETRY_MAX_SECONDS = 0.001


class _WriteGate:
    """One process's queue for SQLite's write lock (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def enter(self, connection: _GatedConnection) -> None:
        """Take the gate, then SQLite's write lock (BEGIN IMMEDIATE) on ``connection``.

        Waits at most the connection's ``busy_timeout`` in all, as SQLite would.
        """
        (timeout_ms,) = connection.execute("PRAGMA busy_timeout").fetchone()
        deadline = time.monotonic() + timeout_ms / 1000
        if not self._lock.acquire(timeout=timeout_ms / 1000):
            raise sqlite3.OperationalError(
                "database is locked (by another writer of this process)")
        connection.gate_held = True
        try:
            connection.execute("PRAGMA busy_timeout=0")
            try:
                delay = _RETRY_FIRST_SECONDS
                while True:
                    try:
                        connection.execute("BEGIN IMMEDIATE")
                        break
                    except sqlite3.OperationalError as err:
                        if (getattr(err, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY
                                or time.monotonic() + delay > deadline):
                            raise
                    time.sleep(delay)
                    delay = min(2 * delay, _RETRY_MAX_SECONDS)
            finally:
                connection.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
        except BaseException:
            if connection.in_transaction:  # begun, then the pragma failed
                with contextlib.suppress(sqlite3.Error):
                    connection.rollback()
            self.exit(connection, closed=True)  # if the rollback did not leave already
            raise

    def exit(self, connection: _GatedConnection, *, closed: bool = False) -> None:
        """Leave the gate once ``connection``'s transaction has ended (or it was closed)."""
        if connection.gate_held and (closed or not connection.in_transaction):
            connection.gate_held = False
            self._lock.release()


class _GatedConnection(sqlite3.Connection):
    """A sqlite3 connection that leaves its engine's write gate when its transaction ends.

    SQLAlchemy ends transactions through ``commit`` and ``rollback`` (also when
    the pool resets a returned connection); a failed COMMIT leaves the
    transaction open, so the gate is kept until the rollback that follows.
    """

    gate: _WriteGate | None = None
    gate_held = False

    def begin_write(self) -> None:
        if self.gate is None:
            self.execute("BEGIN IMMEDIATE")
        else:
            self.gate.enter(self)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if self.gate is not None:
                self.gate.exit(self)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            if self.gate is not None:
                self.gate.exit(self)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.gate is not None:
                self.gate.exit(self, closed=True)


def _configure_sqlite(engine: Engine) -> None:
    gate = _WriteGate()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (the "begin" hook below) decide when transactions
        # start, instead of the sqlite3 module's implicit BEGIN.
        dbapi_connection.isolation_level = None
        dbapi_connection.gate = gate
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
        driver = connection.connection.driver_connection
        try:
            if read_only:
                driver.execute(statement)
            else:
                driver.begin_write()
        except sqlite3.Error as err:
            raise DBAPIError.instance(statement, None, err, sqlite3.Error,
                                      dialect=connection.dialect) from err


def create_engine_from_settings(settings: Settings) -> Engine:
    """A new engine for ``settings.sqlalchemy_url``; the caller disposes of it."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        if settings.database_url is None:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A database file: a pool of connections. In memory (``sqlite://``, as
        # for the OpenAPI document) SQLAlchemy keeps one per thread instead.
        pooling = ({} if make_url(url).database in (None, "", ":memory:") else
                   {"pool_size": settings.worker_threads,
                    "max_overflow": threads.LONG_WORK + threads.SOCKET_READERS})
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "factory": _GatedConnection}, **pooling)
        _configure_sqlite(engine)
        return engine
    # Writes: the statement commit (one batch at a time), sessions of the
    # routes, exports and the checkpoint signer.
    engine = create_engine(url, pool_size=settings.worker_threads,
                           max_overflow=threads.LONG_WORK + threads.SOCKET_READERS)
    _ping_idle_connections(engine)
    return engine


def create_lookup_engine(settings: Settings) -> Engine | None:
    """PostgreSQL: the engine of :meth:`Database.read_connection`; None on SQLite.

    Its connections are made in autocommit. Taken from the main pool instead,
    each lookup switched its connection to autocommit at checkout and back at
    checkin (SQLAlchemy's isolation-level handling, about a twentieth of a
    small statement's CPU for its two lookups), and the lookups and writes
    together needed more connections than the pool kept, so connections were
    opened and closed under a steady load. The credential and key lookups
    run in the worker threads (at most ``worker_threads``) and in the threads
    reading large uploads.
    """
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        return None
    engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=settings.worker_threads,
                           max_overflow=threads.SOCKET_READERS)
    _ping_idle_connections(engine)
    return engine


# A pooled connection unused for longer than this is pinged before it is
# handed out; see _ping_idle_connections.
PING_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Check a connection that sat idle in the pool before using it (pessimistic handling).

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip on
    PostgreSQL, up to three per request. Here only a connection that sat in
    the pool longer than :data:`PING_IDLE_SECONDS` is pinged; a dead one is
    discarded and the pool hands out another (SQLAlchemy retries a checkout
    whose handler raises ``DisconnectionError``). So a worker still survives
    a database restart: after one, its idle connections fail their ping and
    are replaced. A connection in steady use skips the ping; if the server
    went away in the last second, the statement fails with a disconnect
    error, SQLAlchemy invalidates the whole pool, and the request fails as
    any request in flight during a restart does.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since <= PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:
            raise DisconnectionError("the pooled connection is dead") from err


class Database:
    """An engine and its session factory; one per application instance."""

    def __init__(self, engine: Engine, lookup_engine: Engine | None = None) -> None:
        """``lookup_engine`` (PostgreSQL, in autocommit) serves :meth:`read_connection`.

        Without one, the lookups take ``engine``'s connections, switched to
        autocommit for the lookup on PostgreSQL.
        """
        self.engine = engine
        self.sessions = sessionmaker(bind=engine, expire_on_commit=False)
        # Same pool and event hooks; only the begin statement differs (SQLite).
        self._read_engine = engine.execution_options(**{_READ_ONLY: True})
        self._read_sessions = sessionmaker(bind=self._read_engine, expire_on_commit=False)
        # PostgreSQL: the lookups of read_connection run in autocommit. Each is
        # one SELECT, atomic on its own, so a BEGIN and a ROLLBACK would only
        # add two round trips to every request's credential and key lookups.
        self._own_lookup_engine = lookup_engine
        if lookup_engine is not None:
            self._lookup_engine = lookup_engine.execution_options(**{_READ_ONLY: True})
        elif engine.dialect.name == "postgresql":
            self._lookup_engine = self._read_engine.execution_options(
                isolation_level="AUTOCOMMIT")
        else:
            self._lookup_engine = self._read_engine

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(create_engine_from_settings(settings), create_lookup_engine(settings))

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
    def write_connection(self) -> Iterator[Connection]:
        """A plain connection for one write transaction, rolled back unless committed.

        Like :meth:`session` without the ORM: its first statement begins the
        transaction (on SQLite ``BEGIN IMMEDIATE``, through the write gate);
        the caller commits.
        """
        with self.engine.connect() as connection:
            try:
                yield connection
            except BaseException:
                connection.rollback()
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
        if self._own_lookup_engine is not None:
            self._own_lookup_engine.dispose()
