"""Output files of the CLI appear whole or not at all."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evidence_intake.cli.common import CommandError, atomic_output


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_failure_inside_the_block_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(str(target)) as out:
        out.write(b"partial plaintext")
        raise RuntimeError("payload failure")
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_success_moves_the_file_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "key.txt"
    with atomic_output(str(target), mode=0o600, force=False) as out:
        out.write(b"secret")
    assert target.read_bytes() == b"secret"
    assert target.stat().st_mode & 0o777 == 0o600
    assert _leftovers(tmp_path) == []


def test_file_created_meanwhile_is_not_overwritten_without_force(tmp_path: Path) -> None:
    """A racing writer's file survives: the move is a link that fails if the name exists."""
    target = tmp_path / "identity.key"
    with pytest.raises(CommandError) as err, atomic_output(str(target), force=False) as out:
        out.write(b"ours")
        target.write_bytes(b"theirs")
    assert err.value.exit_code == 2
    assert target.read_bytes() == b"theirs"
    assert _leftovers(tmp_path) == []


def test_existing_file_is_refused_before_writing(tmp_path: Path) -> None:
    target = tmp_path / "identity.key"
    target.write_bytes(b"keep me")
    with pytest.raises(CommandError), atomic_output(str(target), force=False):
        pytest.fail("the block must not run")
    assert target.read_bytes() == b"keep me"


def test_sigterm_during_open_leaves_no_partial_plaintext(tmp_path: Path) -> None:
    """intake open killed with SIGTERM mid-stream deletes its temporary output."""
    from evidence_intake.crypto.age import X25519Identity, encrypt

    identity = X25519Identity.generate()
    key = tmp_path / "id.key"
    key.write_text(str(identity) + "\n", encoding="ascii")
    sealed = tmp_path / "big.age"
    with open(sealed, "wb") as dst:
        encrypt(io.BytesIO(os.urandom(4 * 1024 * 1024)), dst, [identity.recipient])
    data = sealed.read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    intake = Path(sys.executable).with_name("intake")
    proc = subprocess.Popen(
        [str(intake), "open", "-q", "-i", str(key), "-o", str(out_dir / "plain.bin")],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not _leftovers(out_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _leftovers(out_dir), "intake open never started writing"
    proc.send_signal(signal.SIGTERM)
    proc.stdin.close()
    assert proc.wait(timeout=30) == 130
    assert proc.stderr is not None
    proc.stderr.close()
    assert list(out_dir.iterdir()) == []
