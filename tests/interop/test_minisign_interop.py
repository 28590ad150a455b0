"""Interop with Debian's ``minisign`` 0.11, both directions.

- We sign, ``minisign -V -H`` verifies (file and inline public key; empty,
  small and multi-chunk files).
- minisign signs (prehashed and legacy ``-l``) with an unencrypted key, we verify.
- minisign's secret keys (``-G -W`` and passphrase-protected ``-G``) load in
  our code and sign what minisign verifies.
- Our passphrase-protected key file is accepted by ``minisign -S`` with the
  passphrase typed on a terminal (a pty), and refused with a wrong one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from evidence_intake.crypto.errors import SignatureError
from evidence_intake.crypto.minisign import PublicKey, SigningKey, verify
from pty_support import run_on_tty

pytestmark = pytest.mark.interop

MINISIGN = shutil.which("minisign")
PASSPHRASE = "interop passphrase ✓"
FAST = {"kdf_opslimit": 32768, "kdf_memlimit": 1 << 20}


@pytest.fixture(scope="module", autouse=True)
def _need_minisign() -> None:
    if MINISIGN is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("minisign is not installed; .ci/run installs it")
        pytest.skip("minisign is not installed")


def _minisign(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert MINISIGN is not None
    return subprocess.run(
        [MINISIGN, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def _minisign_on_tty(*args: str | Path, cwd: Path, answers: list[str]) -> tuple[int, str]:
    """Run minisign on a pseudo-terminal, typing each answer at each "Password" prompt."""
    assert MINISIGN is not None
    code, output = run_on_tty([MINISIGN, *args], answers=answers, prompt=b"Password", cwd=cwd)
    return code, output.decode("utf-8", "replace")


def _files(tmp_path: Path) -> dict[str, Path]:
    payloads = {
        "empty.bin": b"",
        "small.txt": "ထွက်ပြေးလာသူ statement\n".encode(),
        "big.bin": os.urandom(3 * (1 << 20) + 123),  # crosses our 1 MiB and minisign's 64 KiB reads
    }
    paths = {}
    for name, data in payloads.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths[name] = path
    return paths


def test_minisign_verifies_what_we_sign(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "our.pub").write_text(key.public_key.to_file_text())
    for name, path in _files(tmp_path).items():
        comment = f"timestamp:1764400000\tfile:{name}\thashed\tဗမာ"
        path.with_name(name + ".minisig").write_text(key.sign(path.read_bytes(), comment))
        result = _minisign("-V", "-H", "-p", "our.pub", "-m", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"Trusted comment: {comment}" in result.stdout
        inline = _minisign("-V", "-H", "-P", key.public_key.to_string(), "-m", name, cwd=tmp_path)
        assert inline.returncode == 0, inline.stderr


def test_minisign_refuses_what_we_sign_once_tampered(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "our.pub").write_text(key.public_key.to_file_text())
    path = tmp_path / "f.txt"
    path.write_bytes(b"original")
    (tmp_path / "f.txt.minisig").write_text(key.sign(b"original", "ok"))
    path.write_bytes(b"origina1")
    result = _minisign("-V", "-H", "-p", "our.pub", "-m", "f.txt", cwd=tmp_path)
    assert result.returncode != 0
    assert "Signature verification failed" in result.stderr


def test_minisign_verifies_our_legacy_signature_without_h(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "f.txt").write_bytes(b"legacy mode")
    (tmp_path / "f.txt.minisig").write_text(key.sign(b"legacy mode", "legacy", legacy=True))
    ok = _minisign("-V", "-P", key.public_key.to_string(), "-m", "f.txt", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    refused = _minisign("-V", "-H", "-P", key.public_key.to_string(), "-m", "f.txt", cwd=tmp_path)
    assert refused.returncode != 0


def test_we_verify_what_minisign_signs_with_an_unencrypted_key(tmp_path: Path) -> None:
    made = _minisign("-G", "-W", "-p", "m.pub", "-s", "m.key", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    public = PublicKey.from_file_text((tmp_path / "m.pub").read_text())
    for name, path in _files(tmp_path).items():
        for legacy in (False, True):
            sig = f"{name}.{'legacy' if legacy else 'ed'}.minisig"
            flags = ["-l"] if legacy else []
            signed = _minisign("-S", *flags, "-s", "m.key", "-m", name, "-x", sig,
                               "-t", f"by minisign: {name}", cwd=tmp_path)
            assert signed.returncode == 0, signed.stderr
            text = (tmp_path / sig).read_text()
            assert verify(path.read_bytes(), text, public) == f"by minisign: {name}"
            with pytest.raises(SignatureError):
                verify(path.read_bytes() + b"x", text, public)


def test_minisign_default_trusted_comment_verifies(tmp_path: Path) -> None:
    assert _minisign("-G", "-W", "-p", "m.pub", "-s", "m.key", cwd=tmp_path).returncode == 0
    (tmp_path / "f.txt").write_bytes(b"x")
    assert _minisign("-S", "-s", "m.key", "-m", "f.txt", cwd=tmp_path).returncode == 0
    public = PublicKey.from_file_text((tmp_path / "m.pub").read_text())
    comment = verify(b"x", (tmp_path / "f.txt.minisig").read_text(), public)
    assert comment.startswith("timestamp:")
    assert comment.endswith("\tfile:f.txt\thashed")


def test_minisign_unencrypted_secret_key_signs_with_us(tmp_path: Path) -> None:
    assert _minisign("-G", "-W", "-p", "m.pub", "-s", "m.key", cwd=tmp_path).returncode == 0
    key = SigningKey.from_file_text((tmp_path / "m.key").read_text(), None)
    assert key.public_key == PublicKey.from_file_text((tmp_path / "m.pub").read_text())
    (tmp_path / "f.txt").write_bytes(b"signed by us with minisign's key")
    (tmp_path / "f.txt.minisig").write_text(key.sign(b"signed by us with minisign's key", "c"))
    result = _minisign("-V", "-H", "-p", "m.pub", "-m", "f.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_minisign_signs_with_our_unencrypted_secret_key(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "our.key").write_text(key.to_file_text(None))
    (tmp_path / "f.txt").write_bytes(b"data")
    result = _minisign("-S", "-s", "our.key", "-m", "f.txt", "-t", "minisign, our key",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "f.txt.minisig").read_text()
    assert verify(b"data", text, key.public_key) == "minisign, our key"
    assert text == key.sign(b"data", "minisign, our key")  # Ed25519 is deterministic


def test_minisign_signs_with_our_passphrase_protected_key_on_a_tty(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "our.key").write_text(key.to_file_text(PASSPHRASE.encode(), **FAST))
    (tmp_path / "f.txt").write_bytes(b"data")
    code, output = _minisign_on_tty("-S", "-s", "our.key", "-m", "f.txt", "-t", "via pty",
                                    cwd=tmp_path, answers=[PASSPHRASE])
    assert code == 0, output
    assert verify(b"data", (tmp_path / "f.txt.minisig").read_text(), key.public_key) == "via pty"


def test_minisign_refuses_our_key_with_a_wrong_passphrase(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "our.key").write_text(key.to_file_text(PASSPHRASE.encode(), **FAST))
    (tmp_path / "f.txt").write_bytes(b"data")
    code, output = _minisign_on_tty("-S", "-s", "our.key", "-m", "f.txt",
                                    cwd=tmp_path, answers=["not it"])
    assert code != 0
    assert "Wrong password" in output
    assert not (tmp_path / "f.txt.minisig").exists()


@pytest.mark.slow
def test_minisign_passphrase_protected_key_loads_in_our_code(tmp_path: Path) -> None:
    """minisign -G always uses scrypt N = 2^20 (1 GiB): a few seconds each side."""
    code, output = _minisign_on_tty("-G", "-p", "m.pub", "-s", "m.key", cwd=tmp_path,
                                    answers=[PASSPHRASE, PASSPHRASE])
    assert code == 0, output
    text = (tmp_path / "m.key").read_text()
    assert SigningKey.file_is_encrypted(text)
    key = SigningKey.from_file_text(text, PASSPHRASE.encode())
    assert key.public_key == PublicKey.from_file_text((tmp_path / "m.pub").read_text())
    (tmp_path / "f.txt").write_bytes(b"data")
    (tmp_path / "f.txt.minisig").write_text(key.sign(b"data", "ours, minisign's key"))
    result = _minisign("-V", "-H", "-p", "m.pub", "-m", "f.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Trusted comment: ours, minisign's key" in result.stdout
