"""``intake sign-keygen``, ``intake sign`` and ``intake verify`` as a user runs them."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_intake.crypto.minisign import PublicKey, SigningKey, verify
from pty_support import run_on_tty as pty_run

INTAKE = [sys.executable, "-m", "evidence_intake.cli.main"]
FAST = {"kdf_opslimit": 32768, "kdf_memlimit": 1 << 20}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # A new session has no controlling terminal: nothing can be asked interactively.
    return subprocess.run(
        [*INTAKE, *map(str, args)], cwd=cwd, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True, check=False, timeout=120,
    )


def run_on_tty(*args: str | Path, cwd: Path, answers: list[str]) -> tuple[int, str]:
    """Run intake on a pseudo-terminal, typing each answer at each "Passphrase" prompt."""
    code, output = pty_run([*INTAKE, *args], answers=answers, prompt=b"Passphrase", cwd=cwd)
    return code, output.decode("utf-8", "replace")


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("intake: error: "), (
        result.stderr
    )
    assert result.stdout == ""
    return result.stderr


def keygen_unencrypted(tmp_path: Path, name: str = "node") -> PublicKey:
    result = run("sign-keygen", "-p", f"{name}.pub", "-s", f"{name}.key", "-W", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    public = PublicKey.from_file_text((tmp_path / f"{name}.pub").read_text())
    assert result.stdout == public.to_string() + "\n"
    return public


# -- sign-keygen -----------------------------------------------------------------


def test_keygen_writes_minisign_files_with_a_0600_secret_key(tmp_path: Path) -> None:
    public = keygen_unencrypted(tmp_path)
    secret = tmp_path / "node.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    key = SigningKey.from_file_text(secret.read_text(), None)
    assert key.public_key == public
    assert not SigningKey.file_is_encrypted(secret.read_text())


def test_keygen_never_overwrites_without_force(tmp_path: Path) -> None:
    keygen_unencrypted(tmp_path)
    before = {p: (tmp_path / p).read_bytes() for p in ("node.pub", "node.key")}
    err = assert_one_line_error(
        run("sign-keygen", "-p", "node.pub", "-s", "node.key", "-W", cwd=tmp_path), code=2
    )
    assert "--force" in err
    assert {p: (tmp_path / p).read_bytes() for p in before} == before
    (tmp_path / "node.key").unlink()  # one of the two files still exists
    assert_one_line_error(
        run("sign-keygen", "-p", "node.pub", "-s", "node.key", "-W", cwd=tmp_path), code=2
    )
    forced = run("sign-keygen", "-p", "node.pub", "-s", "node.key", "-W", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "node.pub").read_bytes() != before["node.pub"]


def test_keygen_without_a_terminal_asks_for_a_passphrase_file(tmp_path: Path) -> None:
    err = assert_one_line_error(run("sign-keygen", cwd=tmp_path), code=2)
    assert "--passphrase-file" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_keygen_on_a_terminal_then_sign_with_a_passphrase_file(tmp_path: Path) -> None:
    """Two scrypt derivations at minisign's 1 GiB setting: a few seconds each."""
    code, output = run_on_tty("sign-keygen", "-p", "n.pub", "-s", "n.key", cwd=tmp_path,
                              answers=["typed passphrase", "typed passphrase"])
    assert code == 0, output
    assert "typed passphrase" not in output  # not echoed
    assert SigningKey.file_is_encrypted((tmp_path / "n.key").read_text())
    (tmp_path / "pass.txt").write_text("typed passphrase\n")
    (tmp_path / "f.txt").write_bytes(b"data")
    signed = run("sign", "f.txt", "-s", "n.key", "--passphrase-file", "pass.txt", "-t", "c",
                 cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    public = PublicKey.from_file_text((tmp_path / "n.pub").read_text())
    assert verify(b"data", (tmp_path / "f.txt.minisig").read_text(), public) == "c"


def test_keygen_on_a_terminal_refuses_mismatched_passphrases(tmp_path: Path) -> None:
    code, output = run_on_tty("sign-keygen", "-p", "n.pub", "-s", "n.key", cwd=tmp_path,
                              answers=["one", "other"])
    assert code == 2
    assert "do not match" in output
    assert not (tmp_path / "n.key").exists()


# -- sign and verify ---------------------------------------------------------------


def test_sign_then_verify_prints_the_trusted_comment(tmp_path: Path) -> None:
    public = keygen_unencrypted(tmp_path)
    (tmp_path / "export.zip").write_bytes(os.urandom(100_000))
    signed = run("sign", "export.zip", "-s", "node.key", cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout == ""
    text = (tmp_path / "export.zip.minisig").read_text()
    comment = verify((tmp_path / "export.zip").read_bytes(), text, public)
    assert re.fullmatch(r"timestamp:\d+\tfile:export\.zip\thashed", comment)
    checked = run("verify", "export.zip", "-p", "node.pub", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == comment + "\n"
    inline = run("verify", "export.zip", "-P", public.to_string(), cwd=tmp_path)
    assert inline.stdout == comment + "\n"
    quiet = run("verify", "export.zip", "-P", public.to_string(), "-q", cwd=tmp_path)
    assert (quiet.returncode, quiet.stdout) == (0, "")


def test_sign_with_explicit_comments_and_signature_path(tmp_path: Path) -> None:
    public = keygen_unencrypted(tmp_path)
    (tmp_path / "f.bin").write_bytes(b"\x00" * 10)
    signed = run("sign", "f.bin", "-s", "node.key", "-t", "bundle for UN IIMM", "-c", "note",
                 "-x", "out.sig", cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    text = (tmp_path / "out.sig").read_text()
    assert text.startswith("untrusted comment: note\n")
    assert verify(b"\x00" * 10, text, public) == "bundle for UN IIMM"
    checked = run("verify", "f.bin", "-p", "node.pub", "-x", "out.sig", "-H", cwd=tmp_path)
    assert checked.stdout == "bundle for UN IIMM\n"


def test_verify_fails_with_one_line_on_a_tampered_file(tmp_path: Path) -> None:
    keygen_unencrypted(tmp_path)
    (tmp_path / "f.txt").write_bytes(b"original")
    assert run("sign", "f.txt", "-s", "node.key", cwd=tmp_path).returncode == 0
    (tmp_path / "f.txt").write_bytes(b"tampered")
    err = assert_one_line_error(run("verify", "f.txt", "-p", "node.pub", cwd=tmp_path))
    assert "signature verification failed" in err


def test_verify_fails_on_a_forged_trusted_comment(tmp_path: Path) -> None:
    keygen_unencrypted(tmp_path)
    (tmp_path / "f.txt").write_bytes(b"x")
    assert run("sign", "f.txt", "-s", "node.key", "-t", "honest", cwd=tmp_path).returncode == 0
    sig = tmp_path / "f.txt.minisig"
    sig.write_text(sig.read_text().replace("trusted comment: honest", "trusted comment: forged"))
    err = assert_one_line_error(run("verify", "f.txt", "-p", "node.pub", cwd=tmp_path))
    assert "trusted comment" in err


def test_verify_with_another_key_names_both_key_ids(tmp_path: Path) -> None:
    public = keygen_unencrypted(tmp_path)
    other = keygen_unencrypted(tmp_path, "other")
    (tmp_path / "f.txt").write_bytes(b"x")
    assert run("sign", "f.txt", "-s", "node.key", cwd=tmp_path).returncode == 0
    err = assert_one_line_error(run("verify", "f.txt", "-p", "other.pub", cwd=tmp_path))
    assert public.fingerprint in err and other.fingerprint in err


def test_verify_prehashed_only_refuses_a_legacy_signature(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "f.txt").write_bytes(b"x")
    (tmp_path / "f.txt.minisig").write_text(key.sign(b"x", "legacy", legacy=True))
    ok = run("verify", "f.txt", "-P", key.public_key.to_string(), cwd=tmp_path)
    assert ok.stdout == "legacy\n"
    err = assert_one_line_error(
        run("verify", "f.txt", "-P", key.public_key.to_string(), "-H", cwd=tmp_path)
    )
    assert "legacy" in err


def test_verify_escapes_control_characters_in_the_trusted_comment(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "f.txt").write_bytes(b"x")
    (tmp_path / "f.txt.minisig").write_text(key.sign(b"x", "ok\x1b[2J\tcleared?\x07"))
    result = run("verify", "f.txt", "-P", key.public_key.to_string(), cwd=tmp_path)
    assert result.stdout == "ok\\x1b[2J\tcleared?\\x07\n"


def test_verify_needs_exactly_one_public_key_source(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"x")
    assert run("verify", "f.txt", cwd=tmp_path).returncode == 2
    bad = assert_one_line_error(run("verify", "f.txt", "-P", "RWQnotakey", cwd=tmp_path), 2)
    assert "public key" in bad


def test_missing_signature_file_is_a_usage_error(tmp_path: Path) -> None:
    public = keygen_unencrypted(tmp_path)
    (tmp_path / "f.txt").write_bytes(b"x")
    assert_one_line_error(run("verify", "f.txt", "-P", public.to_string(), cwd=tmp_path), 2)


def test_sign_with_an_encrypted_key_and_no_terminal_asks_for_a_passphrase_file(
    tmp_path: Path,
) -> None:
    key = SigningKey.generate()
    (tmp_path / "k.key").write_text(key.to_file_text(b"right", **FAST))
    (tmp_path / "f.txt").write_bytes(b"x")
    err = assert_one_line_error(run("sign", "f.txt", "-s", "k.key", cwd=tmp_path), code=2)
    assert "--passphrase-file" in err
    assert not (tmp_path / "f.txt.minisig").exists()


def test_sign_checks_the_file_before_asking_for_a_passphrase(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "k.key").write_text(key.to_file_text(b"right", **FAST))
    err = assert_one_line_error(run("sign", "missing.txt", "-s", "k.key", cwd=tmp_path), 2)
    assert "missing.txt" in err and "passphrase" not in err


def test_sign_with_a_wrong_passphrase_fails_and_writes_nothing(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "k.key").write_text(key.to_file_text(b"right", **FAST))
    (tmp_path / "wrong.txt").write_text("wrong\n")
    (tmp_path / "right.txt").write_text("right\n")
    (tmp_path / "f.txt").write_bytes(b"x")
    err = assert_one_line_error(
        run("sign", "f.txt", "-s", "k.key", "--passphrase-file", "wrong.txt", cwd=tmp_path)
    )
    assert "wrong passphrase" in err
    assert not (tmp_path / "f.txt.minisig").exists()
    ok = run("sign", "f.txt", "-s", "k.key", "--passphrase-file", "right.txt", "-t", "c",
             cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert verify(b"x", (tmp_path / "f.txt.minisig").read_text(), key.public_key) == "c"


def test_sign_refuses_a_multi_line_trusted_comment(tmp_path: Path) -> None:
    keygen_unencrypted(tmp_path)
    (tmp_path / "f.txt").write_bytes(b"x")
    assert_one_line_error(
        run("sign", "f.txt", "-s", "node.key", "-t", "two\nlines", cwd=tmp_path), code=2
    )
    assert not (tmp_path / "f.txt.minisig").exists()


@pytest.mark.parametrize("command", ["sign-keygen", "sign", "verify"])
def test_help_has_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "example" in result.stdout


def test_signature_commands_import_no_server_stack() -> None:
    probe = (
        "import sys; import evidence_intake.cli.sign_cmds; "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'pydantic', 'structlog') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout == "[]\n"
