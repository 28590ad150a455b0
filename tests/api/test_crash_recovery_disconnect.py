"""A client that disconnects mid-upload leaves no statement, no audit entry, no blob.

The app is called as an ASGI application with a ``receive`` that delivers
the record, the text and part of a large attachment, then reports
``http.disconnect`` exactly as uvicorn does when the socket closes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from intake_api_support import Api
from intake_samples import multipart, record, record_bytes, stored_files
from sqlalchemy import text
from statements_support import asgi_headers, call_submit, make_bodies


def _counts(api: Api) -> tuple[int, int]:
    # The PostgreSQL database is shared by the session's tests: compare, do not expect zero.
    with api.database.engine.connect() as conn:
        return (conn.execute(text("SELECT count(*) FROM statements")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM statement_blobs")).scalar_one())


def test_disconnect_mid_attachment_leaves_nothing(api: Api, tmp_path: Path) -> None:
    bodies = make_bodies(api)
    body, ctype = multipart([
        ("record", None, "application/json", record_bytes(record([bodies.un, bodies.icc]))),
        ("text", None, "text/plain", b"statement"),
        ("attachment", "one.bin", "application/octet-stream", os.urandom(100_000)),
        ("attachment", "two.bin", "application/octet-stream", os.urandom(6 << 20)),
    ])
    cut = len(body) - (3 << 20)  # the first attachment is complete, the second is not
    chunks = [body[i:i + 65536] for i in range(0, cut, 65536)]
    headers = asgi_headers(api, body, ctype)
    before = api.audit_actions(), _counts(api)

    call_submit(api.client.app, headers, chunks, disconnect=True)

    assert (api.audit_actions(), _counts(api)) == before
    assert stored_files(api.settings.blob_path) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_complete_upload_through_the_same_path_is_stored(api: Api) -> None:
    """Control for the test above: the hand-made ASGI call does work when not cut short."""
    bodies = make_bodies(api)
    body, ctype = multipart([
        ("record", None, "application/json", record_bytes(record([bodies.un]))),
        ("text", None, "text/plain", b"statement"),
    ])
    headers = asgi_headers(api, body, ctype)
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]

    sent = call_submit(api.client.app, headers, chunks, disconnect=False)
    assert sent[0]["status"] == 201
    assert len(stored_files(api.settings.blob_path)) == 1


def test_a_failure_after_the_audit_append_rolls_back_statement_and_entry(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statement's rows and its audit entry are one transaction: nothing half-written.

    The failure comes after every INSERT and the audit append, just before the
    COMMIT; a statement run outside the transaction (autocommitted) would
    survive it.
    """
    from evidence_intake.service.intake import committer as committer_module

    bodies = make_bodies(api)
    real = committer_module.commit_submissions

    def failing(connection: Any, jobs: Any, *, before_commit: Any = None) -> Any:
        def fail() -> None:
            raise RuntimeError("the machine lost power")
        failing_jobs = [committer_module.CommitJob(job.sealed, job.actor, fail) for job in jobs]
        return real(connection, failing_jobs, before_commit=before_commit)

    monkeypatch.setattr(committer_module, "commit_submissions", failing)
    body, ctype = multipart([
        ("record", None, "application/json", record_bytes(record([bodies.un]))),
        ("text", None, "text/plain", b"statement"),
        ("attachment", "one.bin", "application/octet-stream", os.urandom(10_000)),
    ])
    headers = asgi_headers(api, body, ctype)
    before = api.audit_actions(), _counts(api)

    sent = call_submit(api.client.app, headers, [body], disconnect=False)
    assert sent[0]["status"] == 500

    assert (api.audit_actions(), _counts(api)) == before
    assert stored_files(api.settings.blob_path) == []
    monkeypatch.setattr(committer_module, "commit_submissions", real)
    sent = call_submit(api.client.app, headers, [body], disconnect=False)
    assert sent[0]["status"] == 201  # the rollback left the database usable
