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
- writers queue in a gate before ``BEGIN IMMEDIATE``: a thread lock within the
  process and an ``flock`` on ``<database>.writer-lock`` across processes. Both
  wake the next writer the moment the previous one's connection returns to the
  pool, whereas SQLite's own busy handler polls with sleeps growing to 100 ms,
  which left the write lock idle most of the time under concurrent uploads. The
  gate only orders writers; SQLite's lock still guarantees exclusion (a writer
  that waited longer than the busy timeout goes on to SQLite without it);
- except in :meth:`Database.read_session`, whose transactions only read:
  they open with a plain (deferred) ``BEGIN``, i.e. a WAL snapshot that takes
  no lock, so authentication and key lookups do not queue behind a writer's
  commit (and its fsync). Such a session must not write: a deferred
  transaction that writes can fail to upgrade its lock under contention.

PostgreSQL (``postgresql+psycopg://``) is used as is; pool pre-ping drops
connections the server closed, so several workers survive a database restart.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from .settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 15_000
# Execution option marking the connections of read-only sessions.
_READ_ONLY = "intake_read_only"


class _WriterGate:
    """Orders SQLite write transactions: one per process, then one across processes."""

    _POLL_SECONDS = 0.0005

    def __init__(self, lock_path: Path | None, timeout: float) -> None:
        self._lock_path = lock_path
        self._timeout = timeout
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._lock_path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # not inherited across fork
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> bool:
        """True once this thread holds the gate; False if it waited past the timeout."""
        deadline = time.monotonic() + self._timeout
        if not self._thread_lock.acquire(timeout=self._timeout):
            return False
        try:
            fd = self._file()
            if fd is None:
                return True
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(self._POLL_SECONDS)
        except BaseException:
            self._thread_lock.release()
            raise
        self._thread_lock.release()
        return False

    def release(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


_GATE_HELD = "intake_writer_gate"


def _configure_sqlite(engine: Engine) -> None:
    database = engine.url.database
    lock_path = (Path(database).with_name(Path(database).name + ".writer-lock")
                 if database and database != ":memory:" else None)
    gate = _WriterGate(lock_path, SQLITE_BUSY_TIMEOUT_MS / 1000)

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
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        info = connection.connection.info
        if not info.get(_GATE_HELD):
            info[_GATE_HELD] = gate.acquire()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(info)
            raise

    def _release(info: dict[str, Any]) -> None:
        if info.pop(_GATE_HELD, False):
            gate.release()

    # The gate is held until the connection goes back to the pool, i.e. after
    # the COMMIT or ROLLBACK has run (the engine's commit event fires before).
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        _release(record.info)


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
        self._read_sessions = sessionmaker(bind=engine.execution_options(**{_READ_ONLY: True}),
                                           expire_on_commit=False)

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

    def dispose(self) -> None:
        self.engine.dispose()
