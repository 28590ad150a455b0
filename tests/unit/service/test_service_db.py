"""The database layer: SQLite pragmas per connection, and nothing made at import time."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidence_intake.service import models  # noqa: F401 - registers every table
from evidence_intake.service.db import SQLITE_BUSY_TIMEOUT_MS, Database
from evidence_intake.service.models.accounts import ApiToken
from evidence_intake.service.models.base import Base
from evidence_intake.service.settings import Settings
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError


def test_sqlite_connections_get_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    database = Database.from_settings(Settings(data_dir=tmp_path))
    try:
        with database.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == SQLITE_BUSY_TIMEOUT_MS
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL
    finally:
        database.dispose()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    database = Database.from_settings(Settings(data_dir=tmp_path))
    try:
        Base.metadata.create_all(database.engine)
        with database.session() as session, pytest.raises(IntegrityError):
            session.add(ApiToken(account_id="no-such-account", name="x", token_sha256="0" * 64))
            session.commit()
    finally:
        database.dispose()


def test_importing_the_service_creates_nothing(tmp_path: Path) -> None:
    code = ("import evidence_intake.service.app, evidence_intake.service.asgi, "
            "evidence_intake.service.cli, evidence_intake.service.routes.auth")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """Sessions take the write lock at BEGIN; read connections and sessions take none."""
    database = Database.from_settings(Settings(data_dir=tmp_path))
    try:
        Base.metadata.create_all(database.engine)
        with database.session() as writer:
            writer.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the write lock is held
            with database.read_connection() as reader:
                assert reader.execute(text("SELECT 1")).scalar_one() == 1
                assert reader.in_transaction()
            with database.read_session() as session:
                assert session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_a_begin_refused_by_a_held_lock_is_a_sqlalchemy_error(tmp_path: Path) -> None:
    database = Database.from_settings(Settings(data_dir=tmp_path))
    try:
        Base.metadata.create_all(database.engine)
        with database.engine.connect() as holder:
            holder.execute(text("SELECT 1"))  # BEGIN IMMEDIATE through the begin hook
            with database.engine.connect() as waiter:
                # On the driver: a statement through SQLAlchemy would begin first.
                waiter.connection.driver_connection.execute("PRAGMA busy_timeout=50")
                with pytest.raises(OperationalError, match="locked"):
                    waiter.execute(text("SELECT 1"))
    finally:
        database.dispose()


def _gate_is_free(database: Database) -> bool:
    """Whether a write transaction could start in this process right now."""
    with database.engine.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA busy_timeout=50")
        try:
            conn.execute(text("SELECT 1"))
        except OperationalError:
            return False
        conn.rollback()
        return True


def test_the_write_gate_opens_again_after_commit_rollback_and_a_refused_begin(
        tmp_path: Path) -> None:
    import sqlite3

    database = Database.from_settings(Settings(data_dir=tmp_path))
    try:
        Base.metadata.create_all(database.engine)
        with database.session() as session:
            session.execute(text("CREATE TABLE counter (n INTEGER)"))
            session.commit()
        assert _gate_is_free(database)
        with database.session() as session:
            session.execute(text("INSERT INTO counter VALUES (1)"))
            assert not _gate_is_free(database)  # held: this thread's own transaction
            session.rollback()
        assert _gate_is_free(database)

        # Another process's writer (here: a plain connection) holds SQLite's lock:
        # BEGIN IMMEDIATE is refused after the connection's busy_timeout, the
        # gate opens again, and writing works once the other writer is done.
        other = sqlite3.connect(tmp_path / "intake.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with database.engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=50")
            with pytest.raises(OperationalError, match="locked"):
                conn.execute(text("SELECT 1"))
            # The connection's own busy_timeout is restored after the attempt.
            assert conn.connection.driver_connection.execute(
                "PRAGMA busy_timeout").fetchone() == (50,)
        other.rollback()
        other.close()
        assert _gate_is_free(database)
    finally:
        database.dispose()


def test_writers_of_one_process_queue_at_the_gate_and_all_commit(tmp_path: Path) -> None:
    import threading

    database = Database.from_settings(Settings(data_dir=tmp_path))
    try:
        with database.session() as session:
            session.execute(text("CREATE TABLE counter (n INTEGER)"))
            session.execute(text("INSERT INTO counter VALUES (0)"))
            session.commit()
        errors: list[BaseException] = []

        def add(times: int) -> None:
            try:
                for _ in range(times):
                    with database.session() as session:
                        value = session.execute(text("SELECT n FROM counter")).scalar_one()
                        session.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})
                        session.commit()
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=add, args=(25,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with database.read_connection() as reader:
            assert reader.execute(text("SELECT n FROM counter")).scalar_one() == 200
    finally:
        database.dispose()


@pytest.fixture
def own_postgres(postgres_url: str) -> Iterator[str]:
    """A database of this test's own: cutting its connections touches no other test."""
    import secrets

    import psycopg

    name = f"intake_test_ping_{secrets.token_hex(6)}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _terminate_backends(database: Database, postgres_url: str) -> None:
    """What a server restart does to the pool: every connection of it is cut."""
    import psycopg

    name = database.engine.url.database
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))


