"""Build real export bundles for the offline tests, without the service or a database.

Everything is made with the project's own primitives, as the exporter does:
statements and attachments sealed with age to an investigator's X25519 key, a
hash-chained audit log whose Merkle tree is signed as a C2SP checkpoint, and
the bundle written by the exporter's pure writer and signed with a minisign
node key. Tamper helpers rewrite the zip member by member (and can re-sign
with the node key, to model a compromised node).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evidence_intake.audit import merkle
from evidence_intake.audit.checkpoint import Checkpoint, sign_checkpoint
from evidence_intake.audit.entry import GENESIS_PREV, Entry
from evidence_intake.audit.note import NoteSigner, generate_signer_key
from evidence_intake.crypto import age
from evidence_intake.crypto.minisign import SigningKey
from evidence_intake.service.exports.writer import (
    AuditMaterial,
    BundleHeader,
    SealedSource,
    StatementSpec,
    contents_digest_of,
    write_bundle,
)

from evidence_intake.bundle import manifest as fmt
from evidence_intake.bundle.verify import trusted_comment

LOG_ORIGIN = "intake.example.org/test-log"
BODY_ID = "un-iimm"
OFFICER = "acct-officer-1"


@dataclass
class StatementPlain:
    id: str
    text: str
    record: bytes
    attachments: list[tuple[str, bytes]]


@dataclass
class BundleFixture:
    path: Path
    node_key: SigningKey
    node_pub: Path
    log_vkey: str
    log_skey: str
    identity_file: Path
    other_identity_file: Path
    bundle_id: str
    statements: list[StatementPlain] = field(default_factory=list)


def _seal(data: bytes, recipients: list[Any]) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(data), out, recipients)
    return out.getvalue()


def _time(second: int) -> str:
    return f"2026-11-29T10:{second // 60:02d}:{second % 60:02d}Z"


def make_bundle(tmp_path: Path, *, statements: int = 2, attachments: int = 1,
                attachment_names: list[str] | None = None,
                typed: bytes | None = None) -> BundleFixture:
    """A verified-good bundle of ``statements`` statements for one investigator."""
    work = tmp_path / "factory"
    work.mkdir(parents=True, exist_ok=True)
    investigator = age.X25519Identity.generate()
    other = age.X25519Identity.generate()
    (work / "investigator.txt").write_text(str(investigator) + "\n")
    (work / "other.txt").write_text(str(other) + "\n")
    node_key = SigningKey.generate()
    (work / "node.pub").write_text(node_key.public_key.to_file_text())
    skey, vkey = generate_signer_key(LOG_ORIGIN)

    entries: list[Entry] = []

    def log(actor: str, action: str, subject: dict[str, str], details: dict[str, Any]) -> Entry:
        prev = entries[-1].entry_hash().hex() if entries else GENESIS_PREV
        entry = Entry(seq=len(entries), time=_time(len(entries)), actor=actor, action=action,
                      subject=subject, details=details, prev=prev)
        entries.append(entry)
        return entry

    log("acct-admin", "user.created", {"account": OFFICER}, {"role": "export_officer"})
    specs: list[StatementSpec] = []
    plains: list[StatementPlain] = []
    names = attachment_names or []
    for number in range(statements):
        sid = str(uuid.UUID(int=0x4000_8000_0000_0000_0000 + number, version=4))
        text = f"Statement {number}: ဗမာစာ testimony about the events of 2017."
        files = [(names[n] if n < len(names) else f"photo-{n}.jpg",
                  hashlib.sha256(f"{sid}/{n}".encode()).digest() * (40 + 1000 * n))
                 for n in range(attachments)]
        record = json.dumps({"schema": "statement-record/v1", "sealed": {
            "statement": {"unicode": text,
                          "typed_base64": base64.b64encode(typed or text.encode()).decode(),
                          "typed_sha256": hashlib.sha256(typed or text.encode()).hexdigest()},
            "attachments": [{"index": n, "filename": name, "content_type": "image/jpeg",
                             "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                            for n, (name, data) in enumerate(files)]}},
            sort_keys=True).encode()
        sealed = [_seal(record, [investigator.recipient])] + [
            _seal(data, [investigator.recipient]) for _, data in files]
        sources = []
        for part, blob in enumerate(sealed):
            path = fmt.statement_path(sid) if part == 0 else fmt.attachment_path(sid, part - 1)
            blob_file = work / f"{hashlib.sha256(blob).hexdigest()}.age"
            blob_file.write_bytes(blob)
            sources.append(SealedSource(
                path=path, size=len(blob), sha256=hashlib.sha256(blob).hexdigest(),
                open=lambda f=blob_file: f.open("rb")))  # type: ignore[misc]
        sealed_entry = log("acct-counsellor-1", "statement.sealed", {"statement": sid}, {
            "record_id": sid,
            "copies": [{"key_kind": "x25519", "bodies": [BODY_ID],
                        "statement": {"sha256": sources[0].sha256, "size": sources[0].size},
                        "attachments": [{"sha256": s.sha256, "size": s.size}
                                        for s in sources[1:]]}]})
        # Entries about other witnesses interleave with ours; they must stay out.
        log("acct-counsellor-2", "statement.sealed", {"statement": str(uuid.uuid4())}, {})
        specs.append(StatementSpec(
            id=sid, key_kind="x25519",
            routing={"record_id": sid, "language": "my", "script": "Mymr", "priority": "normal"},
            audit_seqs=(sealed_entry.seq,), statement=sources[0], attachments=tuple(sources[1:])))
        plains.append(StatementPlain(id=sid, text=text, record=record, attachments=files))

    bundle_id = str(uuid.uuid4())
    export_entry = log(OFFICER, "export.created", {"export": bundle_id, "body": BODY_ID}, {
        "bundle_id": bundle_id, "body_id": BODY_ID,
        "statements": [spec.id for spec in specs],
        "contents_digest": contents_digest_of(specs)})
    log("acct-admin", "login.failed", {"account": "acct-x"}, {})  # after the export

    levels = merkle.build_levels([e.leaf_hash() for e in entries])
    size = len(entries)
    root = merkle.root(levels, size)
    note = sign_checkpoint(Checkpoint(LOG_ORIGIN, size, root), NoteSigner(skey))
    ours = [e for e in entries
            if e.seq == export_entry.seq or e.subject.get("statement") in {s.id for s in specs}]
    audit = AuditMaterial(
        checkpoint_note=note, origin=LOG_ORIGIN, tree_size=size, root_hash=root,
        entries=[(e.seq, e.canonical_bytes()) for e in ours],
        proofs={e.seq: merkle.inclusion_proof(levels, e.seq, size) for e in ours},
        export_entry_seq=export_entry.seq)
    header = BundleHeader(
        bundle_id=bundle_id, created=datetime(2026, 11, 29, 10, 30, tzinfo=UTC),
        created_by=OFFICER, generator="evidence-intake test",
        body={"id": BODY_ID, "name": "UN Myanmar mechanism", "key_kind": "x25519",
              "recipients": [{"fingerprint": hashlib.sha256(
                  str(investigator.recipient).encode()).hexdigest(),
                  "recipient": str(investigator.recipient),
                  "organisation": "IIMM", "person": "Investigator One"}]})
    target = tmp_path / f"bundle-{bundle_id}.zip"
    write_bundle(target, header=header, node_key=node_key, audit=audit, statements=specs)
    return BundleFixture(path=target, node_key=node_key, node_pub=work / "node.pub",
                         log_vkey=vkey, log_skey=skey, identity_file=work / "investigator.txt",
                         other_identity_file=work / "other.txt", bundle_id=bundle_id,
                         statements=plains)


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_members(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def resign(members: dict[str, bytes], node_key: SigningKey, bundle_id: str) -> None:
    """Recompute SHA256SUMS and both signatures, as a compromised node key could."""
    members[fmt.MANIFEST_SIG] = node_key.sign(
        members[fmt.MANIFEST], trusted_comment(bundle_id, fmt.MANIFEST)).encode()
    sums = "".join(fmt.sums_line(hashlib.sha256(data).hexdigest(), name)
                   for name, data in members.items() if name not in {fmt.SUMS, fmt.SUMS_SIG})
    members[fmt.SUMS] = sums.encode()
    members[fmt.SUMS_SIG] = node_key.sign(
        members[fmt.SUMS], trusted_comment(bundle_id, fmt.SUMS)).encode()


def edit_manifest(members: dict[str, bytes], change: Any) -> None:
    """Apply ``change(doc)`` to the manifest, refreshing the files list digests."""
    doc = json.loads(members[fmt.MANIFEST])
    change(doc)
    for entry in doc["files"]:
        if entry["path"] in members:
            entry["size"] = len(members[entry["path"]])
            entry["sha256"] = hashlib.sha256(members[entry["path"]]).hexdigest()
    members[fmt.MANIFEST] = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
