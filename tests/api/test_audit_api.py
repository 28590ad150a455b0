"""The audit log over HTTP, on SQLite and PostgreSQL: what an auditor fetches verifies offline.

Each test gets a database of its own (on PostgreSQL too: ``postgres_database``
is overridden below), because the offline verifier demands that every
checkpoint in an export is signed by the one pinned key, and each test makes
its own log key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidence_intake.audit import merkle
from evidence_intake.audit.checkpoint import open_checkpoint
from evidence_intake.audit.note import parse_vkey
from evidence_intake.audit.proof import verify_proof
from evidence_intake.audit.verify import verify_log
from evidence_intake.service import auditlog
from evidence_intake.service.checkpointer import PeriodicCheckpointer, sign_if_due
from evidence_intake.service.db import Database
from intake_api_support import Api, fresh_postgres_database, make_api

PROBLEM = "application/problem+json"


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database per test (overrides the session-wide one)."""
    with fresh_postgres_database(postgres_url, "intake_test_audit_api") as url:
        yield url


def _with_key(api: Api) -> str:
    """Create the node's log key; return its verifier key string."""
    api.settings.data_dir.mkdir(parents=True, exist_ok=True)
    return auditlog.create_log_key(api.settings.log_key_path, api.settings.log_origin)


def _grow(api: Api, n: int) -> None:
    """``n`` more entries (user.created and token.created each)."""
    for _ in range(n):
        api.create_account("counsellor")


def _size(api: Api) -> int:
    with api.database.session() as session:
        return auditlog.head_size(session)


def _auditor(api: Api) -> dict[str, str]:
    return api.auth("auditor")


def _problem(response: object, status: int, slug: str) -> dict[str, object]:
    got = response  # httpx.Response
    assert got.status_code == status, got.text  # type: ignore[attr-defined]
    assert got.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = got.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["type"] == f"urn:evidence-intake:problem:{slug}"
    return body


def test_export_verifies_offline_and_records_itself(api: Api, tmp_path: Path) -> None:
    vkey = _with_key(api)
    headers = _auditor(api)
    _grow(api, 3)
    got = api.client.get("/api/v1/audit/export", headers=headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/jsonl"
    digest = base64.b64encode(hashlib.sha256(got.content).digest()).decode()
    assert got.headers["repr-digest"] == f"sha-256=:{digest}:"
    path = tmp_path / "log.jsonl"
    path.write_bytes(got.content)
    result = verify_log(path, parse_vkey(vkey))
    # The export is recorded, and its own checkpoint covers that record.
    assert api.audit_actions()[-1] == "audit.exported"
    assert result.size == _size(api)
    last_entry = json.loads(got.content.splitlines()[result.size - 1])
    assert last_entry["action"] == "audit.exported"
    assert last_entry["actor"] == api.accounts["auditor"]
    # The offline tool, as an auditor runs it, agrees.
    run = subprocess.run([sys.executable, "-m", "evidence_intake.cli.main", "audit", "verify",
                          str(path), "--key", vkey, "--json"],
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verified"] is True


def test_tampered_export_does_not_verify(api: Api, tmp_path: Path) -> None:
    from evidence_intake.audit.errors import AuditError

    vkey = _with_key(api)
    _grow(api, 2)
    got = api.client.get("/api/v1/audit/export", headers=_auditor(api))
    assert got.status_code == 200, got.text
    lines = got.content.splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"user.created"', b'"user.deleted"')
    path = tmp_path / "tampered.jsonl"
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditError):
        verify_log(path, parse_vkey(vkey))


def test_proof_verifies_against_latest_and_given_checkpoint(api: Api) -> None:
    vkey = _with_key(api)
    verifier = parse_vkey(vkey)
    headers = _auditor(api)
    _grow(api, 2)
    first = api.client.post("/api/v1/audit/checkpoint", headers=api.auth("admin"))
    assert first.status_code == 201, first.text
    assert first.headers["content-type"].startswith("text/plain")
    size1 = open_checkpoint(first.text, verifier).size
    assert size1 == _size(api)
    _grow(api, 3)
    second = api.client.post("/api/v1/audit/checkpoint", headers=headers)
    assert second.status_code == 201, second.text
    size2 = open_checkpoint(second.text, verifier).size
    latest = api.client.get("/api/v1/audit/checkpoint", headers=headers)
    assert latest.status_code == 200 and latest.text == second.text

    seq = 1
    entry = api.client.get(f"/api/v1/audit/entries/{seq}", headers=headers)
    assert entry.status_code == 200
    proof = api.client.get(f"/api/v1/audit/proof/{seq}", headers=headers)
    assert proof.status_code == 200, proof.text
    checkpoint, index, data = verify_proof(proof.text, verifier, entry.content)
    assert (checkpoint.size, index, data) == (size2, seq, entry.content)
    older = api.client.get(f"/api/v1/audit/proof/{seq}", params={"size": size1}, headers=headers)
    assert older.status_code == 200, older.text
    assert verify_proof(older.text, verifier)[0].size == size1
    # A proof whose checkpoint was signed by another key is refused offline.
    from evidence_intake.audit.errors import AuditError
    from evidence_intake.audit.note import generate_signer_key

    with pytest.raises(AuditError):
        verify_proof(proof.text, parse_vkey(generate_signer_key(api.settings.log_origin)[1]))

    # Consistency from the first checkpoint to the newest, as a witness checks it.
    got = api.client.get("/api/v1/audit/consistency", params={"from": size1}, headers=headers)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["from"], body["to"], body["checkpoint"]) == (size1, size2, second.text)
    hashes = [base64.b64decode(h) for h in body["hashes"]]
    old_root = open_checkpoint(first.text, verifier).root_hash
    new_root = open_checkpoint(second.text, verifier).root_hash
    merkle.verify_consistency(size1, size2, hashes, old_root, new_root)
    with pytest.raises(AuditError):
        merkle.verify_consistency(size1, size2, hashes[::-1], old_root, new_root)


