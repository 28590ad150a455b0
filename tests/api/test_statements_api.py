"""POST /api/v1/statements and friends, on SQLite and PostgreSQL.

Every test uploads through the real app (multipart parsed as a stream, sealed
with age, committed with its audit entry) and checks the result by opening
the sealed blobs with the investigators' identities.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from evidence_intake.crypto.errors import NoIdentityMatchError
from evidence_intake.schemas.statements import Receipt, StatementRecord
from evidence_intake.service.intake import records
from evidence_intake.service.intake.blobstore import FilesystemBlobStore
from intake_api_support import Api
from intake_samples import (
    UNICODE_ARTICLE_1,
    ZAWGYI_ARTICLE_1,
    multipart,
    record,
    stored_files,
    with_change,
)
from statements_support import Bodies, make_bodies, open_blob, open_record, submit

PROBLEM = "application/problem+json"


@pytest.fixture
def bodies(api: Api) -> Bodies:
    return make_bodies(api)


def _blob_names(api: Api) -> list[str]:
    return stored_files(api.settings.blob_path)


def test_submission_is_sealed_per_key_kind_and_answered_with_a_receipt(
        api: Api, bodies: Bodies) -> None:
    attachment = os.urandom(300_000)
    response = submit(api, record([bodies.un, bodies.icc], ["other-body"]),
                      ZAWGYI_ARTICLE_1.encode(), (attachment,))
    assert response.status_code == 201, response.text
    receipt = Receipt.model_validate(response.json())
    copies = {c.key_kind: c for c in receipt.copies}
    assert copies["x25519"].bodies == [bodies.un]
    assert copies["mlkem768x25519"].bodies == [bodies.icc]

    doc = open_record(api, copies["mlkem768x25519"].statement.sha256, bodies.icc_key)
    rec = StatementRecord.model_validate(doc)
    assert rec.routing.record_id == receipt.statement_id
    assert rec.routing.counsellor_account_id == api.accounts["counsellor"]
    assert base64.b64decode(rec.sealed.statement.typed_base64) == ZAWGYI_ARTICLE_1.encode()
    assert rec.sealed.statement.unicode == UNICODE_ARTICLE_1
    assert rec.sealed.attachments[0].sha256 == hashlib.sha256(attachment).hexdigest()
    assert open_blob(api, copies["x25519"].attachments[0].sha256, bodies.un_key) == attachment
    with pytest.raises(NoIdentityMatchError):
        open_blob(api, copies["x25519"].statement.sha256, bodies.icc_key)

    assert api.audit_actions()[receipt.audit.seq] == "statement.sealed"
    again = api.client.get(f"/api/v1/statements/{receipt.statement_id}/receipt",
                           headers=api.auth("counsellor"))
    assert again.status_code == 200
    assert Receipt.model_validate(again.json()).audit == receipt.audit
    assert len(_blob_names(api)) == 4


def test_counsellors_list_their_own_routing_metadata_only(api: Api, bodies: Bodies) -> None:
    mine = submit(api, record([bodies.un]))
    assert mine.status_code == 201, mine.text
    listed = api.client.get("/api/v1/statements", headers=api.auth("counsellor"))
    assert listed.status_code == 200
    (item,) = listed.json()
    assert item["routing"]["record_id"] == mine.json()["statement_id"]
    assert item["routing"]["text_encoding"] == "no-myanmar-text"
    assert "sealed" not in item and "Witness A" not in listed.text
    # Another counsellor sees nothing of it.
    other_id, _ = api.create_account("counsellor")
    from evidence_intake.service.auth.accounts import create_api_token

    with api.database.session() as session:
        token = create_api_token(session, actor="system", account_id=other_id, name="t").token
    other = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/statements", headers=other).json() == []
    sid = mine.json()["statement_id"]
    assert api.client.get(f"/api/v1/statements/{sid}", headers=other).status_code == 404
    assert api.client.get(f"/api/v1/statements/{sid}/receipt",
                          headers=other).status_code == 404


def test_no_consent_no_seal(api: Api, bodies: Bodies) -> None:
    response = submit(api, record([], [bodies.un]))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith(":no-consent")
    assert _blob_names(api) == []


def test_a_body_without_active_key_is_refused(api: Api, bodies: Bodies) -> None:
    api.auth("counsellor")  # the account and token are audited too; make them first
    before = api.audit_actions()
    response = submit(api, record([bodies.un, bodies.empty]))
    assert response.status_code == 422
    assert response.json()["type"].endswith(":no-active-key")
    assert api.audit_actions() == before


def test_an_unknown_body_is_a_validation_error(api: Api, bodies: Bodies) -> None:
    response = submit(api, record(["no-such-body"]))
    assert response.status_code == 422
    assert response.json()["field"] == "record.sealed.consent.sharing"


def test_validation_names_the_field(api: Api, bodies: Bodies) -> None:
    response = submit(api, with_change(record([bodies.un]), "routing.script", "burmese"))
    assert response.status_code == 422
    problem = response.json()
    assert problem["field"] == "record.routing.script"
    assert "burmese" not in response.text


def test_wrong_content_type_is_415(api: Api, bodies: Bodies) -> None:
    response = api.client.post("/api/v1/statements", json={"a": 1},
                               headers=api.auth("counsellor"))
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM


def test_other_roles_cannot_submit(api: Api, bodies: Bodies) -> None:
    assert submit(api, record([bodies.un]), role="auditor").status_code == 403
    body, ctype = multipart([("text", None, "text/plain", b"x")])
    anonymous = api.client.post("/api/v1/statements", content=body,
                                headers={"Content-Type": ctype})
    assert anonymous.status_code == 401


def test_amendment_points_to_the_original_which_is_unchanged(api: Api, bodies: Bodies) -> None:
    first = submit(api, record([bodies.un]))
    original = first.json()["statement_id"]
    second = submit(api, record([bodies.un], amends=original), b"corrected statement")
    assert second.status_code == 201, second.text
    assert second.json()["amends"] == original
    doc = open_record(api, second.json()["copies"][0]["statement"]["sha256"], bodies.un_key)
    assert doc["routing"]["amends"] == original
    again = api.client.get(f"/api/v1/statements/{original}/receipt",
                           headers=api.auth("counsellor"))
    assert again.json()["copies"] == first.json()["copies"]
    missing = submit(api, record([bodies.un], amends="0b6f3c1e-2a4d-4c8e-9f10-1234567890ab"))
    assert missing.status_code == 404


def test_withdrawal_excludes_from_export_and_purge_leaves_a_tombstone(
        api: Api, bodies: Bodies) -> None:
    first = submit(api, record([bodies.un]), attachments=(b"photo",))
    sid = first.json()["statement_id"]
    amended = submit(api, record([bodies.un], amends=sid)).json()["statement_id"]
    url = f"/api/v1/statements/{sid}/withdrawal"
    auth = api.auth("counsellor")

    withdrawn = api.client.post(url, json={"withdrawn_at": "2026-11-29T10:00:00Z"}, headers=auth)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    with api.database.session() as session:
        assert records.exportable(session, [sid, amended]) == set()
    assert api.client.post(url, json={"withdrawn_at": "2026-11-29T10:00:00Z"},
                           headers=auth).status_code == 409
    assert submit(api, record([bodies.un], amends=sid)).status_code == 409
    digests = [c["statement"]["sha256"] for c in first.json()["copies"]]
    store = FilesystemBlobStore(api.settings.blob_path)
    assert all(store.exists(d) for d in digests)

    purged = api.client.post(url, json={"withdrawn_at": "2026-11-29T10:00:00Z", "purge": True},
                             headers=auth)
    assert purged.status_code == 200, purged.text
    assert purged.json()["status"] == "purged"
    assert not any(store.exists(d) for d in digests)
    tombstone = api.client.get(f"/api/v1/statements/{sid}/receipt", headers=auth).json()
    assert tombstone["status"] == "purged"
    assert tombstone["copies"] == first.json()["copies"]
    actions = api.audit_actions()[first.json()["audit"]["seq"]:]
    assert actions.count("statement.consent_withdrawn") == 2
    assert actions.count("statement.purged") == 2
    assert _blob_names(api) == []


def test_content_length_over_the_limit_is_refused_before_reading(
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> None:
    from intake_api_support import make_api

    gen = make_api(tmp_path_factory.mktemp("limits"), "sqlite", request,
                   max_request_bytes=100_000, max_attachment_bytes=50_000, max_attachments=2)
    api = next(gen)
    try:
        bodies = make_bodies(api)
        big = submit(api, record([bodies.un]), attachments=(os.urandom(120_000),))
        assert big.status_code == 413
        assert big.json()["type"].endswith(":payload-too-large")
        one_too_big = submit(api, record([bodies.un]), attachments=(os.urandom(60_000),))
        assert one_too_big.status_code == 413
        assert one_too_big.json()["field"] == "attachment.0"
        too_many = submit(api, record([bodies.un]), attachments=(b"1", b"2", b"3"))
        assert too_many.status_code == 413
        assert _blob_names(api) == []
    finally:
        gen.close()


def test_a_later_receipt_carries_a_checkpoint_that_proves_the_entry(
        api: Api, bodies: Bodies, tmp_path: Path) -> None:
    from evidence_intake.audit.checkpoint import open_checkpoint
    from evidence_intake.audit.merkle import leaf_hash, verify_inclusion
    from evidence_intake.audit.note import parse_vkey
    from evidence_intake.service import auditlog

    first = Receipt.model_validate(submit(api, record([bodies.un])).json())
    vkey = auditlog.create_log_key(tmp_path / "log.key", "intake.test/audit")
    with api.database.session() as session:
        auditlog.sign_checkpoint(session, auditlog.load_log_signer(tmp_path / "log.key"))
        session.commit()

    later = api.client.get(f"/api/v1/statements/{first.statement_id}/receipt",
                           headers=api.auth("counsellor"))
    receipt = Receipt.model_validate(later.json())
    assert receipt.checkpoint is not None
    checkpoint = open_checkpoint(receipt.checkpoint, parse_vkey(vkey))
    assert checkpoint.size > receipt.audit.seq
    with api.database.session() as session:
        data = auditlog.entry_bytes(session, receipt.audit.seq)
        proof = auditlog.inclusion_proof(session, receipt.audit.seq, checkpoint.size)
    assert hashlib.sha256(data).hexdigest() == receipt.audit.entry_hash
    verify_inclusion(leaf_hash(data), receipt.audit.seq, checkpoint.size, proof,
                     checkpoint.root_hash)
    entry = json.loads(data)
    assert entry["action"] == "statement.sealed"
    assert entry["details"]["copies"][0]["statement"]["sha256"] == (
        receipt.copies[0].statement.sha256)
