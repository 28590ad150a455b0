"""One upload through Submission with real age keys: what is sealed, and to whom.

The database side (plan_for) is replaced by a plan built from keys made here,
so these tests cover parsing, limits, Zawgyi handling and sealing alone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from evidence_intake.crypto.age import X25519Identity, decrypt, recipient_fingerprint
from evidence_intake.crypto.age.mlkem768x25519 import HybridIdentity
from evidence_intake.crypto.errors import NoIdentityMatchError
from evidence_intake.schemas.statements import StatementRecord
from evidence_intake.service.intake.blobstore import FilesystemBlobStore
from evidence_intake.service.intake.errors import (
    InvalidStatementError,
    NoActiveKeyError,
    NoConsentError,
    TooLargeError,
    UnsupportedMediaError,
)
from evidence_intake.service.intake.multipart import StreamingFormParser
from evidence_intake.service.intake.routing import PlannedKey, SealPlan, plan_seal
from evidence_intake.service.intake.submission import Limits, SealedSubmission, Submission
from evidence_intake.service.models.recipients import KeyKind
from intake_samples import (
    CANARY,
    UNICODE_ARTICLE_1,
    ZAWGYI_ARTICLE_1,
    multipart,
    record,
    record_bytes,
    stored_files,
    with_change,
)

LIMITS = Limits(max_request_bytes=1 << 30, max_attachment_bytes=1 << 20, max_attachments=3,
                max_record_bytes=64 * 1024, max_text_bytes=256 * 1024)
RECORD_ID = "0b6f3c1e-2a4d-4c8e-9f10-1234567890ab"


class _Row:
    def __init__(self, body_id: str, identity: Any, kind: KeyKind) -> None:
        self.id = f"r-{body_id}-{kind.value}"
        self.body_id = body_id
        self.recipient = str(identity.recipient)
        self.kind = kind
        self.fingerprint = recipient_fingerprint(identity.recipient)


class Keys:
    def __init__(self) -> None:
        self.un = X25519Identity.generate()
        self.icc = HybridIdentity.generate()
        self.rows = {"un": [_Row("un", self.un, KeyKind.x25519)],
                     "icc": [_Row("icc", self.icc, KeyKind.mlkem768x25519)],
                     "nokey": []}

    def plan(self, _record: Any, bodies: list[str]) -> SealPlan:
        return plan_seal(bodies, {b: self.rows[b] for b in bodies})


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def _run(tmp_path: Path, keys: Keys, parts: list[tuple[str, str | None, str, bytes]],
         limits: Limits = LIMITS) -> tuple[SealedSubmission, FilesystemBlobStore]:
    store = FilesystemBlobStore(tmp_path / "blobs")
    sub = Submission(store=store, limits=limits, record_id=RECORD_ID, counsellor_id="c-1",
                     created_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC), plan_for=keys.plan)
    body, ctype = multipart(parts)
    parser = StreamingFormParser(ctype.split("boundary=")[1].encode(), sub.open_part)
    try:
        for start in range(0, len(body), 65536):
            parser.feed(body[start:start + 65536])
        parser.finish()
        sealed = sub.seal_statement()
        sub.publish()
        return sealed, store
    except BaseException:
        sub.abort()
        raise


def _open(store: FilesystemBlobStore, digest: str, identity: Any) -> bytes:
    out = io.BytesIO()
    with store.open(digest) as src:
        decrypt(src, out, [identity])
    return out.getvalue()


def _parts(rec: dict[str, Any], text: bytes, *attachments: bytes
           ) -> list[tuple[str, str | None, str, bytes]]:
    parts: list[tuple[str, str | None, str, bytes]] = [
        ("record", None, "application/json", record_bytes(rec)),
        ("text", None, "text/plain; charset=utf-8", text)]
    parts += [("attachment", f"file{i}.bin", "application/octet-stream", a)
              for i, a in enumerate(attachments)]
    return parts


def test_each_key_kind_gets_its_own_copy_and_only_its_bodies_can_open_it(
        tmp_path: Path, keys: Keys) -> None:
    attachment = os.urandom(200_000)
    sealed, store = _run(tmp_path, keys, _parts(record(["un", "icc"], ["other"]),
                                                 ZAWGYI_ARTICLE_1.encode(), attachment))
    copies = {c.key_kind: c for c in sealed.routing.copies or []}
    assert set(copies) == {"x25519", "mlkem768x25519"}
    assert copies["x25519"].bodies == ["un"] and copies["mlkem768x25519"].bodies == ["icc"]
    assert {b.body_id: b.key_kind for b in sealed.routing.bodies} == {
        "un": "x25519", "icc": "mlkem768x25519"}

    for kind, identity, other in (("x25519", keys.un, keys.icc),
                                  ("mlkem768x25519", keys.icc, keys.un)):
        copy = copies[kind]
        plaintext = _open(store, copy.statement.sha256, identity)
        doc = json.loads(plaintext)
        rec = StatementRecord.model_validate(doc)
        # The record is built from its validated parts, not as one model:
        # byte for byte it is still the model's own dump.
        assert plaintext == json.dumps(rec.model_dump(mode="json", by_alias=True,
                                                      exclude_none=True),
                                       ensure_ascii=False, sort_keys=True,
                                       separators=(",", ":")).encode()
        assert rec.sealed.witness.name == "Witness A"
        assert base64.b64decode(rec.sealed.statement.typed_base64) == ZAWGYI_ARTICLE_1.encode()
        assert rec.sealed.statement.unicode == UNICODE_ARTICLE_1
        assert rec.routing.text_encoding == "zawgyi"
        assert rec.routing.transformations == ["zawgyi-to-unicode"]
        assert rec.routing.copies is None  # the envelope cannot hold its own digest
        assert rec.routing.sizes.record_bytes == len(json.dumps(doc, ensure_ascii=False,
                                                                sort_keys=True,
                                                                separators=(",", ":")).encode())
        meta = rec.sealed.attachments[0]
        assert (meta.filename, meta.size) == ("file0.bin", len(attachment))
        assert meta.sha256 == hashlib.sha256(attachment).hexdigest()
        assert _open(store, copy.attachments[0].sha256, identity) == attachment
        with pytest.raises(NoIdentityMatchError):
            _open(store, copy.statement.sha256, other)
    # Only ciphertext, under its own digest, and nothing else in the store.
    names = stored_files(tmp_path / "blobs")
    assert len(names) == 4
    for name in names:
        assert hashlib.sha256((tmp_path / "blobs" / name).read_bytes()).hexdigest() == name


def test_routing_never_carries_identifying_fields(tmp_path: Path, keys: Keys) -> None:
    rec = with_change(record(["un"]), "sealed.witness.name", CANARY)
    sealed, _ = _run(tmp_path, keys, _parts(rec, f"statement {CANARY}".encode(), b"x"))
    clear = sealed.routing.model_dump_json()
    assert CANARY not in clear
    for secret in ("Witness A", "Ko Lay", "Shelter room 2", "file0.bin", "LIB 000"):
        assert secret not in clear


def test_no_consent_no_seal(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises(NoConsentError):
        _run(tmp_path, keys, _parts(record([], ["un"]), b"text"))
    with pytest.raises(NoConsentError):
        _run(tmp_path, keys, _parts(with_change(record(["un"]), "sealed.consent.storage.answer",
                                                "no"), b"text"))
    assert stored_files(tmp_path / "blobs") == []


def test_a_consented_body_without_an_active_key_is_refused(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises(NoActiveKeyError) as caught:
        _run(tmp_path, keys, _parts(record(["un", "nokey"]), b"text"))
    assert "nokey" in caught.value.detail


def test_validation_errors_name_the_field_and_never_the_value(tmp_path: Path, keys: Keys) -> None:
    rec = with_change(record(["un"]), "sealed.interview.mode", CANARY)
    with pytest.raises(InvalidStatementError) as caught:
        _run(tmp_path, keys, _parts(rec, b"text"))
    assert caught.value.field == "record.sealed.interview.mode"
    assert CANARY not in caught.value.detail


@pytest.mark.parametrize(("parts", "error"), [
    ([("text", None, "text/plain", b"x")], InvalidStatementError),
    ([("record", None, "text/plain", b"{}")], UnsupportedMediaError),
    ([("record", None, "application/json", b"{" * 70_000)], TooLargeError),
])
def test_part_order_types_and_sizes(tmp_path: Path, keys: Keys,
                                    parts: list[tuple[str, str | None, str, bytes]],
                                    error: type[Exception]) -> None:
    with pytest.raises(error):
        _run(tmp_path, keys, parts)


def test_attachment_limits_leave_no_blob_behind(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises(TooLargeError):
        _run(tmp_path, keys, _parts(record(["un", "icc"]), b"t", b"a", os.urandom(2 << 20)))
    with pytest.raises(TooLargeError):
        _run(tmp_path, keys, _parts(record(["un"]), b"t", b"1", b"2", b"3", b"4"))
    assert stored_files(tmp_path / "blobs") == []


def test_text_must_be_utf8(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises(InvalidStatementError) as caught:
        _run(tmp_path, keys, _parts(record(["un"]), b"\xff\xfe bad"))
    assert caught.value.field == "text"


def test_consent_recording_must_name_an_uploaded_attachment(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises(InvalidStatementError):
        _run(tmp_path, keys, _parts(record(["un"], recording=1), b"t", b"only one"))
    sealed, _ = _run(tmp_path, keys, _parts(record(["un"], recording=0), b"t", b"recording"))
    assert sealed.routing.sizes.attachment_bytes == [9]


def test_a_mixed_body_uses_only_its_post_quantum_keys(keys: Keys) -> None:
    rows = keys.rows["un"] + [_Row("un", keys.icc, KeyKind.mlkem768x25519)]
    plan = plan_seal(["un"], {"un": rows})
    assert dict(plan.bodies) == {"un": KeyKind.mlkem768x25519}
    (group,) = plan.groups
    assert all(isinstance(k, PlannedKey) and k.kind is KeyKind.mlkem768x25519 for k in group.keys)


def test_a_body_answered_twice_is_refused_not_guessed(tmp_path: Path, keys: Keys) -> None:
    rec = record(["un"], ["un"])
    with pytest.raises(InvalidStatementError) as caught:
        _run(tmp_path, keys, _parts(rec, b"t"))
    assert caught.value.field == "record.sealed.consent.sharing.1.body_id"


@pytest.mark.parametrize("purpose", ["risks_explained", "withdrawal_explained"])
def test_consent_without_the_explanations_is_no_consent(tmp_path: Path, keys: Keys,
                                                        purpose: str) -> None:
    rec = with_change(record(["un"]), f"sealed.consent.{purpose}.answer", "no")
    with pytest.raises(NoConsentError) as caught:
        _run(tmp_path, keys, _parts(rec, b"t"))
    assert caught.value.field == f"record.sealed.consent.{purpose}"


def test_bodies_of_one_kind_share_one_copy_sealed_to_the_union_of_their_keys(
        keys: Keys) -> None:
    other = X25519Identity.generate()
    rows = {"un": keys.rows["un"], "hrc": [_Row("hrc", other, KeyKind.x25519)],
            "both": [_Row("both", keys.un, KeyKind.x25519)]}
    plan = plan_seal(["un", "hrc", "both"], rows)
    (group,) = plan.groups
    assert group.bodies == ("both", "hrc", "un")
    # The key registered for two bodies wraps the file key once.
    assert group.recipient_strings() == sorted({str(keys.un.recipient), str(other.recipient)})