def test_entries_are_the_hashed_bytes_and_chain(api: Api) -> None:
    headers = _auditor(api)
    _grow(api, 3)
    size = _size(api)
    lines: list[bytes] = []
    url: str | None = "/api/v1/audit/entries?start=0&limit=2"
    while url is not None:
        page = api.client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "application/jsonl"
        assert page.headers["audit-log-size"] == str(size)
        got = page.content.splitlines()
        assert 1 <= len(got) <= 2
        lines.extend(got)
        link = page.headers.get("link")
        url = link[1:link.index(">")] if link else None
    assert len(lines) == size
    for seq, line in enumerate(lines):
        single = api.client.get(f"/api/v1/audit/entries/{seq}", headers=headers)
        assert single.content == line
        assert single.headers["audit-entry-hash"] == hashlib.sha256(line).hexdigest()
        entry = json.loads(line)
        assert entry["seq"] == seq
        if seq:
            assert entry["prev"] == hashlib.sha256(lines[seq - 1]).hexdigest()
    beyond = api.client.get("/api/v1/audit/entries", params={"start": size}, headers=headers)
    assert beyond.status_code == 200 and beyond.content == b""
    assert "link" not in beyond.headers


def test_errors_are_problems(api: Api) -> None:
    headers = _auditor(api)
    _grow(api, 2)
    size = _size(api)
    _problem(api.client.get(f"/api/v1/audit/entries/{size}", headers=headers), 404, "not-found")
    _problem(api.client.get(f"/api/v1/audit/proof/{size + 5}", headers=headers), 404,
             "not-found")
    # No key on this node: signing is unavailable, and nothing covers entry 0 yet.
    _problem(api.client.post("/api/v1/audit/checkpoint", headers=headers), 503,
             "log-key-unavailable")
    _problem(api.client.get("/api/v1/audit/export", headers=headers), 503,
             "log-key-unavailable")
    _problem(api.client.get("/api/v1/audit/checkpoint", headers=headers), 404, "not-found")
    _problem(api.client.get("/api/v1/audit/proof/0", headers=headers), 404, "not-found")
    _with_key(api)
    assert api.client.post("/api/v1/audit/checkpoint", headers=headers).status_code == 201
    size = _size(api)
    for params in ({"size": size + 1}, {"size": 1}):  # beyond the log; does not contain entry 1
        _problem(api.client.get("/api/v1/audit/proof/1", params=params, headers=headers), 422,
                 "tree-size")
    _grow(api, 1)
    # A size inside the log that no checkpoint was signed for.
    _problem(api.client.get("/api/v1/audit/proof/0", params={"size": size + 1},
                            headers=headers), 404, "not-found")
    for params in ({"from": 2, "to": 1}, {"from": 0, "to": size + 5}):
        _problem(api.client.get("/api/v1/audit/consistency", params=params, headers=headers),
                 422, "tree-size")
    body = _problem(api.client.get("/api/v1/audit/entries", params={"limit": 1001},
                                   headers=headers), 422, "validation")
    assert "1001" not in json.dumps(body)  # names the field, never echoes the value
    _problem(api.client.get("/api/v1/audit/proof/x", headers=headers), 422, "validation")
    for url in ("/api/v1/audit/entries/-1", f"/api/v1/audit/entries/{2**64}",
                f"/api/v1/audit/proof/0?size={2**63}", f"/api/v1/audit/consistency?from={2**70}"):
        _problem(api.client.get(url, headers=headers), 422, "validation")


