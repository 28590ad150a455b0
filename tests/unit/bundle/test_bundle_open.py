"""Opening a verified bundle: byte-identical content, safe names, custody report, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from bundle_factory import BundleFixture, make_bundle, read_members, write_members
from evidence_intake.audit.note import parse_vkey
from evidence_intake.crypto.age import keys

from evidence_intake.bundle import custody
from evidence_intake.bundle import manifest as fmt
from evidence_intake.bundle.errors import OutputError
from evidence_intake.bundle.opener import NOT_SEALED, OpenResult, open_bundle, prepare_output
from evidence_intake.bundle.verify import Verification, verify_path


def _open(fx: BundleFixture, out: Path, identity: Path | None = None,
          path: Path | None = None) -> tuple[Verification, OpenResult]:
    archive, verification = verify_path(path or fx.path, fx.node_key.public_key,
                                        parse_vkey(fx.log_vkey), tool_version="9.9")
    assert archive is not None
    with archive:
        prepare_output(out)
        identities = keys.parse_identities_file((identity or fx.identity_file).read_bytes())
        return verification, open_bundle(archive, verification, identities, out)


def test_open_recovers_byte_identical_content(bundle: BundleFixture, tmp_path: Path) -> None:
    out = tmp_path / "out"
    verification, opened = _open(bundle, out)
    assert verification.report.ok
    assert opened.all_opened and len(opened.items) == 4
    for statement in bundle.statements:
        base = out / statement.id
        assert (base / "statement.json").read_bytes() == statement.record
        assert (base / "statement.txt").read_text(encoding="utf-8") == statement.text
        for index, (name, data) in enumerate(statement.attachments):
            assert (base / "attachments" / f"{index}-{name}").read_bytes() == data
    assert not list(out.rglob(".partial-*"))


def test_custody_report_records_digests_history_and_exporter(bundle: BundleFixture,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    verification, opened = _open(bundle, out)
    doc = custody.build_report(bundle.path, verification, opened, forced=False,
                               tool_version="9.9", log_key_name=bundle.log_vkey)
    custody.write_reports(out, doc)
    saved = json.loads((out / "custody-report.json").read_text(encoding="utf-8"))
    assert saved["verification"] == {"verified": True, "forced": False, "warning": "",
                                     "checks_passed": saved["verification"]["checks_passed"],
                                     "failures": []}
    assert saved["tool"] == "evidence-intake 9.9"
    assert saved["bundle"]["sha256"] == hashlib.sha256(bundle.path.read_bytes()).hexdigest()
    assert saved["bundle"]["exported_by"] == "acct-officer-1"
    assert saved["export_entry"]["action"] == "export.created"
    assert saved["export_entry"]["inclusion_proof_verified"] is True
    members = read_members(bundle.path)
    for item in saved["items"]:
        sealed = members[item["bundle_path"]]
        assert item["ciphertext_sha256"] == hashlib.sha256(sealed).hexdigest()
        assert item["ciphertext_sha256_read"] == item["ciphertext_sha256"]
        produced = (out / item["output"]).read_bytes()
        assert item["plaintext_sha256"] == hashlib.sha256(produced).hexdigest()
    for statement in saved["statements"]:
        assert [h["action"] for h in statement["audit_history"]] == ["statement.sealed"]
        assert statement["audit_history"][0]["inclusion_proof_verified"] is True
    html = (out / "custody-report.html").read_text(encoding="utf-8")
    assert "Custody report: VERIFIED" in html and bundle.bundle_id in html


def test_wrong_identity_gets_not_sealed_per_item(bundle: BundleFixture, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _, opened = _open(bundle, out, identity=bundle.other_identity_file)
    assert [item.status for item in opened.items] == [NOT_SEALED] * 4
    assert [p for p in out.rglob("*") if p.is_file()] == []


def test_attachment_names_are_sanitised(tmp_path: Path) -> None:
    hostile = ["../../../../home/user/.bashrc", "/etc/passwd", "CON.txt",
               "a\u202egpj.exe", "..", "ဓာတ်ပုံ.jpg"]
    fx = make_bundle(tmp_path, statements=1, attachments=len(hostile), attachment_names=hostile)
    out = tmp_path / "out"
    _, opened = _open(fx, out)
    assert opened.all_opened
    names = sorted(p.name for p in (out / fx.statements[0].id / "attachments").iterdir())
    assert names == sorted(["0-_.._.._.._home_user_.bashrc", "1-_etc_passwd",
                            "2-_CON.txt", "3-agpj.exe", "4-attachment", "5-ဓာတ်ပုံ.jpg"])
    every = [p.resolve() for p in out.rglob("*")]
    assert all(p.is_relative_to(out.resolve()) for p in every)


def test_output_directory_must_be_new_or_empty(bundle: BundleFixture, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputError):
        prepare_output(out)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError):
        prepare_output(tmp_path / "link")


def test_bundle_changed_after_verification_is_discarded(bundle: BundleFixture,
                                                        tmp_path: Path) -> None:
    """The gap between verify and open: the ciphertext is re-hashed while decrypting."""
    archive, verification = verify_path(bundle.path, bundle.node_key.public_key,
                                        parse_vkey(bundle.log_vkey), tool_version="t")
    assert archive is not None and verification.report.ok
    target = fmt.attachment_path(bundle.statements[0].id, 0)
    info = archive.members[target].info
    with open(bundle.path, "r+b") as handle:  # same inode, changed in place
        handle.seek(info.header_offset + 30 + len(target) + 200)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 1]))
    out = tmp_path / "out"
    prepare_output(out)
    with archive:
        identities = keys.parse_identities_file(bundle.identity_file.read_bytes())
        opened = open_bundle(archive, verification, identities, out)
    failed = [item for item in opened.items if not item.ok]
    assert [item.bundle_path for item in failed] == [target]
    assert failed[0].status.startswith("failed:")
    assert not (out / bundle.statements[0].id / "attachments" / "0-photo-0.jpg").exists()


def test_forced_open_marks_the_report(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    members["extra.txt"] = b"added"
    bad = write_members(tmp_path / "bad.zip", members)
    out = tmp_path / "out"
    verification, opened = _open(bundle, out, path=bad)
    assert not verification.report.ok
    doc = custody.build_report(bad, verification, opened, forced=True, tool_version="t",
                               log_key_name=bundle.log_vkey)
    assert doc["verification"]["warning"].startswith("VERIFICATION FAILED")
    assert doc["verification"]["failures"][0]["subject"] == "extra.txt"
    assert "VERIFICATION FAILED" in custody.render_html(doc)


def test_bytes_typed_in_zawgyi_are_kept_beside_the_unicode_text(tmp_path: Path) -> None:
    zawgyi = "\u1021\u1015\u102d\u102f\u1012\u1039 \u1041".encode()  # stands for Zawgyi input
    fx = make_bundle(tmp_path, statements=1, attachments=0, typed=zawgyi)
    out = tmp_path / "out"
    _open(fx, out)
    base = out / fx.statements[0].id
    assert (base / "statement.typed.txt").read_bytes() == zawgyi
    assert (base / "statement.txt").read_text(encoding="utf-8") == fx.statements[0].text


def test_typed_bytes_equal_to_the_text_are_not_duplicated(bundle: BundleFixture,
                                                          tmp_path: Path) -> None:
    _open(bundle, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("statement.typed.txt"))


def test_custody_html_escapes_what_the_bundle_says(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    members["<script>alert(1)</script>"] = b"x"
    bad = write_members(tmp_path / "bad.zip", members)
    archive, verification = verify_path(bad, bundle.node_key.public_key,
                                        parse_vkey(bundle.log_vkey), tool_version="t")
    assert archive is None  # refused as unsafe before anything was read
    doc = custody.build_report(bad, verification, OpenResult(out_dir=tmp_path), forced=True,
                               tool_version="t", log_key_name=bundle.log_vkey)
    page = custody.render_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page
