"""The audit log on a real PostgreSQL: triggers, and 8 processes x 500 appends.

Each test module run gets its own temporary database on the shared server,
dropped afterwards, because other test suites use the same server.
"""

from __future__ import annotations

import io
import multiprocessing
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from evidence_intake.audit.note import NoteSigner
from evidence_intake.audit.verify import verify_log
from evidence_intake.service import auditlog
from evidence_intake.service.auditlog.models import AuditEntry
from evidence_intake.service.models.base import Base
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

pytestmark = pytest.mark.postgres

ORIGIN = "intake.test/audit-pg"
AUDIT_TABLES = ["audit_entries", "audit_subjects", "audit_nodes", "audit_checkpoints",
                "audit_head"]
WRITERS = 8
APPENDS = 500


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    name = f"intake_test_audit_{secrets.token_hex(4)}"
    with psycopg.connect(_plain(postgres_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # Commit durability is not what these tests measure; locking is.
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    base = postgres_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_plain(postgres_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in AUDIT_TABLES])
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> NoteSigner:
    path = tmp_path_factory.mktemp("key") / "log.key"
    auditlog.create_log_key(path, ORIGIN)
    return auditlog.load_log_signer(path)


def _writer(url: str, writer: int, count: int) -> None:
    engine = create_engine(url)
    try:
        for i in range(count):
            with Session(engine) as session:
                auditlog.append(session, actor=f"acct_{writer}", action="statement.sealed",
                                subject={"statement": f"st_{writer}_{i}"}, details={"i": i})
                session.commit()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_writers_make_one_gap_free_verifiable_chain(
        engine: Engine, database_url: str, signer: NoteSigner, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(database_url, n, APPENDS))
                 for n in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    with Session(engine) as session:
        seqs = list(session.execute(select(AuditEntry.seq).order_by(AuditEntry.seq)).scalars())
        assert seqs == list(range(WRITERS * APPENDS))
        buffer = io.BytesIO()
        checkpoint = auditlog.export_jsonl(session, buffer, signer)
        session.commit()
    path = tmp_path / "log.jsonl"
    path.write_bytes(buffer.getvalue())
    result = verify_log(path, signer.verifier)
    assert result.size == checkpoint.size == WRITERS * APPENDS


@pytest.mark.parametrize("table", ["audit_entries", "audit_checkpoints", "audit_nodes",
                                   "audit_subjects"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}",
                                       "TRUNCATE {t}"])
def test_update_delete_truncate_are_refused(engine: Engine, signer: NoteSigner,
                                            table: str, statement: str) -> None:
    with Session(engine) as session:
        auditlog.append(session, actor="acct_1", action="user.created")
        auditlog.sign_checkpoint(session, signer)
        session.commit()
    column = {"audit_entries": "actor", "audit_checkpoints": "note", "audit_nodes": "hash",
              "audit_subjects": "kind"}[table]
    with Session(engine) as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(statement.format(t=table, c=column)))


def test_a_failed_write_in_an_append_raises_sqlalchemys_error(engine: Engine) -> None:
    # The append's writes go out as one psycopg pipeline; a failure inside it
    # must still be SQLAlchemy's IntegrityError and roll back cleanly. The
    # clashing row is never committed, so the shared log stays gap-free.
    with Session(engine) as session:
        auditlog.append(session, actor="acct_1", action="user.created")
        session.commit()
        size = auditlog.head_size(session)
        session.commit()
    with Session(engine) as session:
        session.execute(insert(AuditEntry).values(
            seq=size, canonical=b"{}", entry_hash=b"\0" * 32, leaf_hash=b"\0" * 32,
            action="x.y", actor="x"))
        with pytest.raises(IntegrityError):
            auditlog.append(session, actor="acct_1", action="user.created")
        session.rollback()
        assert auditlog.head_size(session) == size
        assert auditlog.append(session, actor="acct_1", action="user.created").seq == size
        session.commit()


def test_trigger_ddl_matches_the_installed_triggers(engine: Engine) -> None:
    with engine.connect() as conn:
        names = set(conn.execute(text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
    expected = {s.split()[2] for s in auditlog.trigger_ddl("postgresql")
                if s.startswith("CREATE TRIGGER")}
    assert expected == names
