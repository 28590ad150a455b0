"""Exports end to end: counsellor submits, export officer exports, investigator verifies and opens.

Runs on SQLite and PostgreSQL (the ``api`` fixture). The bundle is checked
with the offline tool exactly as an investigator would, with the node and
log keys pinned from the node's key files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evidence_intake.audit.note import parse_vkey
from evidence_intake.crypto.minisign import SigningKey
from evidence_intake.service import auditlog
from intake_api_support import Api, make_api
from intake_samples import record
from statements_support import Bodies, make_bodies, submit

from evidence_intake.bundle.opener import NOT_SEALED, open_bundle, prepare_output
from evidence_intake.bundle.verify import verify_path


@pytest.fixture
def sqlite_api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Api]:
    """The app on SQLite only: for tests that reach it from another process."""
    yield from make_api(tmp_path, "sqlite", request)


def _with_keys(api: Api) -> Bodies:
    data_dir = api.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if not api.settings.node_key_path.exists():
        api.settings.node_key_path.write_text(SigningKey.generate().to_file_text(None))
        auditlog.create_log_key(api.settings.log_key_path, api.settings.log_origin)
    return make_bodies(api)


@pytest.fixture
def sqlite_bodies(sqlite_api: Api) -> Bodies:
    return _with_keys(sqlite_api)


@pytest.fixture
def bodies(api: Api) -> Bodies:
    return _with_keys(api)


def _pinned(api: Api) -> tuple[Any, Any]:
    node = SigningKey.from_file_text(api.settings.node_key_path.read_text(), None).public_key
    return node, parse_vkey(auditlog.log_verifier_key(api.settings.log_key_path))


def _export(api: Api, **request: Any) -> Any:
    return api.client.post("/api/v1/exports", json=request, headers=api.auth("export_officer"))


def _download(api: Api, result: dict[str, Any], tmp_path: Path) -> Path:
    got = api.client.get(result["download"], headers=api.auth("export_officer"))
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    digest = hashlib.sha256(got.content).hexdigest()
    assert digest == result["bundle_sha256"]
    assert got.headers["repr-digest"] == (
        f"sha-256=:{base64.b64encode(bytes.fromhex(digest)).decode()}:")
    path = tmp_path / f"bundle-{result['export_id']}.zip"
    path.write_bytes(got.content)
    return path


def _open(api: Api, bundle: Path, identity: Any, out: Path) -> Any:
    node, log = _pinned(api)
    archive, verification = verify_path(bundle, node, log, tool_version="test")
    assert archive is not None
    with archive:
        assert verification.report.ok, verification.report.to_text()
        prepare_output(out)
        return open_bundle(archive, verification, [identity], out)


def test_submit_export_verify_open_byte_identical(api: Api, bodies: Bodies,
                                                  tmp_path: Path) -> None:
    photos = [os.urandom(200_000), os.urandom(70_000)]
    first = submit(api, record([bodies.un, bodies.icc]), "ဗမာ statement one".encode(),
                   (photos[0],))
    second = submit(api, record([bodies.un]), b"statement two", (photos[1],))
    only_icc = submit(api, record([bodies.icc]), b"not for the UN")
    assert {r.status_code for r in (first, second, only_icc)} == {201}

    response = _export(api, body_id=bodies.un, new_only=True)
    assert response.status_code == 201, response.text
    result = response.json()
    ids = [first.json()["statement_id"], second.json()["statement_id"]]
    assert sorted(result["statement_ids"]) == sorted(ids)
    assert result["refused"] == []
    actions = api.audit_actions()
    assert actions[-2:] == ["export.created", "export.written"]

    bundle = _download(api, result, tmp_path)
    opened = _open(api, bundle, bodies.un_key, tmp_path / "out")
    assert opened.all_opened and len(opened.items) == 4
    out = tmp_path / "out"
    for sid, photo, text in ((ids[0], photos[0], "ဗမာ statement one"),
                             (ids[1], photos[1], "statement two")):
        assert (out / sid / "statement.txt").read_text(encoding="utf-8") == text
        doc = json.loads((out / sid / "statement.json").read_bytes())
        assert doc["routing"]["record_id"] == sid
        name = doc["sealed"]["attachments"][0]["filename"]
        assert (out / sid / "attachments" / f"0-{name}").read_bytes() == photo

    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        entries = [json.loads(line) for line in zf.read("audit/entries.jsonl").splitlines()]
    assert all(info_name.startswith(("statements/", "audit/", "README", "manifest", "SHA256"))
               for info_name in names)
    assert {s["key_kind"] for s in manifest["statements"]} == {"x25519"}
    subjects = [e["subject"].get("statement") for e in entries if e["action"] != "export.created"]
    assert sorted(subjects) == sorted(ids)  # nothing about the ICC-only witness

    again = _export(api, body_id=bodies.un, new_only=True)
    assert again.status_code == 422
    assert again.json()["type"].endswith("nothing-to-export")


def test_post_quantum_body_gets_its_copy_and_other_keys_cannot_open(
        api: Api, bodies: Bodies, tmp_path: Path) -> None:
    sid = submit(api, record([bodies.un, bodies.icc]), b"both bodies",
                 (b"evidence",)).json()["statement_id"]
    response = _export(api, body_id=bodies.icc, statement_ids=[sid])
    assert response.status_code == 201, response.text
    bundle = _download(api, response.json(), tmp_path)
    opened = _open(api, bundle, bodies.icc_key, tmp_path / "pq")
    assert opened.all_opened
    with zipfile.ZipFile(bundle) as zf:
        assert json.loads(zf.read("manifest.json"))["statements"][0]["key_kind"] == (
            "mlkem768x25519")
    wrong = _open(api, bundle, bodies.un_key, tmp_path / "wrong")
    assert [item.status for item in wrong.items] == [NOT_SEALED, NOT_SEALED]


def test_refused_statements_name_their_reason(api: Api, bodies: Bodies) -> None:
    ok = submit(api, record([bodies.un])).json()["statement_id"]
    icc_only = submit(api, record([bodies.icc])).json()["statement_id"]
    withdrawn = submit(api, record([bodies.un])).json()["statement_id"]
    gone = api.client.post(f"/api/v1/statements/{withdrawn}/withdrawal",
                           json={"withdrawn_at": "2026-11-29T10:00:00Z"},
                           headers=api.auth("counsellor"))
    assert gone.status_code == 200
    api.token_for("export_officer")  # its account creation is logged too
    before = api.audit_actions()
    response = _export(api, body_id=bodies.un,
                       statement_ids=[ok, icc_only, withdrawn, "no-such-statement"])
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("statements-refused")
    assert {r["statement_id"]: r["code"] for r in problem["refused"]} == {
        icc_only: "not_consented", withdrawn: "withdrawn", "no-such-statement": "not_found"}
    assert api.audit_actions() == before  # nothing exported, nothing logged

    ranged = _export(api, body_id=bodies.un, since="2000-01-01T00:00:00Z")
    assert ranged.status_code == 201, ranged.text
    assert ranged.json()["statement_ids"] == [ok]
    assert [r["code"] for r in ranged.json()["refused"]] == ["withdrawn"]


def test_only_export_officers_export_and_download(api: Api, bodies: Bodies) -> None:
    sid = submit(api, record([bodies.un])).json()["statement_id"]
    for role in ("counsellor", "auditor", "admin"):
        denied = api.client.post("/api/v1/exports", json={"body_id": bodies.un,
                                                          "statement_ids": [sid]},
                                 headers=api.auth(role))
        assert denied.status_code == 403
    result = _export(api, body_id=bodies.un, statement_ids=[sid]).json()
    for role in ("counsellor", "auditor", "admin"):
        assert api.client.get(result["download"], headers=api.auth(role)).status_code == 403
    assert api.client.get(result["download"]).status_code == 401
    listed = api.client.get("/api/v1/exports", headers=api.auth("export_officer")).json()
    mine = [row for row in listed if row["export_id"] == result["export_id"]]
    assert [(r["status"], r["bundle_sha256"]) for r in mine] == [
        ("complete", result["bundle_sha256"])]
    assert api.client.get("/api/v1/exports", headers=api.auth("auditor")).status_code == 403


@pytest.mark.parametrize("request_body", [
    {"body_id": "x"},
    {"body_id": "x", "new_only": True, "statement_ids": ["a"]},
    {"body_id": "x", "until": "2026-01-01T00:00:00Z", "new_only": True},
])
def test_selector_must_be_exactly_one(api: Api, bodies: Bodies,
                                      request_body: dict[str, Any]) -> None:
    assert _export(api, **request_body).status_code == 422


def test_unknown_body_is_404(api: Api, bodies: Bodies) -> None:
    assert _export(api, body_id="no-such-body", new_only=True).status_code == 404


def test_a_blob_changed_in_the_store_fails_the_export_and_is_logged(api: Api, bodies: Bodies,
                                                                     tmp_path: Path) -> None:
    from evidence_intake.service.intake.blobstore import FilesystemBlobStore

    first = submit(api, record([bodies.un]), b"statement", (b"original evidence",))
    sid = first.json()["statement_id"]
    digest = first.json()["copies"][0]["attachments"][0]["sha256"]
    path = FilesystemBlobStore(api.settings.blob_path).path(digest)
    original = path.read_bytes()
    path.chmod(0o600)
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, other bytes

    failed = _export(api, body_id=bodies.un, statement_ids=[sid])
    assert failed.status_code == 500
    assert failed.json()["type"].endswith("export-failed")
    assert api.audit_actions()[-2:] == ["export.created", "export.failed"]
    assert not list((api.settings.data_dir / "exports").glob("*.zip"))

    path.write_bytes(original)
    retried = _export(api, body_id=bodies.un, new_only=True)  # a failed export does not count
    assert retried.status_code == 201, retried.text
    assert retried.json()["statement_ids"] == [sid]


def test_intake_export_on_the_local_database(sqlite_api: Api, sqlite_bodies: Bodies,
                                             tmp_path: Path) -> None:
    """`intake export --as USER` as an operator runs it on the node, then `bundle verify`."""
    import subprocess
    import sys

    api, bodies = sqlite_api, sqlite_bodies
    sid = submit(api, record([bodies.un]), b"local", (b"file",)).json()["statement_id"]
    _, officer = api.create_account("export_officer")
    _, counsellor = api.create_account("counsellor")
    env = {**os.environ, "INTAKE_DATA_DIR": str(api.settings.data_dir),
           "INTAKE_SECRET_KEY": "x" * 48}
    intake = [sys.executable, "-m", "evidence_intake.cli.main"]
    out = tmp_path / "local.zip"
    done = subprocess.run([*intake, "export", "--as", officer, "--body", bodies.un, "--new",
                           "-o", str(out), "--json"], env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["statement_ids"] == [sid]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == result["bundle_sha256"]

    node_pub = tmp_path / "node.pub"
    node_pub.write_text(SigningKey.from_file_text(api.settings.node_key_path.read_text(), None)
                        .public_key.to_file_text())
    verified = subprocess.run([*intake, "bundle", "verify", str(out), "--node-key",
                               str(node_pub), "--log-key",
                               auditlog.log_verifier_key(api.settings.log_key_path)],
                              capture_output=True, text=True, check=False, timeout=120)
    assert verified.returncode == 0, verified.stdout

    refused = subprocess.run([*intake, "export", "--as", counsellor, "--body", bodies.un,
                              "--new", "-o", str(tmp_path / "no.zip")], env=env,
                             capture_output=True, text=True, check=False, timeout=120)
    assert refused.returncode == 2 and "not an enabled export officer" in refused.stderr
    again = subprocess.run([*intake, "export", "--as", officer, "--body", bodies.un, "--new",
                            "-o", str(tmp_path / "again.zip")], env=env, capture_output=True,
                           text=True, check=False, timeout=120)
    assert again.returncode == 1 and again.stderr.startswith("intake: error: ")
    assert not (tmp_path / "again.zip").exists()


def test_intake_export_through_the_api(sqlite_api: Api, sqlite_bodies: Bodies,
                                       tmp_path: Path) -> None:
    """`intake export --server URL --token T`: POST, download, digest check, as a subprocess."""
    import socket
    import subprocess
    import sys
    import threading
    import time

    import uvicorn
    from evidence_intake.service.app import create_app

    api, bodies = sqlite_api, sqlite_bodies
    sid = submit(api, record([bodies.un]), b"remote", (b"file",)).json()["statement_id"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(api.settings, database=api.database),
                                           host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        intake = [sys.executable, "-m", "evidence_intake.cli.main", "export", "--server",
                  f"http://127.0.0.1:{port}", "--body", bodies.un]
        out = tmp_path / "remote.zip"
        done = subprocess.run([*intake, "--token", api.token_for("export_officer"),
                               "--statement", sid, "-o", str(out), "--json"],
                              capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert hashlib.sha256(out.read_bytes()).hexdigest() == result["bundle_sha256"]
        assert result["statement_ids"] == [sid]
        denied = subprocess.run([*intake, "--token", api.token_for("counsellor"), "--new",
                                 "-o", str(tmp_path / "denied.zip")],
                                capture_output=True, text=True, check=False, timeout=120)
        assert denied.returncode == 1 and "403" in denied.stderr
        assert not (tmp_path / "denied.zip").exists()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
