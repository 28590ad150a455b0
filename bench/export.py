"""Benchmark: exporting 1,000 sealed statements, and verifying the bundle offline.

Targets (issue 5), each a ratio to a reference measured in the same run:

- ``create_export`` (database selection, audit entries, checkpoint, streamed zip
  with SHA-256 of every blob, signatures, fsync) of N statements with one 1 MiB
  attachment each, against ``zip -0`` of the same sealed files followed by
  ``sync`` of the zip (an export is made durable before its digest is logged,
  so the reference does the same; the ratio without ``sync`` is printed too):
  <= 1.5x;
- ``intake bundle verify`` of that bundle against ``sha256sum -c`` over the
  same files already extracted: <= 2x.

Each side is timed as a child process (GNU time gives its peak RSS), best of
``--rounds`` interleaved rounds. The statements are real: sealed with age to an
investigator's key, with their audit entries, on SQLite.

    .venv/bin/python bench/export.py [--statements 1000] [--attachment-kib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

TIME = "/usr/bin/time"
INTAKE = [sys.executable, "-m", "evidence_intake.cli.main"]


def timed(argv: list[str], cwd: Path | None = None,
          env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    rss = Path(tempfile.mkstemp(prefix="bench-export-rss-")[1])
    try:
        start = time.perf_counter()
        done = subprocess.run([TIME, "-f", "%M", "-o", str(rss), *argv], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"bench: {argv[0]} failed: {done.stderr.decode()[-2000:]}")
        return elapsed, int(rss.read_text().split()[-1])
    finally:
        rss.unlink()


def setup(data_dir: Path, statements: int, attachment_bytes: int) -> dict[str, str]:
    """A node with ``statements`` sealed statements for one body; returns names to use."""
    from evidence_intake.crypto import age
    from evidence_intake.crypto.minisign import SigningKey
    from evidence_intake.service import auditlog, models  # noqa: F401 - registers tables
    from evidence_intake.service.auth.accounts import create_account
    from evidence_intake.service.db import Database
    from evidence_intake.service.intake.blobstore import FilesystemBlobStore
    from evidence_intake.service.models.accounts import Role
    from evidence_intake.service.models.base import Base
    from evidence_intake.service.models.recipients import KeyKind
    from evidence_intake.service.models.statements import (
        SealedBlob,
        Statement,
        StatementBody,
        StatementRecipient,
        StatementStatus,
    )
    from evidence_intake.service.recipient_sets import add_recipient, create_body
    from evidence_intake.service.settings import Settings

    data_dir.mkdir(mode=0o700)
    settings = Settings(data_dir=data_dir, argon2_opslimit=1, argon2_memlimit=8192)
    settings.node_key_path.write_text(SigningKey.generate().to_file_text(None))
    os.chmod(settings.node_key_path, 0o600)
    (data_dir / "node.pub").write_text(
        SigningKey.from_file_text(settings.node_key_path.read_text(), None)
        .public_key.to_file_text())
    vkey = auditlog.create_log_key(settings.log_key_path, settings.log_origin)
    (data_dir / "log.vkey").write_text(vkey + "\n")
    database = Database.from_settings(settings)
    Base.metadata.create_all(database.engine)
    investigator = age.X25519Identity.generate()
    store = FilesystemBlobStore(settings.blob_path)
    password = secrets.token_urlsafe(16)  # nobody signs in: the accounts only act
    with database.session() as session:
        officer = create_account(session, settings, actor="system", username="officer",
                                 role=Role.export_officer, password=password)
        counsellor = create_account(session, settings, actor="system", username="counsellor",
                                    role=Role.counsellor, password=password)
        body = create_body(session, actor=officer.id, name="UN mechanism", description="")
        session.flush()
        key = add_recipient(session, settings, actor=officer.id, body_id=body.id,
                            organisation="UN", person="Investigator",
                            recipient=str(investigator.recipient))
        ids = (officer.id, counsellor.id, body.id, key.id)
        session.commit()
    officer_id, counsellor_id, body_id, key_id = ids
    random_block = os.urandom(attachment_bytes)
    now = datetime.now(UTC)
    for start in range(0, statements, 100):
        with database.session() as session:
            for number in range(start, min(start + 100, statements)):
                sid = str(uuid.uuid4())
                refs = []
                for part, plain in enumerate((json.dumps({"n": number}).encode(),
                                              number.to_bytes(8, "big") + random_block[8:])):
                    sealed = io.BytesIO()
                    age.encrypt(io.BytesIO(plain), sealed, [investigator.recipient])
                    sealed.seek(0)
                    refs.append((part, store.put(sealed)))
                copy = {"key_kind": "x25519", "bodies": [body_id],
                        "statement": {"sha256": refs[0][1].sha256, "size": refs[0][1].size},
                        "attachments": [{"sha256": refs[1][1].sha256, "size": refs[1][1].size}]}
                entry = auditlog.append(session, actor=counsellor_id, action="statement.sealed",
                                        subject={"statement": sid},
                                        details={"record_id": sid, "copies": [copy]})
                session.add(Statement(
                    id=sid, created_at=now, counsellor_id=counsellor_id,
                    status=StatementStatus.active, priority="normal", restricted=False,
                    routing_json=json.dumps({"record_id": sid, "copies": [copy]}),
                    audit_seq=entry.seq, audit_entry_hash=entry.entry_hash().hex()))
                session.flush()
                session.add(StatementBody(statement_id=sid, body_id=body_id,
                                          key_kind=KeyKind.x25519))
                session.add(StatementRecipient(statement_id=sid, recipient_id=key_id,
                                               key_kind=KeyKind.x25519))
                for part, ref in refs:
                    session.add(SealedBlob(statement_id=sid, key_kind=KeyKind.x25519,
                                           part=part, sha256=ref.sha256, size=ref.size))
            session.commit()
    database.dispose()
    return {"body": body_id, "officer": officer_id, "blobs": str(settings.blob_path)}


_EXPORT_CHILD = """
import sys
from pathlib import Path
from evidence_intake.service.db import Database
from evidence_intake.service.exports.service import create_export
from evidence_intake.service.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]))
database = Database.from_settings(settings)
outcome = create_export(database.sessions, settings, actor=sys.argv[2], body_id=sys.argv[3],
                        since=__import__("datetime").datetime(2000, 1, 1,
                        tzinfo=__import__("datetime").UTC))
