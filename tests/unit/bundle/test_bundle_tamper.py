"""Each tamper case of issue 5 fails verification, in the right class, naming its subject."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from bundle_factory import (
    LOG_ORIGIN,
    BundleFixture,
    edit_manifest,
    read_members,
    resign,
    write_members,
)
from evidence_intake.audit.checkpoint import parse_unverified_checkpoint, sign_checkpoint
from evidence_intake.audit.note import NoteSigner, generate_signer_key, parse_vkey
from evidence_intake.crypto.minisign import PublicKey, SigningKey

from evidence_intake.bundle import manifest as fmt
from evidence_intake.bundle.report import Report
from evidence_intake.bundle.verify import verify_path


def _verify(path: Path, fx: BundleFixture, *, node_key: PublicKey | None = None) -> Report:
    archive, result = verify_path(path, node_key or fx.node_key.public_key,
                                  parse_vkey(fx.log_vkey), tool_version="test")
    if archive is not None:
        archive.close()
    return result.report


def _failures(report: Report) -> list[tuple[str, str, str]]:
    return [(check.kind, check.name, check.subject) for check in report.failures]


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def _tampered(fx: BundleFixture, tmp_path: Path, members: dict[str, bytes]) -> Path:
    return write_members(tmp_path / "tampered.zip", members)


def test_untouched_bundle_verifies(bundle: BundleFixture) -> None:
    report = _verify(bundle.path, bundle)
    assert report.ok, report.to_text()
    assert report.exit_code == 0
    assert report.facts["bundle_id"] == bundle.bundle_id
    proved = [c.subject for c in report.checks if c.name == "inclusion proof" and c.ok]
    assert len(proved) == 3  # two statement.sealed entries and the export entry


def test_flipped_byte_in_sealed_file_names_the_file(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    target = fmt.statement_path(bundle.statements[1].id)
    members[target] = _flip(members[target], len(members[target]) // 2)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert ("content", "file digest", target) in _failures(report)
    assert report.exit_code == 5


def test_flipped_byte_in_manifest_breaks_its_signature(bundle: BundleFixture,
                                                       tmp_path: Path) -> None:
    members = read_members(bundle.path)
    members[fmt.MANIFEST] = _flip(members[fmt.MANIFEST], 40)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert _failures(report) == [("signature", "manifest signature", fmt.MANIFEST_SIG)]
    assert report.exit_code == 4
    assert "bundle_id" not in report.facts  # the manifest was never parsed


def test_flipped_byte_in_audit_entry_is_a_changed_file(bundle: BundleFixture,
                                                       tmp_path: Path) -> None:
    members = read_members(bundle.path)
    members[fmt.ENTRIES] = members[fmt.ENTRIES].replace(b"acct-counsellor-1", b"acct-counsellor-9")
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert ("content", "file digest", fmt.ENTRIES) in _failures(report)


def test_audit_entry_changed_by_compromised_node_fails_its_proof(bundle: BundleFixture,
                                                                 tmp_path: Path) -> None:
    """Even with the node key, an edited entry no longer proves into the signed log."""
    members = read_members(bundle.path)
    members[fmt.ENTRIES] = members[fmt.ENTRIES].replace(b"acct-counsellor-1", b"acct-counsellor-9")
    edit_manifest(members, lambda doc: None)
    resign(members, bundle.node_key, bundle.bundle_id)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert ("audit", "inclusion proof", "entry 1") in _failures(report)
    assert report.exit_code == 6


def test_flipped_proof_hash_names_the_entry(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    lines = members[fmt.PROOFS].splitlines(keepends=True)
    proof = json.loads(lines[1])
    raw = bytearray(base64.b64decode(proof["hashes"][0]))
    raw[0] ^= 0x80
    proof["hashes"][0] = base64.b64encode(bytes(raw)).decode()
    lines[1] = json.dumps(proof, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    members[fmt.PROOFS] = b"".join(lines)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert ("content", "file digest", fmt.PROOFS) in _failures(report)
    edit_manifest(members, lambda doc: None)
    resign(members, bundle.node_key, bundle.bundle_id)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert _failures(report) == [("audit", "inclusion proof", f"entry {proof['seq']}")]


def test_dropped_file_is_missing(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    target = fmt.attachment_path(bundle.statements[0].id, 0)
    del members[target]
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    failures = _failures(report)
    assert ("content", "file present", target) in failures
    assert ("content", "SHA256SUMS", target) in failures
    assert report.exit_code == 5


def test_added_file_is_extra(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    members["statements/extra.age"] = b"age-encryption.org/v1\n"
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert ("content", "extra file", "statements/extra.age") in _failures(report)


def test_swapped_statements_fail_digests(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    first, second = (fmt.statement_path(s.id) for s in bundle.statements)
    members[first], members[second] = members[second], members[first]
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    failures = _failures(report)
    assert ("content", "file digest", first) in failures
    assert ("content", "file digest", second) in failures


def test_swapped_statements_resigned_by_node_fail_the_log(bundle: BundleFixture,
                                                          tmp_path: Path) -> None:
    """A compromised node key can re-sign, but the log still records which file was whose."""
    members = read_members(bundle.path)
    first, second = (fmt.statement_path(s.id) for s in bundle.statements)
    members[first], members[second] = members[second], members[first]

    def fix_digest(doc: dict) -> None:  # type: ignore[type-arg]
        pairs = [(f["path"], hashlib.sha256(members[f["path"]]).hexdigest())
                 for f in doc["files"] if f["path"].startswith("statements/")]
        doc["contents_digest"] = fmt.contents_digest(pairs)

    edit_manifest(members, fix_digest)
    resign(members, bundle.node_key, bundle.bundle_id)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    failures = _failures(report)
    assert ("audit", "statement sealed", first) in failures
    assert ("audit", "statement sealed", second) in failures
    assert ("audit", "export entry", "entry 5") in failures  # its contents digest differs
    assert report.exit_code == 6


def test_checkpoint_signed_by_another_key(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    body = members[fmt.CHECKPOINT].decode().split("\n\n")[0] + "\n"
    forger, _ = generate_signer_key(LOG_ORIGIN)
    members[fmt.CHECKPOINT] = sign_checkpoint(parse_unverified_checkpoint(body),
                                              NoteSigner(forger)).encode()
    edit_manifest(members, lambda doc: None)
    resign(members, bundle.node_key, bundle.bundle_id)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert _failures(report) == [("audit", "checkpoint signature", fmt.CHECKPOINT)]
    assert report.exit_code == 6


def test_bundle_signed_by_another_node_key(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    resign(members, SigningKey.generate(), bundle.bundle_id)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert _failures(report) == [("signature", "manifest signature", fmt.MANIFEST_SIG)]


def test_pinned_key_is_used_not_the_copy_inside(bundle: BundleFixture) -> None:
    report = _verify(bundle.path, bundle, node_key=SigningKey.generate().public_key)
    assert report.exit_code == 4


def test_dotdot_member_is_refused_before_reading(bundle: BundleFixture, tmp_path: Path) -> None:
    members = read_members(bundle.path)
    members["../../outside.txt"] = b"x"
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert _failures(report) == [("archive", "archive safety", "../../outside.txt")]
    assert report.exit_code == 3


def test_entry_about_another_witness_is_refused(bundle: BundleFixture, tmp_path: Path) -> None:
    """A bundle may carry only entries about its own statements and the export."""
    members = read_members(bundle.path)
    checkpoint_text = members[fmt.CHECKPOINT].decode()
    assert "\n7\n" in checkpoint_text  # seven entries in the test log
    entries = members[fmt.ENTRIES].splitlines(keepends=True)
    moved = entries[0].replace(b'"statement":"', b'"statement":"x')
    members[fmt.ENTRIES] = b"".join([moved, *entries[1:]])
    edit_manifest(members, lambda doc: None)
    resign(members, bundle.node_key, bundle.bundle_id)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    failures = _failures(report)
    assert ("audit", "unrelated entry", "entry 1") in failures
    assert ("audit", "inclusion proof", "entry 1") in failures


@pytest.mark.parametrize("field", ["bundle_id", "created_by"])
def test_manifest_fields_must_match_the_logged_export(bundle: BundleFixture, tmp_path: Path,
                                                      field: str) -> None:
    members = read_members(bundle.path)
    edit_manifest(members, lambda doc: doc.__setitem__(field, "someone-else"))
    bundle_id = "someone-else" if field == "bundle_id" else bundle.bundle_id
    resign(members, bundle.node_key, bundle_id)
    report = _verify(_tampered(bundle, tmp_path, members), bundle)
    assert ("audit", "export entry", "entry 5") in _failures(report)
