"""`intake bundle open` never reads an identity passphrase from stdin.

Without a terminal, getpass falls back to stdin; a passphrase-protected
identity must instead be refused with a one-line error (regression: the bundle
command called getpass directly).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evidence_intake.crypto.age import ScryptRecipient, X25519Identity, encrypt


def test_passphrase_identity_without_terminal_is_refused(tmp_path: Path) -> None:
    import io

    identity = X25519Identity.generate()
    protected = tmp_path / "investigator.key"
    with open(protected, "wb") as dst:
        encrypt(io.BytesIO(f"{identity}\n".encode()), dst,
                [ScryptRecipient("test passphrase", log_n=10)], armor=True)
    intake = Path(sys.executable).with_name("intake")
    result = subprocess.run(
        ["setsid", str(intake), "bundle", "open", str(tmp_path / "missing.zip"),
         "--node-key", str(tmp_path / "node.pub"), "--log-key", "x+00000000+AA==",
         "-i", str(protected), "-o", str(tmp_path / "out")],
        input="test passphrase\n", capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "no terminal" in result.stderr
    assert not (tmp_path / "out").exists()
