"""``intake bundle verify|open`` run as an investigator runs them: subprocesses, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "bundle"))
from bundle_factory import BundleFixture, make_bundle, read_members, write_members

from evidence_intake.bundle import manifest as fmt

INTAKE = [sys.executable, "-m", "evidence_intake.cli.main"]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INTAKE, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=120)


@pytest.fixture
def fx(tmp_path: Path) -> BundleFixture:
    fixture = make_bundle(tmp_path, statements=2, attachments=1)
    (tmp_path / "log.vkey").write_text(f"# audit log key\n{fixture.log_vkey}\n")
    return fixture


def keys(fx: BundleFixture) -> list[str | Path]:
    return ["--node-key", fx.node_pub, "--log-key", fx.path.parent / "log.vkey"]


def test_verify_prints_a_report_and_exits_zero(fx: BundleFixture) -> None:
    done = run("bundle", "verify", fx.path, *keys(fx))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: VERIFIED" in done.stdout
    assert fx.bundle_id in done.stdout


def test_verify_json_and_log_key_given_inline(fx: BundleFixture) -> None:
    done = run("bundle", "verify", fx.path, "--node-key", fx.node_pub, "--log-key", fx.log_vkey,
               "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["verified"] is True and report["failures"] == []
    assert report["facts"]["bundle_id"] == fx.bundle_id


@pytest.mark.parametrize(("tamper", "code", "subject"), [
    ("sealed", 5, "statement.age"),
    ("manifest", 4, fmt.MANIFEST_SIG),
    ("traversal", 3, "../evil.sh"),
])
def test_verify_exit_code_per_failure_class(fx: BundleFixture, tmp_path: Path, tamper: str,
                                            code: int, subject: str) -> None:
    members = read_members(fx.path)
    if tamper == "sealed":
        name = fmt.statement_path(fx.statements[0].id)
        members[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])
    elif tamper == "manifest":
        members[fmt.MANIFEST] = members[fmt.MANIFEST].replace(b'"created"', b'"Created"', 1)
    else:
        members["../evil.sh"] = b"#!/bin/sh\n"
    bad = write_members(tmp_path / "bad.zip", members)
    done = run("bundle", "verify", bad, *keys(fx), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == code
    assert report["verified"] is False
    assert any(f["subject"].endswith(subject) for f in report["failures"]), report["failures"]
    text = run("bundle", "verify", bad, *keys(fx))
    assert text.returncode == code and "FAIL" in text.stdout and "result: FAILED" in text.stdout


def test_open_decrypts_and_writes_custody_reports(fx: BundleFixture, tmp_path: Path) -> None:
    out = tmp_path / "opened"
    done = run("bundle", "open", fx.path, *keys(fx), "-i", fx.identity_file, "-o", out)
    assert done.returncode == 0, done.stdout + done.stderr
    for statement in fx.statements:
        assert (out / statement.id / "statement.json").read_bytes() == statement.record
        name, data = statement.attachments[0]
        assert (out / statement.id / "attachments" / f"0-{name}").read_bytes() == data
    report = json.loads((out / "custody-report.json").read_text(encoding="utf-8"))
    assert report["verification"]["verified"] is True
    assert {item["status"] for item in report["items"]} == {"decrypted"}
    assert (out / "custody-report.html").is_file()


def test_open_with_another_investigators_key(fx: BundleFixture, tmp_path: Path) -> None:
    out = tmp_path / "opened"
    done = run("bundle", "open", fx.path, *keys(fx), "-i", fx.other_identity_file, "-o", out)
    assert done.returncode == 7
    assert done.stdout.count("not sealed to this identity") == 4
    assert sorted(p.name for p in out.iterdir()) == [
        *sorted(s.id for s in fx.statements), "custody-report.html", "custody-report.json"]


def test_open_refuses_a_failed_bundle_unless_forced(fx: BundleFixture, tmp_path: Path) -> None:
    members = read_members(fx.path)
    members["planted.txt"] = b"x"
    bad = write_members(tmp_path / "bad.zip", members)
    refused = run("bundle", "open", bad, *keys(fx), "-i", fx.identity_file, "-o",
                  tmp_path / "o1")
    assert refused.returncode == 5
    assert "nothing was decrypted" in refused.stderr
    assert not (tmp_path / "o1").exists()
    forced = run("bundle", "open", bad, *keys(fx), "-i", fx.identity_file, "-o",
                 tmp_path / "o2", "--force")
    assert forced.returncode == 5
    report = json.loads((tmp_path / "o2" / "custody-report.json").read_text(encoding="utf-8"))
    assert report["verification"]["forced"] is True
    assert report["verification"]["warning"].startswith("VERIFICATION FAILED")


def test_open_refuses_a_non_empty_output_directory(fx: BundleFixture, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    done = run("bundle", "open", fx.path, *keys(fx), "-i", fx.identity_file, "-o", out)
    assert done.returncode == 2
    assert done.stderr.startswith("intake: error: ") and "not empty" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_unreadable_keys_are_usage_errors(fx: BundleFixture, tmp_path: Path) -> None:
    (tmp_path / "junk.pub").write_text("not a key\n")
    done = run("bundle", "verify", fx.path, "--node-key", tmp_path / "junk.pub",
               "--log-key", fx.log_vkey)
    assert done.returncode == 2 and done.stderr.startswith("intake: error: ")
    done = run("bundle", "verify", fx.path, "--node-key", fx.node_pub, "--log-key", "nonsense")
    assert done.returncode == 2


@pytest.mark.parametrize("command", [["bundle", "verify"], ["bundle", "open"], ["export"]])
def test_help_has_an_example(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0 and "example" in done.stdout


_WRAPPER = """
import sys
from evidence_intake.cli.main import main
code = main(sys.argv[1:])
banned = sorted(m for m in sys.modules if m.split(".")[0] in {
    "fastapi", "starlette", "sqlalchemy", "pydantic", "structlog", "httpx", "uvicorn"}
    or m.startswith("evidence_intake.service"))
print("BANNED:" + ",".join(banned), file=sys.stderr)
sys.exit(code)
"""


def test_verify_and_open_run_without_the_server_stack(fx: BundleFixture, tmp_path: Path) -> None:
    """The offline path really runs (not only --help) on PyNaCl, cryptography and stdlib."""
    for argv in (["bundle", "verify", str(fx.path), *map(str, keys(fx))],
                 ["bundle", "open", str(fx.path), *map(str, keys(fx)), "-i",
                  str(fx.identity_file), "-o", str(tmp_path / "o")]):
        done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True,
                              text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "BANNED:\n" in done.stderr, done.stderr