def test_only_auditors_read_and_auditors_or_admins_sign(api: Api) -> None:
    _with_key(api)
    for role in ("admin", "counsellor", "export_officer"):
        for url in ("/api/v1/audit/entries", "/api/v1/audit/export", "/api/v1/audit/checkpoint"):
            _problem(api.client.get(url, headers=api.auth(role)), 403, "forbidden")
    for role in ("counsellor", "export_officer"):
        _problem(api.client.post("/api/v1/audit/checkpoint", headers=api.auth(role)), 403,
                 "forbidden")
    _problem(api.client.get("/api/v1/audit/export"), 401, "unauthenticated")
    assert "audit.exported" not in api.new_audit_actions()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_periodic_signer_covers_new_entries(tmp_path: Path, backend: str,
                                            request: pytest.FixtureRequest) -> None:
    apis = make_api(tmp_path, backend, request, checkpoint_interval_seconds=0.2)
    api = next(apis)
    try:
        vkey = _with_key(api)
        _grow(api, 2)
        deadline = time.monotonic() + 15
        covered = None
        while time.monotonic() < deadline:
            with api.database.session() as session:
                note = auditlog.latest_checkpoint(session)
            if note is not None:
                covered = open_checkpoint(note, parse_vkey(vkey))
                if covered.size == _size(api):
                    break
            time.sleep(0.05)
        assert covered is not None and covered.size == _size(api)
        checkpointer = api.client.app.state.checkpointer
        assert checkpointer.signed >= 1
        # Nothing new: no further checkpoint however long we wait.
        signed = checkpointer.signed
        time.sleep(0.6)
        assert checkpointer.signed == signed
    finally:
        next(apis, None)  # leaves the client: the lifespan stops the signer
    # Stopped at shutdown: entries added afterwards stay unsigned.
    database = Database.from_settings(api.settings)
    try:
        with database.session() as session:
            before = auditlog.latest_checkpoint(session)
            auditlog.append(session, actor="system", action="test.after_shutdown")
            session.commit()
        time.sleep(0.6)
        with database.session() as session:
            assert auditlog.latest_checkpoint(session) == before
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_signers_sign_one_checkpoint_per_size(tmp_path: Path, backend: str,
                                                         request: pytest.FixtureRequest) -> None:
    apis = make_api(tmp_path, backend, request, checkpoint_interval_seconds=0)
    api = next(apis)
    databases = [Database.from_settings(api.settings) for _ in range(4)]
    try:
        _with_key(api)
        for _round in range(3):
            _grow(api, 1)
            barrier = threading.Barrier(len(databases))
            notes: list[str | None] = []

            def attempt(database: Database, barrier: threading.Barrier = barrier,
                        notes: list[str | None] = notes) -> None:
                with database.sessions() as session:
                    barrier.wait()
                    notes.append(sign_if_due(session, api.settings, interval_seconds=0))

            threads = [threading.Thread(target=attempt, args=(db,)) for db in databases]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert len([n for n in notes if n is not None]) == 1, notes
        with api.database.engine.connect() as conn:
            from sqlalchemy import func, select

            sizes = conn.execute(select(auditlog.AuditCheckpoint.size,
                                        func.count()).group_by(auditlog.AuditCheckpoint.size)
                                 ).all()
        assert len(sizes) == 3 and all(count == 1 for _, count in sizes), sizes
    finally:
        for database in databases:
            database.dispose()
        next(apis, None)


def test_periodic_signer_without_key_keeps_running(tmp_path: Path, api: Api) -> None:
    checkpointer = PeriodicCheckpointer(api.database.sessions, api.settings)
    _grow(api, 1)
    assert checkpointer.tick() is None  # no key: logged, not raised
    _with_key(api)
    note = checkpointer.tick()
    assert note is not None and checkpointer.signed == 1
    assert checkpointer.tick() is None  # not due: the interval has not passed
