"""Offline verification of an export bundle, in a fixed order.

Threat model: the bundle travelled through hands we do not trust, and the
export node itself may later be compromised. Trust comes only from two keys
the investigator pinned out of band: the node's minisign key (signs the
manifest and SHA256SUMS) and the audit log's note key (signs checkpoints).
The copies of keys inside the bundle are never used to verify.

Order (numbered as in docs/formats/bundle.md, section "Verifying"):

1. Zip safety, for the whole central directory, before reading any member
   (done by :func:`~evidence_intake.bundle.archive.open_archive`).
2. The manifest's minisign signature with the pinned node key, BEFORE the
   manifest is parsed; then SHA256SUMS's signature.
3. Parse the manifest; its trusted comment must name the same bundle id.
4. Every listed file: present, exact size, SHA-256; no member that is
   neither listed nor one of the four signing/index files.
5. Structure: each statement's files under ``statements/<id>/``, the contents
   digest recomputed; SHA256SUMS lists exactly the archive's files with the
   digests just computed.
6. The checkpoint's signature with the pinned log key; it must match the
   manifest's tree size, root and origin.
7. Each audit entry's inclusion proof against that checkpoint.
8. Relations: the ``export.created`` entry names exactly these statements,
   this bundle and its contents digest; every statement has a
   ``statement.sealed`` entry recording the digests of the sealed files in
   the bundle and no ``consent.withdrawn`` entry before the export; every
   entry is about a statement of the bundle or is the export itself.

Steps 1-3 stop at the first failure (nothing after them can be trusted);
from step 4 on every failure is reported, each naming its file or entry.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path

from ..crypto import minisign
from ..crypto.errors import CryptoError
from .archive import SafeArchive, open_archive
from .errors import (
    ArchiveError,
    BundleSignatureError,
    ContentError,
    ManifestError,
)
from .evidence import AuditEvidence, LogKey, check_evidence
from .manifest import (
    CHECKPOINT,
    ENTRIES,
    MANIFEST,
    MANIFEST_SIG,
    PROOFS,
    SUMS,
    SUMS_SIG,
    UNLISTED,
    Manifest,
    contents_digest,
    parse_manifest,
    parse_sums,
)
from .report import Report

MAX_MANIFEST = 256 << 20
MAX_SIGNATURE = 64 << 10


def trusted_comment(bundle_id: str, file_name: str) -> str:
    """The trusted comment the exporter signs into each signature of a bundle."""
    return f"evidence-intake bundle {bundle_id} {file_name}"


@dataclass
class Verification:
    """What verification established, for the report and for opening."""

    report: Report
    manifest: Manifest | None = None
    digests: dict[str, tuple[int, str]] = field(default_factory=dict)
    evidence: AuditEvidence | None = None


def _signature(archive: SafeArchive, name: str, sig_name: str,
               node_key: minisign.PublicKey) -> tuple[bytes, str]:
    data = archive.read_small(name, MAX_MANIFEST)
    sig = archive.read_small(sig_name, MAX_SIGNATURE)
    try:
        comment = minisign.verify(data, sig.decode("utf-8"), node_key)
    except (CryptoError, UnicodeDecodeError, ValueError) as err:
        raise BundleSignatureError(
            f"{name}: signature does not verify with the pinned node key ({err})",
            subject=sig_name) from err
    return data, comment


def verify_bundle(archive: SafeArchive, node_key: minisign.PublicKey, log_key: LogKey,
                  *, tool_version: str) -> Verification:
    """Run steps 2-8 on an archive that passed the safety checks (step 1)."""
    report = Report(bundle=str(archive.path), tool_version=tool_version)
    report.passed("archive safety", str(archive.path))
    result = Verification(report=report)
    members = archive.members

    # 2. Signatures over the manifest and SHA256SUMS, before parsing either.
    for required in (MANIFEST, MANIFEST_SIG, SUMS, SUMS_SIG):
        if required not in members:
            report.failed("required file", ContentError(f"{required} is missing",
                                                        subject=required))
            return result
    try:
        manifest_bytes, manifest_comment = _signature(archive, MANIFEST, MANIFEST_SIG, node_key)
    except (BundleSignatureError, ContentError) as err:
        report.failed("manifest signature", err)
        return result
    report.passed("manifest signature", MANIFEST, f"node key {node_key.fingerprint}")
    report.facts["node_key_id"] = node_key.fingerprint
    try:
        sums_bytes, sums_comment = _signature(archive, SUMS, SUMS_SIG, node_key)
        report.passed("SHA256SUMS signature", SUMS)
    except BundleSignatureError as err:
        report.failed("SHA256SUMS signature", err)
        sums_bytes, sums_comment = b"", ""

    # 3. Parse the now-authenticated manifest.
    try:
        manifest = parse_manifest(manifest_bytes)
    except ManifestError as err:
        report.failed("manifest format", err)
        return result
    result.manifest = manifest
    report.facts.update({
        "bundle_id": manifest.bundle_id, "created": manifest.created,
        "created_by": manifest.created_by,
        "receiving_body": f"{manifest.body_name} ({manifest.body_id})",
        "statements": len(manifest.statements), "files": len(manifest.files),
        "log_origin": manifest.log_origin, "tree_size": manifest.tree_size,
    })
    if manifest_comment != trusted_comment(manifest.bundle_id, MANIFEST):
        report.failed("manifest signature", BundleSignatureError(
            f"trusted comment {manifest_comment!r} does not name bundle {manifest.bundle_id}",
            subject=MANIFEST_SIG))
    if sums_comment and sums_comment != trusted_comment(manifest.bundle_id, SUMS):
        report.failed("SHA256SUMS signature", BundleSignatureError(
            f"trusted comment {sums_comment!r} does not name bundle {manifest.bundle_id}",
            subject=SUMS_SIG))
    if not hmac.compare_digest(manifest.node_key_id.upper(), node_key.fingerprint.upper()):
        report.failed("node key", ManifestError(
            f"manifest names node key {manifest.node_key_id}, but the pinned key "
            f"{node_key.fingerprint} signed it", subject=MANIFEST))

    # 4. Every listed file, then anything unlisted.
    _check_files(archive, manifest, result)

    # 5. Structure, contents digest, SHA256SUMS.
    _check_structure(manifest, result)
    if sums_bytes:
        _check_sums(archive, sums_bytes, result)

    # 6-8. Audit evidence (checkpoint, proofs, relations).
    if all(name in result.digests for name in (CHECKPOINT, ENTRIES, PROOFS)):
        result.evidence = check_evidence(archive, manifest, log_key, report)
    return result


def _check_files(archive: SafeArchive, manifest: Manifest, result: Verification) -> None:
    report = result.report
    for entry in manifest.files:
        if entry.path in UNLISTED:
            report.failed("file list", ManifestError(
                f"{entry.path} may not be listed in the manifest", subject=entry.path))
            continue
        if entry.path not in archive.members:
            report.failed("file present", ContentError(f"{entry.path} is missing from the bundle",
                                                       subject=entry.path))
            continue
        if archive.members[entry.path].size != entry.size:
            report.failed("file size", ContentError(
                f"{entry.path} has {archive.members[entry.path].size} bytes, manifest says "
                f"{entry.size}", subject=entry.path))
            continue
        size, digest = archive.digest(entry.path)
        if size != entry.size or not hmac.compare_digest(digest, entry.sha256):
            report.failed("file digest", ContentError(
                f"{entry.path}: SHA-256 is {digest}, manifest says {entry.sha256}",
                subject=entry.path))
            continue
        result.digests[entry.path] = (size, digest)
        report.passed("file digest", entry.path, digest)
    listed = {entry.path for entry in manifest.files} | UNLISTED
    for name in sorted(set(archive.members) - listed):
        report.failed("extra file", ContentError(
            f"{name} is in the bundle but not in the manifest", subject=name))


def _check_structure(manifest: Manifest, result: Verification) -> None:
    report = result.report
    listed = {entry.path: entry for entry in manifest.files}
    for required in (CHECKPOINT, ENTRIES, PROOFS):
        if required not in listed:
            report.failed("file list", ManifestError(f"manifest does not list {required}",
                                                     subject=required))
    pairs = []
    claimed: dict[str, str] = {}
    for statement in manifest.statements:
        prefix = f"statements/{statement.id}/"
        expected_attachments = tuple(f"{prefix}attachments/{n}.age"
                                     for n in range(len(statement.attachments)))
        if statement.statement != f"{prefix}statement.age" or \
                statement.attachments != expected_attachments:
            report.failed("statement layout", ManifestError(
                f"statement {statement.id}: files are not at their canonical paths",
                subject=statement.statement))
        for path in statement.sealed_files:
            if path in claimed:
                report.failed("statement layout", ManifestError(
                    f"{path} is claimed by statements {claimed[path]} and {statement.id}",
                    subject=path))
            claimed[path] = statement.id
            file = listed.get(path)
            if file is None:
                report.failed("file list", ManifestError(
                    f"statement {statement.id}: {path} is not in the manifest's files",
                    subject=path))
                continue
            pairs.append((path, file.sha256))
    for path in listed:
        if path.startswith("statements/") and path not in claimed:
            report.failed("statement layout", ManifestError(
                f"{path} belongs to no statement of the manifest", subject=path))
    digest = contents_digest(pairs)
    if hmac.compare_digest(digest, manifest.contents_digest):
        report.passed("contents digest", MANIFEST, digest)
    else:
        report.failed("contents digest", ManifestError(
            f"contents digest is {digest}, manifest says {manifest.contents_digest}",
            subject=MANIFEST))


def _check_sums(archive: SafeArchive, sums_bytes: bytes, result: Verification) -> None:
    report = result.report
    try:
        sums = parse_sums(sums_bytes)
    except ManifestError as err:
        report.failed("SHA256SUMS", err)
        return
    for name in (MANIFEST, MANIFEST_SIG):
        result.digests[name] = archive.digest(name)
    expected = set(archive.members) - {SUMS, SUMS_SIG}
    for name in sorted(expected | set(sums)):
        if name not in sums:
            report.failed("SHA256SUMS", ContentError(f"{name} is not listed in SHA256SUMS",
                                                     subject=name))
        elif name not in expected:
            report.failed("SHA256SUMS", ContentError(f"SHA256SUMS lists {name}, which is absent",
                                                     subject=name))
        elif name in result.digests and not hmac.compare_digest(
                sums[name], result.digests[name][1]):
            report.failed("SHA256SUMS", ContentError(
                f"SHA256SUMS says {name} has SHA-256 {sums[name]}", subject=name))
    if not any(c.name == "SHA256SUMS" and not c.ok for c in report.checks):
        report.passed("SHA256SUMS", SUMS, f"{len(sums)} files")


def verify_path(path: Path, node_key: minisign.PublicKey, log_key: LogKey, *,
                tool_version: str) -> tuple[SafeArchive | None, Verification]:
    """Step 1 (zip safety) then :func:`verify_bundle`.

    Returns the open archive (the caller closes it; ``None`` if the archive was
    refused) and the verification, whose report holds every outcome.
    """
    try:
        archive = open_archive(path)
    except ArchiveError as err:
        report = Report(bundle=str(path), tool_version=tool_version)
        report.failed("archive safety", err)
        return None, Verification(report=report)
    return archive, verify_bundle(archive, node_key, log_key, tool_version=tool_version)
