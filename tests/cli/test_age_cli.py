"""``intake keygen/seal/open`` run as a user runs them: subprocesses, real files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

INTAKE = [sys.executable, "-m", "evidence_intake.cli.main"]


def run(*args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    # A new session has no controlling terminal, as under CI, even when the
    # tests are started from one: nothing may prompt on /dev/tty.
    return subprocess.run(
        [*INTAKE, *map(str, args)], input=stdin, capture_output=True, check=False, timeout=120,
        start_new_session=True,
    )


def keygen(path: Path) -> str:
    result = run("keygen", "-o", path)
    assert result.returncode == 0, result.stderr
    line = result.stderr.decode().strip()
    assert line.startswith("Public key: age1")
    return line.removeprefix("Public key: ")


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], code: int = 1) -> str:
    assert result.returncode == code
    err = result.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("intake: error: "), err
    return err


def test_keygen_writes_mode_0600_and_prints_the_recipient(tmp_path: Path) -> None:
    key = tmp_path / "k.txt"
    recipient = keygen(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    lines = key.read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == f"# public key: {recipient}"
    assert lines[2].startswith("AGE-SECRET-KEY-1")


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "k.txt"
    keygen(key)
    before = key.read_bytes()
    err = assert_one_line_error(run("keygen", "-o", key), code=2)
    assert "--force" in err
    assert key.read_bytes() == before
    forced = run("keygen", "--force", "-o", key)
    assert forced.returncode == 0
    assert key.read_bytes() != before


def test_keygen_to_stdout_prints_the_key_file(tmp_path: Path) -> None:
    result = run("keygen")
    assert result.returncode == 0
    assert b"AGE-SECRET-KEY-1" in result.stdout


def test_seal_open_round_trip_files_and_pipes(tmp_path: Path) -> None:
    key = tmp_path / "k.txt"
    recipient = keygen(key)
    plain = tmp_path / "statement.txt"
    plain.write_bytes(os.urandom(200_000))
    sealed = tmp_path / "statement.age"
    assert run("seal", "-r", recipient, "-o", sealed, plain).returncode == 0
    opened = tmp_path / "opened.txt"
    assert run("open", "-i", key, "-o", opened, sealed).returncode == 0
    assert opened.read_bytes() == plain.read_bytes()
    assert stat.S_IMODE(opened.stat().st_mode) == 0o600
    # stdin -> stdout, armored, recipients from a file with comments.
    rfile = tmp_path / "recipients.txt"
    rfile.write_text(f"# investigators\n\n{recipient}\n")
    armored = run("seal", "-R", rfile, "-a", stdin=plain.read_bytes())
    assert armored.returncode == 0
    assert armored.stdout.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    back = run("open", "-i", key, stdin=armored.stdout)
    assert back.returncode == 0
    assert back.stdout == plain.read_bytes()


def test_wrong_identity_is_a_one_line_error_and_leaves_no_file(tmp_path: Path) -> None:
    recipient = keygen(tmp_path / "right.txt")
    keygen(tmp_path / "wrong.txt")
    sealed = run("seal", "-r", recipient, stdin=b"secret").stdout
    (tmp_path / "f.age").write_bytes(sealed)
    out = tmp_path / "out.txt"
    result = run("open", "-i", tmp_path / "wrong.txt", "-o", out, tmp_path / "f.age")
    err = assert_one_line_error(result)
    assert "no identity matched" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.age", "right.txt", "wrong.txt"]


def test_tampered_payload_leaves_no_partial_plaintext(tmp_path: Path) -> None:
    """A flipped bit in the last chunk: the earlier chunks must not survive on disk."""
    key = tmp_path / "k.txt"
    recipient = keygen(key)
    sealed = bytearray(run("seal", "-r", recipient, stdin=os.urandom(3 * 65536 + 10)).stdout)
    sealed[-5] ^= 0x01
    (tmp_path / "f.age").write_bytes(sealed)
    out = tmp_path / "out.bin"
    result = run("open", "-i", key, "-o", out, tmp_path / "f.age")
    err = assert_one_line_error(result)
    assert "damaged or was tampered with" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.age", "k.txt"]


def test_tampered_header_is_reported_as_such(tmp_path: Path) -> None:
    key = tmp_path / "k.txt"
    recipient = keygen(key)
    sealed = run("seal", "-r", recipient, stdin=b"x").stdout
    mangled = sealed.replace(b"age-encryption.org/v1\n", b"age-encryption.org/v2\n", 1)
    result = run("open", "-i", key, stdin=mangled)
    assert "not a valid age file" in assert_one_line_error(result)
    assert result.stdout == b""


def test_bad_recipient_is_a_usage_error(tmp_path: Path) -> None:
    result = run("seal", "-r", "age1notakey", stdin=b"x")
    assert_one_line_error(result, code=2)
    assert result.stdout == b""


def test_classical_and_post_quantum_recipients_do_not_mix(tmp_path: Path) -> None:
    pytest.importorskip("evidence_intake.crypto.age.mlkem768x25519")
    classical = keygen(tmp_path / "c.txt")
    pq = run("keygen", "--pq", "-o", tmp_path / "pq.txt")
    assert pq.returncode == 0, pq.stderr
    pq_recipient = pq.stderr.decode().strip().removeprefix("Public key: ")
    assert pq_recipient.startswith("age1pq1")
    result = run("seal", "-r", classical, "-r", pq_recipient, stdin=b"x")
    assert "post-quantum recipients cannot be mixed" in assert_one_line_error(result, code=2)
    sealed = run("seal", "-r", pq_recipient, stdin=b"hybrid")
    assert sealed.returncode == 0
    assert run("open", "-i", tmp_path / "pq.txt", stdin=sealed.stdout).stdout == b"hybrid"


def test_passphrase_protected_identity_file(tmp_path: Path) -> None:
    pass_file = tmp_path / "pass.txt"
    pass_file.write_text("correct horse battery staple\n")
    key = tmp_path / "k.age"
    made = run("keygen", "--passphrase-file", pass_file, "-o", key)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert b"AGE-SECRET-KEY" not in key.read_bytes()
    recipient = made.stderr.decode().strip().removeprefix("Public key: ")
    sealed = run("seal", "-r", recipient, stdin=b"statement").stdout
    opened = run("open", "-i", key, "--passphrase-file", pass_file, stdin=sealed)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == b"statement"
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("hunter2\n")
    result = run("open", "-i", key, "--passphrase-file", wrong, stdin=sealed)
    assert "wrong passphrase" in assert_one_line_error(result)
    # Without a terminal and without --passphrase-file, the sealed input on
    # stdin must never be taken for the passphrase.
    result = run("open", "-i", key, stdin=sealed)
    assert "--passphrase-file" in assert_one_line_error(result, code=2)


@pytest.mark.parametrize("command", ["keygen", "seal", "open"])
def test_help_has_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert b"examples:" in result.stdout
    assert f"intake {command}".encode() in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(b"intake ")
