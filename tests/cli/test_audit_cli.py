"""``intake audit`` as a user runs it: exit codes per failure class, JSON
reports, the witness state, and the database commands on SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, generate_signer_key
from evidence_intake.audit.verify import CHECKPOINT_PREFIX

ORIGIN = "intake.test/audit-cli"
T0 = datetime(2026, 11, 29, tzinfo=UTC)


def intake(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evidence_intake.cli.main", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner(generate_signer_key(ORIGIN)[0])


def _log(signer: NoteSigner, size: int = 8) -> MemoryLog:
    log = MemoryLog(ORIGIN)
    for i in range(size):
        log.append(actor="acct_1", action="statement.sealed", subject={"statement": f"s{i}"},
                   now=T0 + timedelta(seconds=i))
        if i == 3:
            log.sign(signer)
    log.sign(signer)
    return log


def _entries(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if not line.startswith(CHECKPOINT_PREFIX)]


def _tampered(kind: str, lines: list[bytes]) -> list[bytes]:
    pos = _entries(lines)
    out = list(lines)
    if kind == "modified":
        out[pos[2]] = out[pos[2]].replace(b'"acct_1"', b'"acct_2"')
    elif kind == "deleted":
        del out[pos[2]]
    elif kind == "inserted":
        out.insert(pos[2], out[pos[2]])
    elif kind == "reordered":
        out[pos[1]], out[pos[5]] = out[pos[5]], out[pos[1]]
    elif kind == "truncated":
        del out[pos[-1]]
    elif kind == "malformed":
        out[pos[2]] = out[pos[2]].replace(b'","', b'", "', 1)
    return out


@pytest.mark.parametrize(("kind", "code"), [
    ("modified", 4), ("deleted", 5), ("inserted", 6), ("reordered", 7), ("truncated", 11),
    ("malformed", 3),
])
def test_each_failure_class_has_its_exit_code(tmp_path: Path, signer: NoteSigner,
                                              kind: str, code: int) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(_tampered(kind, _log(signer).lines)))
    result = intake("audit", "verify", str(path), "--key", signer.verifier.vkey, "--json")
    assert result.returncode == code, result.stderr
    report = json.loads(result.stdout)
    assert report["verified"] is False
    assert report["exit_code"] == code
    assert "NOT verified" in result.stderr


def test_a_good_log_verifies_with_a_json_report(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.jsonl"
    log = _log(signer)
    path.write_bytes(b"".join(log.lines))
    result = intake("audit", "verify", str(path), "--key", signer.verifier.vkey, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["verified"], report["size"]) == (True, 8)
    assert report["root"] == log.range.root().hex()


def test_wrong_key_and_forged_signature(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(_log(signer).lines))
    other = NoteSigner(generate_signer_key(ORIGIN)[0]).verifier.vkey
    assert intake("audit", "verify", str(path), "--key", other).returncode == 9
    lines = _log(signer).lines
    lines[-1] = lines[-1].replace(b"\\n8\\n", b"\\n7\\n")
    path.write_bytes(b"".join(lines))
    assert intake("audit", "verify", str(path), "--key", signer.verifier.vkey).returncode == 8


def test_state_file_catches_a_re_signed_rewrite(tmp_path: Path, signer: NoteSigner) -> None:
    state = tmp_path / "state.json"
    first = tmp_path / "a.jsonl"
    first.write_bytes(b"".join(_log(signer, 5).lines))
    ok = intake("audit", "verify", str(first), "--key", signer.verifier.vkey, "--state",
                str(state))
    assert ok.returncode == 0, ok.stderr
    rewritten = MemoryLog(ORIGIN)
    for i in range(7):
        rewritten.append(actor="acct_1" if i != 1 else "acct_9", action="statement.sealed",
                         subject={"statement": f"s{i}"}, now=T0 + timedelta(seconds=i))
    rewritten.sign(signer)
    second = tmp_path / "b.jsonl"
    second.write_bytes(b"".join(rewritten.lines))
    assert intake("audit", "verify", str(second), "--key", signer.verifier.vkey).returncode == 0
    forked = intake("audit", "verify", str(second), "--key", signer.verifier.vkey, "--state",
                    str(state))
    assert forked.returncode == 12


def test_usage_errors_exit_2(tmp_path: Path, signer: NoteSigner) -> None:
    assert intake("audit", "verify", str(tmp_path / "missing.jsonl"), "--key",
                  signer.verifier.vkey).returncode == 2
    assert intake("audit", "verify", str(tmp_path), "--key", "not-a-key").returncode == 2
    help_text = intake("audit", "verify", "--help")
    assert help_text.returncode == 0 and "examples:" in help_text.stdout


def test_verify_is_offline_it_imports_no_database_or_web_stack() -> None:
    code = ("import sys, evidence_intake.cli.main as m; m.build_parser(); "
            "import evidence_intake.cli.audit_cmds; "
            "bad = {'sqlalchemy', 'fastapi', 'pydantic', 'structlog'} & set(sys.modules); "
            "print(sorted(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_export_checkpoint_prove_on_sqlite(tmp_path: Path) -> None:
    from evidence_intake.service import auditlog
    from evidence_intake.service.models.base import Base
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine, tables=[
        Base.metadata.tables[t] for t in ("audit_entries", "audit_subjects", "audit_nodes",
                                          "audit_checkpoints", "audit_head")])
    key = tmp_path / "log.key"
    vkey = auditlog.create_log_key(key, ORIGIN)
    with Session(engine) as session:
        for _ in range(6):
            auditlog.append(session, actor="acct_1", action="user.created")
        session.commit()
    engine.dispose()
    db = ("--database-url", url, "--key-file", str(key))
    checkpoint = intake("audit", "checkpoint", *db, cwd=tmp_path)
    assert checkpoint.returncode == 0, checkpoint.stderr
    assert checkpoint.stdout.startswith(f"{ORIGIN}\n6\n")
    proof = intake("audit", "prove", "3", "-o", str(tmp_path / "e3.tlog-proof"), *db,
                   cwd=tmp_path)
    assert proof.returncode == 0, proof.stderr
    assert (tmp_path / "e3.tlog-proof").read_text().startswith("c2sp.org/tlog-proof@v1\n")
    export = intake("audit", "export", "-o", str(tmp_path / "log.jsonl"), *db, cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    verify = intake("audit", "verify", str(tmp_path / "log.jsonl"), "--key", vkey)
    assert verify.returncode == 0, verify.stderr
    assert "verified: 6 entries" in verify.stdout
