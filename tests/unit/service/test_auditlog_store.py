"""The audit log on SQLite: append-only triggers, appends in the caller's
transaction, O(log n) proofs from stored subtree hashes, export, key file."""

from __future__ import annotations

import io
import itertools
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidence_intake.audit import merkle
from evidence_intake.audit.checkpoint import open_checkpoint
from evidence_intake.audit.errors import EntryFormatError
from evidence_intake.audit.note import NoteSigner
from evidence_intake.audit.proof import verify_proof
from evidence_intake.audit.verify import verify_log
from evidence_intake.service import auditlog
from evidence_intake.service.auditlog.models import AuditEntry
from evidence_intake.service.models.base import Base
from sqlalchemy import Engine, create_engine, event, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

ORIGIN = "intake.test/audit-store"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
AUDIT_TABLES = ["audit_entries", "audit_subjects", "audit_nodes", "audit_checkpoints",
                "audit_head"]


def _engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in AUDIT_TABLES])
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = _engine(tmp_path / "audit.db")
    yield engine
    engine.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> NoteSigner:
    auditlog.create_log_key(tmp_path / "log.key", ORIGIN)
    return auditlog.load_log_signer(tmp_path / "log.key")


def _append(session: Session, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        auditlog.append(session, actor="acct_1", action="statement.sealed",
                        subject={"statement": f"st_{i % 4}"}, details={"size": i},
                        now=T0 + timedelta(seconds=i))


@pytest.mark.parametrize("table", ["audit_entries", "audit_checkpoints", "audit_nodes",
                                   "audit_subjects"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}"])
def test_update_and_delete_are_refused_by_the_database(
        engine: Engine, signer: NoteSigner, table: str, statement: str) -> None:
    with Session(engine) as session:
        _append(session, 3)
        auditlog.sign_checkpoint(session, signer)
        session.commit()
    column = {"audit_entries": "actor", "audit_checkpoints": "note", "audit_nodes": "hash",
              "audit_subjects": "kind"}[table]
    with Session(engine) as session, pytest.raises(IntegrityError, match="append-only"):
        session.execute(text(statement.format(t=table, c=column)))


def test_trigger_ddl_is_what_create_all_installed(engine: Engine) -> None:
    with engine.connect() as conn:
        names = set(conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
    expected = {s.split()[2] for s in auditlog.trigger_ddl("sqlite")}
    assert expected == names
    assert len(names) == 8


def test_appends_chain_and_match_the_in_memory_tree(engine: Engine) -> None:
    with Session(engine) as session:
        _append(session, 21)
        session.commit()
        entries = [auditlog.get_entry(session, seq) for seq in range(21)]
        assert [e.seq for e in entries] == list(range(21))
        for before, after in itertools.pairwise(entries):
            assert after.prev == before.entry_hash().hex()
        levels = merkle.build_levels([e.leaf_hash() for e in entries])
        for size in (1, 2, 7, 16, 21):
            assert auditlog.root_at(session, size) == merkle.root(levels, size)
        assert auditlog.seqs_about_statement(session, "st_1") == [1, 5, 9, 13, 17]


def test_an_entry_rolls_back_with_the_business_change(engine: Engine) -> None:
    with Session(engine) as session:
        _append(session, 2)
        session.commit()
    with Session(engine) as session:
        _append(session, 1, start=2)
        session.rollback()  # the business change failed
    with Session(engine) as session:
        assert auditlog.head_size(session) == 2
        entry = auditlog.append(session, actor="acct_1", action="statement.sealed", now=T0)
        session.commit()
        assert entry.seq == 2
        assert entry.prev == auditlog.get_entry(session, 1).entry_hash().hex()


def test_a_database_error_in_an_append_is_sqlalchemys_and_rolls_back(engine: Engine) -> None:
    # The append runs on the DBAPI cursor; its errors must still be the
    # SQLAlchemy exceptions callers catch, and leave the log as it was.
    with Session(engine) as session:
        _append(session, 2)
        session.commit()
    with engine.begin() as conn:  # a row the head does not know about
        conn.execute(insert(AuditEntry).values(seq=2, canonical=b"{}", entry_hash=b"\0" * 32,
                                               leaf_hash=b"\0" * 32, action="x.y", actor="x"))
    with Session(engine) as session:
        with pytest.raises(IntegrityError):
            auditlog.append(session, actor="acct_1", action="statement.sealed", now=T0)
        session.rollback()
        assert auditlog.head_size(session) == 2
        assert auditlog.root_at(session, 2) == merkle.root(merkle.build_levels(
            [merkle.leaf_hash(auditlog.entry_bytes(session, seq)) for seq in range(2)]), 2)


def test_append_many_can_commit_the_callers_transaction(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.begin()
        sent: list[bool] = []
        entries = auditlog.append_many(connection, [
            auditlog.Pending("acct_1", "statement.sealed", {"statement": "st_1"}),
            auditlog.Pending("acct_1", "statement.sealed", {"statement": "st_2"})],
            now=T0, commit=True, before_commit=lambda: sent.append(True))
        assert not connection.in_transaction() and sent == [True]
    assert [entry.seq for entry in entries] == [0, 1]
    with Session(engine) as session:
        assert auditlog.head_size(session) == 2
        assert auditlog.get_entry(session, 1).prev == entries[0].entry_hash().hex()
        # A Session commits through the ORM: the append does not commit it.
        with pytest.raises(auditlog.AuditLogError, match="Connection"):
            auditlog.append_many(session, [auditlog.Pending("acct_1", "x.y")], commit=True)


def test_a_malformed_entry_fails_the_transaction(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(EntryFormatError):
        auditlog.append(session, actor="acct_1", action="statement.sealed",
                        details={"ratio": 0.5})


def test_proofs_from_the_database_verify(engine: Engine, signer: NoteSigner) -> None:
    with Session(engine) as session:
        _append(session, 11)
        note = auditlog.sign_checkpoint(session, signer)
        session.commit()
        checkpoint = open_checkpoint(note, signer.verifier)
        assert auditlog.latest_checkpoint(session) == note
        for seq in range(11):
            proof = auditlog.inclusion_proof(session, seq, 11)
            leaf = merkle.leaf_hash(auditlog.entry_bytes(session, seq))
            merkle.verify_inclusion(leaf, seq, 11, proof, checkpoint.root_hash)
        for size1 in range(1, 12):
            merkle.verify_consistency(size1, 11, auditlog.consistency_proof(session, size1, 11),
                                      auditlog.root_at(session, size1), checkpoint.root_hash)
        bundle = auditlog.prove(session, 4)
        assert verify_proof(bundle, signer.verifier)[1] == 4
        with pytest.raises(auditlog.AuditLogError):
            auditlog.inclusion_proof(session, 11, 11)


def test_export_verifies_offline(engine: Engine, signer: NoteSigner, tmp_path: Path) -> None:
    with Session(engine) as session:
        _append(session, 5)
        auditlog.sign_checkpoint(session, signer)
        _append(session, 4, start=5)
        session.commit()
    with Session(engine) as session:
        buffer = io.BytesIO()
        checkpoint = auditlog.export_jsonl(session, buffer, signer)
        session.commit()
    assert checkpoint.size == 9
    path = tmp_path / "log.jsonl"
    path.write_bytes(buffer.getvalue())
    result = verify_log(path, signer.verifier)
    assert (result.size, result.checkpoints) == (9, 2)
    # Without signing, the export stops at the newest stored checkpoint.
    with Session(engine) as session:
        _append(session, 2, start=9)
        session.commit()
        unsigned = io.BytesIO()
        assert auditlog.export_jsonl(session, unsigned).size == 9
    path.write_bytes(unsigned.getvalue())
    assert verify_log(path, signer.verifier).size == 9


def test_checkpoint_is_due_after_the_interval_with_new_entries(
        engine: Engine, signer: NoteSigner) -> None:
    with Session(engine) as session:
        assert not auditlog.checkpoint_due(session, interval_seconds=60)
        _append(session, 1)
        assert auditlog.checkpoint_due(session, interval_seconds=60)
        auditlog.sign_checkpoint(session, signer, now=T0)
        assert not auditlog.checkpoint_due(session, interval_seconds=60,
                                           now=T0 + timedelta(hours=1))
        _append(session, 1, start=1)
        assert not auditlog.checkpoint_due(session, interval_seconds=60,
                                           now=T0 + timedelta(seconds=30))
        assert auditlog.checkpoint_due(session, interval_seconds=60,
                                       now=T0 + timedelta(seconds=61))


def test_threads_appending_at_once_leave_no_gap(tmp_path: Path, signer: NoteSigner) -> None:
    engine = _engine(tmp_path / "threads.db")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                with Session(engine) as session:
                    auditlog.append(session, actor=f"acct_{n}", action="login.succeeded",
                                    details={"i": i})
                    session.commit()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        seqs = list(session.execute(select(AuditEntry.seq).order_by(AuditEntry.seq)).scalars())
        assert seqs == list(range(100))
        buffer = io.BytesIO()
        auditlog.export_jsonl(session, buffer, signer)
    path = tmp_path / "log.jsonl"
    path.write_bytes(buffer.getvalue())
    assert verify_log(path, signer.verifier).size == 100
    engine.dispose()


def test_log_key_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    vkey = auditlog.create_log_key(path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auditlog.log_verifier_key(path) == vkey
    assert vkey.startswith(ORIGIN + "+")
    with pytest.raises(FileExistsError):
        auditlog.create_log_key(path, ORIGIN)
    os.chmod(path, 0o644)
    with pytest.raises(auditlog.LogKeyError):
        auditlog.load_log_signer(path)
