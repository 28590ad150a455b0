"""The group committer's rules, with the transaction replaced by a fake.

Batching itself (several requests' statements in one real transaction, on
both engines) is tested end to end in tests/api/test_statements_group_commit.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from evidence_intake.service.intake import committer as committer_module
from evidence_intake.service.intake.committer import CommitJob as Job
from evidence_intake.service.intake.committer import GroupCommitter
from evidence_intake.service.intake.errors import StatementStateError


class _FakeConnection:
    dialect = SimpleNamespace(driver="fake")  # still_uncommitted: no driver to ask


class _FakeDatabase:
    def __init__(self) -> None:
        self.rolled_back = 0

    @contextmanager
    def write_connection(self) -> Iterator[_FakeConnection]:
        try:
            yield _FakeConnection()
        except BaseException:
            self.rolled_back += 1
            raise


class _Sealed:
    def __init__(self, name: str) -> None:
        self.name = name


def _run_batch(committer: GroupCommitter, names: list[str]) -> dict[str, Any]:
    """Commit ``names`` from one thread each, all queued before the first batch starts."""
    outcomes: dict[str, Any] = {}
    queued = threading.Barrier(len(names) + 1)

    def one(name: str) -> None:
        queued.wait()
        try:
            outcomes[name] = committer.commit(_Sealed(name), actor="a")  # type: ignore[arg-type]
        except Exception as err:
            outcomes[name] = err

    # Hold the committer's lock so that every thread queues; then let go.
    with committer._changed:
        committer._leading = True
    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    queued.wait()
    while True:
        with committer._changed:
            if len(committer._queue) == len(names):
                committer._leading = False
                committer._changed.notify_all()
                break
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_queued_statements_commit_in_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[list[str]] = []

    def fake(connection: Any, jobs: list[Job], *, before_commit: Any) -> list[str]:
        batches.append([job.sealed.name for job in jobs])  # type: ignore[attr-defined]
        before_commit()
        return [f"receipt of {job.sealed.name}" for job in jobs]  # type: ignore[attr-defined]

    monkeypatch.setattr(committer_module, "commit_submissions", fake)
    committer = GroupCommitter(_FakeDatabase())  # type: ignore[arg-type]
    outcomes = _run_batch(committer, ["a", "b", "c", "d"])
    assert outcomes == {name: f"receipt of {name}" for name in "abcd"}
    assert sorted(len(batch) for batch in batches) == [4]


def test_a_refused_amendment_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(connection: Any, jobs: list[Job], *, before_commit: Any) -> list[Any]:
        before_commit()
        return [StatementStateError("withdrawn meanwhile") if job.sealed.name == "b"  # type: ignore[attr-defined]
                else job.sealed.name for job in jobs]  # type: ignore[attr-defined]

    monkeypatch.setattr(committer_module, "commit_submissions", fake)
    outcomes = _run_batch(GroupCommitter(_FakeDatabase()), ["a", "b", "c"])  # type: ignore[arg-type]
    assert outcomes["a"] == "a" and outcomes["c"] == "c"
    assert isinstance(outcomes["b"], StatementStateError)


@pytest.mark.parametrize("commit_sent", [False, True], ids=["before", "never-ran"])
def test_a_batch_that_did_not_commit_retries_each_statement_alone(
        monkeypatch: pytest.MonkeyPatch, commit_sent: bool) -> None:
    # Either the error came before the COMMIT was sent, or (PostgreSQL, where
    # the writes and the COMMIT go out together) a write failed and the
    # database says the transaction is still open, so the COMMIT never ran.
    batches: list[list[str]] = []

    def fake(connection: Any, jobs: list[Job], *, before_commit: Any) -> list[str]:
        names = [job.sealed.name for job in jobs]  # type: ignore[attr-defined]
        batches.append(names)
        if commit_sent:
            before_commit()
        if "bad" in names:
            connection.failed = commit_sent
            raise RuntimeError("a constraint failed")
        if not commit_sent:
            before_commit()
        return names

    monkeypatch.setattr(committer_module, "commit_submissions", fake)
    monkeypatch.setattr(committer_module, "still_uncommitted",
                        lambda connection: getattr(connection, "failed", False))
    database = _FakeDatabase()
    outcomes = _run_batch(GroupCommitter(database), ["a", "bad", "c"])  # type: ignore[arg-type]
    assert outcomes["a"] == "a" and outcomes["c"] == "c"
    assert isinstance(outcomes["bad"], RuntimeError)
    assert sorted(map(sorted, batches)) == [["a"], ["a", "bad", "c"], ["bad"], ["c"]]
    assert database.rolled_back == 2  # the batch, then the bad statement alone


def test_an_error_once_the_commit_was_sent_fails_the_whole_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(connection: Any, jobs: list[Job], *, before_commit: Any) -> list[str]:
        calls.append(len(jobs))
        before_commit()  # the COMMIT goes out, then the connection drops
        raise ConnectionError("server closed the connection")

    monkeypatch.setattr(committer_module, "commit_submissions", fake)
    outcomes = _run_batch(GroupCommitter(_FakeDatabase()), ["a", "b"])  # type: ignore[arg-type]
    # The outcome is unknown: no statement is retried (it may have landed).
    assert calls == [2]
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes.values())


def test_one_committer_per_database() -> None:
    database = _FakeDatabase()
    first = committer_module.committer_for(database)  # type: ignore[arg-type]
    assert committer_module.committer_for(database) is first  # type: ignore[arg-type]
    assert committer_module.committer_for(_FakeDatabase()) is not first  # type: ignore[arg-type]