def test_postgresql_idle_connections_are_pinged_and_replaced(
        own_postgres: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidence_intake.service import db as db_module

    database = Database.from_settings(Settings(database_url=own_postgres))
    try:
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        _terminate_backends(database, postgres_url)
        # Idle longer than the threshold: the ping finds it dead, the pool
        # hands out a new connection and the statement works.
        monkeypatch.setattr(db_module, "PING_IDLE_SECONDS", 0.0)
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_postgresql_a_connection_in_steady_use_fails_once_then_the_pool_recovers(
        own_postgres: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidence_intake.service import db as db_module
    from sqlalchemy.exc import DBAPIError

    monkeypatch.setattr(db_module, "PING_IDLE_SECONDS", 3600.0)  # never pinged
    database = Database.from_settings(Settings(database_url=own_postgres))
    try:
        with database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        _terminate_backends(database, postgres_url)
        with database.engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text("SELECT 1"))
        assert caught.value.connection_invalidated
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_postgresql_lookups_have_an_autocommit_pool_of_their_own(
        own_postgres: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from evidence_intake.service import db as db_module

    # More threads than SQLAlchemy's default pool size (5).
    settings = Settings(database_url=own_postgres, worker_threads=7)
    database = Database.from_settings(settings)
    try:
        lookup_pool = database._lookup_engine.pool
        assert lookup_pool is not database.engine.pool
        with database.read_connection() as reader:
            assert reader.connection.driver_connection.autocommit
            assert reader.execute(text("SELECT 1")).scalar_one() == 1
        with database.write_connection() as writer:
            assert not writer.connection.driver_connection.autocommit

        # As many lookups at once as worker threads, again and again: the
        # pool keeps its connections (none opened and closed per lookup).
        together = threading.Barrier(settings.worker_threads)

        def lookup(_: int) -> int:
            with database.read_connection() as reader:
                pid = int(reader.execute(text("SELECT pg_backend_pid()")).scalar_one())
                together.wait(timeout=30)  # every thread holds a connection now
                return pid

        with ThreadPoolExecutor(settings.worker_threads) as threads:
            pids = set()
            for _ in range(20):
                pids.update(threads.map(lookup, range(settings.worker_threads)))
        assert len(pids) <= settings.worker_threads

        # A restart cuts these connections too: idle ones are pinged and replaced.
        _terminate_backends(database, postgres_url)
        monkeypatch.setattr(db_module, "PING_IDLE_SECONDS", 0.0)
        with database.read_connection() as reader:
            assert reader.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()
    assert lookup_pool.checkedin() == 0  # disposed with the database


def test_sqlite_pool_keeps_a_connection_per_worker_thread(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import event

    settings = Settings(data_dir=tmp_path, worker_threads=7)  # above the default pool (5)
    database = Database.from_settings(settings)
    connects: list[object] = []
    event.listen(database.engine, "connect", lambda *_args: connects.append(1))
    together = threading.Barrier(settings.worker_threads)

    def lookup(_: int) -> None:
        with database.read_connection() as reader:
            reader.execute(text("SELECT 1"))
            together.wait(timeout=30)  # every thread holds a connection now

    try:
        with ThreadPoolExecutor(settings.worker_threads) as pool:
            for _ in range(20):
                list(pool.map(lookup, range(settings.worker_threads)))
    finally:
        database.dispose()
    assert len(connects) == settings.worker_threads


def test_an_in_memory_sqlite_database_needs_no_pool_size() -> None:
    # `intake openapi` builds the app on sqlite:// (one connection per thread).
    database = Database.from_settings(Settings(database_url="sqlite://"))
    try:
        with database.read_connection() as reader:
            assert reader.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_the_write_gate_is_left_when_begin_fails_after_taking_the_lock(tmp_path: Path) -> None:
    import sqlite3

    from evidence_intake.service.db import _GatedConnection, _WriteGate

    class RestoreFails(_GatedConnection):
        """BEGIN IMMEDIATE succeeds, then restoring busy_timeout fails."""

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
            if sql.startswith("PRAGMA busy_timeout=") and sql != "PRAGMA busy_timeout=0":
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, *args)  # type: ignore[arg-type]

    gate = _WriteGate()
    connection = sqlite3.connect(tmp_path / "gate.db", isolation_level=None,
                                 factory=RestoreFails)
    connection.gate = gate
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            connection.begin_write()
        assert not connection.in_transaction  # rolled back, not left holding SQLite's lock
        assert not connection.gate_held
        assert gate._lock.acquire(blocking=False)  # and the gate is free
        gate._lock.release()
    finally:
        connection.close()
