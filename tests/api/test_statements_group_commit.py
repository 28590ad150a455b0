"""Group commit on a real database: concurrent statements share a transaction.

Each statement still gets its own audit entry, seq and receipt, the rows of
each point to its own entry, and the exported log verifies offline.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evidence_intake.audit.note import parse_vkey
from evidence_intake.audit.verify import verify_log
from evidence_intake.service import auditlog
from evidence_intake.service.intake import committer as committer_module
from evidence_intake.service.intake.committer import committer_for
from intake_api_support import Api, fresh_postgres_database
from intake_samples import multipart, record, record_bytes
from sqlalchemy import text
from statements_support import asgi_headers, call_submit, make_bodies

STATEMENTS = 6


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database: the log it exports holds only this test's checkpoints."""
    with fresh_postgres_database(postgres_url, "intake_test_group_commit") as url:
        yield url


def _post(app: Any, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    sent = call_submit(app, headers, [body])
    return {"status": sent[0]["status"],
            "body": json.loads(b"".join(m.get("body", b"") for m in sent[1:]))}


def test_concurrent_statements_share_a_transaction_and_keep_their_own_entries(
        api: Api, tmp_path: Path) -> None:
    bodies = make_bodies(api)
    body, ctype = multipart([
        ("record", None, "application/json", record_bytes(record([bodies.un]))),
        ("text", None, "text/plain", b"statement"),
    ])
    headers = asgi_headers(api, body, ctype)
    committer = committer_for(api.database)
    real = committer_module.commit_submissions
    batches: list[int] = []

    def held(connection: Any, jobs: Any, **kwargs: Any) -> Any:
        # The first batch waits until every other statement has queued
        # behind it, so the second batch holds all of them.
        if not batches:
            deadline = time.monotonic() + 30
            while len(committer._queue) < STATEMENTS - 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        batches.append(len(jobs))
        return real(connection, jobs, **kwargs)

    records_before = _statement_count(api)
    original = committer_module.commit_submissions
    committer_module.commit_submissions = held  # type: ignore[assignment]
    try:
        answers: list[dict[str, Any]] = []
        threads = [threading.Thread(target=lambda: answers.append(
            _post(api.client.app, headers, body))) for _ in range(STATEMENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        committer_module.commit_submissions = original  # type: ignore[assignment]

    assert [answer["status"] for answer in answers] == [201] * STATEMENTS
    assert batches == [1, STATEMENTS - 1]
    assert _statement_count(api) == records_before + STATEMENTS
    seqs = sorted(answer["body"]["audit"]["seq"] for answer in answers)
    assert seqs == list(range(seqs[0], seqs[0] + STATEMENTS))
    with api.database.engine.connect() as conn:
        for answer in answers:
            receipt = answer["body"]
            entry = conn.execute(text(
                "SELECT entry_hash, action FROM audit_entries WHERE seq = :seq"),
                {"seq": receipt["audit"]["seq"]}).one()
            assert bytes(entry.entry_hash).hex() == receipt["audit"]["entry_hash"]
            assert entry.action == "statement.sealed"
            row = conn.execute(text(
                "SELECT audit_seq, audit_entry_hash FROM statements WHERE id = :id"),
                {"id": receipt["statement_id"]}).one()
            assert (row.audit_seq, row.audit_entry_hash) == (
                receipt["audit"]["seq"], receipt["audit"]["entry_hash"])

    # The chain, the Merkle tree and a checkpoint over them verify offline.
    api.settings.data_dir.mkdir(parents=True, exist_ok=True)
    vkey = auditlog.create_log_key(api.settings.log_key_path, api.settings.log_origin)
    exported = api.client.get("/api/v1/audit/export", headers=api.auth("auditor"))
    assert exported.status_code == 200, exported.text
    path = tmp_path / "log.jsonl"
    path.write_bytes(exported.content)
    assert verify_log(path, parse_vkey(vkey)).size >= seqs[-1] + 1


def _statement_count(api: Api) -> int:
    with api.database.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM statements")).scalar_one())