print(outcome.path)
database.dispose()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=1000)
    parser.add_argument("--attachment-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        data = root / "var"
        start = time.perf_counter()
        names = setup(data, args.statements, args.attachment_kib * 1024)
        print(f"setup: {args.statements} statements sealed in "
              f"{time.perf_counter() - start:.1f} s")
        blobs = Path(names["blobs"])
        files = sorted(p.name for p in blobs.iterdir() if p.is_file() and len(p.name) == 64)
        (root / "list.txt").write_text("\n".join(files) + "\n")
        total = sum((blobs / f).stat().st_size for f in files)
        exports, zips, zips_nosync, rss_export = [], [], [], 0
        bundle = Path()
        for round_number in range(args.rounds):
            for old in (data / "exports").glob("*.zip") if (data / "exports").exists() else []:
                old.unlink()
            (root / "ref.zip").unlink(missing_ok=True)
            seconds, rss = timed([sys.executable, "-c", _EXPORT_CHILD, str(data),
                                  names["officer"], names["body"]])
            exports.append(seconds)
            rss_export = max(rss_export, rss)
            bundle = next((data / "exports").glob("*.zip"))
            with open(root / "list.txt", "rb") as listing:
                start = time.perf_counter()
                subprocess.run(["zip", "-0", "-q", str(root / "ref.zip"), "-@"], cwd=blobs,
                               stdin=listing, check=True)
                zipped = time.perf_counter() - start
                subprocess.run(["sync", str(root / "ref.zip")], check=True)
                zips.append(time.perf_counter() - start)
                zips_nosync.append(zipped)
            print(f"round {round_number + 1}: export {exports[-1]:.2f} s, "
                  f"zip -0 + sync {zips[-1]:.2f} s (zip -0 alone {zipped:.2f} s)")
        export_ratio = min(exports) / min(zips)

        extracted = root / "extracted"
        extracted.mkdir()
        subprocess.run(["unzip", "-q", str(bundle)], cwd=extracted, check=True)
        verify_cmd = [*INTAKE, "bundle", "verify", str(bundle), "--node-key",
                      str(data / "node.pub"), "--log-key", str(data / "log.vkey")]
        verifies, sums, rss_verify = [], [], 0
        for _ in range(args.rounds):
            seconds, rss = timed(verify_cmd)
            verifies.append(seconds)
            rss_verify = max(rss_verify, rss)
            seconds, _ = timed(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=extracted)
            sums.append(seconds)
        verify_ratio = min(verifies) / min(sums)

        print(f"sealed data: {total / (1 << 20):.0f} MiB in {len(files)} files; "
              f"bundle {bundle.stat().st_size / (1 << 20):.0f} MiB")
        print(f"export: {min(exports):.2f} s vs zip -0 + sync {min(zips):.2f} s -> "
              f"ratio {export_ratio:.2f} (target <= 1.5); peak RSS {rss_export / 1024:.0f} MiB")
        print(f"  (vs zip -0 without sync {min(zips_nosync):.2f} s: "
              f"{min(exports) / min(zips_nosync):.2f})")
        print(f"bundle verify: {min(verifies):.2f} s vs sha256sum -c {min(sums):.2f} s -> "
              f"ratio {verify_ratio:.2f} (target <= 2); peak RSS {rss_verify / 1024:.0f} MiB")
        ok = export_ratio <= 1.5 and verify_ratio <= 2.0
        print("export bench: " + ("targets met" if ok else "TARGET MISSED"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
