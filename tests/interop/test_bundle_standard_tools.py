"""A bundle verifies and opens with Debian's minisign, sha256sum and age alone (README.txt)."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "bundle"))
from bundle_factory import BundleFixture, make_bundle, read_members, write_members

from evidence_intake.bundle import manifest as fmt

SCRIPT = Path(__file__).with_name("test_bundle_standard_tools.sh")
pytestmark = pytest.mark.interop


def _expected(fx: BundleFixture, root: Path) -> Path:
    for statement in fx.statements:
        base = root / statement.id
        (base / "attachments").mkdir(parents=True)
        (base / "statement.json").write_bytes(statement.record)
        for index, (_, data) in enumerate(statement.attachments):
            (base / "attachments" / str(index)).write_bytes(data)
    return root


def _run(bundle: Path, fx: BundleFixture, expected: Path,
         identity: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(bundle), str(fx.node_pub), str(identity or fx.identity_file),
         str(expected)], capture_output=True, text=True, timeout=120, check=False)


def test_standard_tools_verify_and_open_byte_identical(tmp_path: Path) -> None:
    fx = make_bundle(tmp_path, statements=2, attachments=2)
    done = _run(fx.path, fx, _expected(fx, tmp_path / "expected"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "decrypted and matched: 6 files" in done.stdout
    assert done.stdout.count("Signature and comment signature verified") == 2
    assert f"evidence-intake bundle {fx.bundle_id} manifest.json" in done.stdout


def test_the_script_runs_the_commands_readme_gives(tmp_path: Path) -> None:
    """The shell test and README.txt must not drift apart."""
    fx = make_bundle(tmp_path, statements=1, attachments=0)
    readme = read_members(fx.path)[fmt.README].decode()
    flat = re.sub(r"\\\n\s*", "", readme)
    for command in ("sed '1,2d;$d' | grep -v '^-'",
                    "grep -E '^/|(^|/)[.][.](/|$)'",
                    "minisign -V -p /path/to/node.pub -m SHA256SUMS",
                    "minisign -V -p /path/to/node.pub -m manifest.json",
                    "sha256sum --strict -c SHA256SUMS",
                    "find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.minisig "
                    "| sed 's|^\\./||' | LC_ALL=C sort > ../present.txt",
                    "cut -c67- SHA256SUMS | LC_ALL=C sort | diff - ../present.txt",
                    "age -d -i /path/to/key.txt -o statement.json"):
        assert command in flat, command
        script_form = command.replace("/path/to/node.pub", '"$node_pub"').replace(
            "/path/to/key.txt", '"$identity"')
        script = re.sub(r"\\\n\s*", "", SCRIPT.read_text())
        assert script_form.split(" -o ")[0] in script, script_form


@pytest.mark.parametrize("tamper", ["sealed", "added", "manifest", "symlink", "dotdot"])
def test_standard_tools_catch_tampering(tmp_path: Path, tamper: str) -> None:
    fx = make_bundle(tmp_path, statements=1, attachments=1)
    members = read_members(fx.path)
    if tamper == "sealed":
        name = fmt.statement_path(fx.statements[0].id)
        members[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])
    elif tamper == "added":
        members["statements/planted.age"] = b"x"
    elif tamper in {"symlink", "dotdot"}:
        bad = tmp_path / "bad.zip"
        write_members(bad, members)
        with zipfile.ZipFile(bad, "a") as zf:
            if tamper == "symlink":
                link = zipfile.ZipInfo("statements/link")
                link.create_system = 3
                link.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(link, str(tmp_path))
            else:
                zf.writestr("../../escaped.txt", b"x")
        done = _run(bad, fx, _expected(fx, tmp_path / "expected"))
        assert done.returncode != 0
        assert not (tmp_path / "escaped.txt").exists()
        return
    else:
        members[fmt.MANIFEST] = members[fmt.MANIFEST].replace(b"UN Myanmar", b"UN Myanmaz")
    bad = write_members(tmp_path / "bad.zip", members)
    done = _run(bad, fx, _expected(fx, tmp_path / "expected"))
    assert done.returncode != 0
    assert "decrypted and matched" not in done.stdout


def test_wrong_identity_is_refused_by_age(tmp_path: Path) -> None:
    fx = make_bundle(tmp_path, statements=1, attachments=0)
    done = _run(fx.path, fx, _expected(fx, tmp_path / "expected"),
                identity=fx.other_identity_file)
    assert done.returncode != 0
    assert "no identity matched" in done.stderr
