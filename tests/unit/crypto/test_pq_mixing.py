"""The spec's mixing rule, through the public encrypt: a file sealed to a hybrid
post-quantum recipient never also carries a stanza that a classical key opens.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_intake.crypto import age
from evidence_intake.crypto.age import format as age_format
from evidence_intake.crypto.age.mlkem768x25519 import generate_identity
from evidence_intake.crypto.age.scrypt import ScryptRecipient
from evidence_intake.crypto.age.stanza import Recipient
from evidence_intake.crypto.age.x25519 import X25519Identity
from evidence_intake.crypto.errors import RecipientMixError


def _seal(recipients: list[Recipient]) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(b"statement"), out, recipients)
    return out.getvalue()


@pytest.mark.parametrize("classical_first", [True, False])
def test_hybrid_and_x25519_together_are_refused_with_a_clear_message(
    classical_first: bool,
) -> None:
    hybrid = generate_identity().recipient
    classical = X25519Identity.generate().recipient
    recipients = [classical, hybrid] if classical_first else [hybrid, classical]
    out = io.BytesIO()
    with pytest.raises(RecipientMixError, match="post-quantum"):
        age.encrypt(io.BytesIO(b"statement"), out, recipients)
    with (
        pytest.raises(RecipientMixError, match="post-quantum"),
        age.open_encryptor(io.BytesIO(), recipients),
    ):
        pass
    assert out.getvalue() == b""  # refused before a byte of header was written


def test_hybrid_and_passphrase_together_are_refused() -> None:
    recipients = [generate_identity().recipient, ScryptRecipient(b"passphrase", log_n=10)]
    with pytest.raises(RecipientMixError):
        _seal(recipients)


def test_parse_recipient_dispatches_age1pq1_to_the_hybrid_type() -> None:
    identity = generate_identity()
    parsed = age.parse_recipient(str(identity.recipient))
    assert parsed == identity.recipient
    assert parsed.labels == frozenset({"postquantum"})
    assert str(age.parse_identity(str(identity))) == str(identity)


def test_a_hybrid_file_carries_only_hybrid_stanzas() -> None:
    identities = [generate_identity() for _ in range(3)]
    sealed = _seal([i.recipient for i in identities])
    header = age_format.parse_unverified(io.BytesIO(sealed))
    assert [s.type for s in header.stanzas] == ["mlkem768x25519"] * 3


def test_intake_seal_refuses_the_mix_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(
        f"{generate_identity().recipient}\n{X25519Identity.generate().recipient}\n"
    )
    out = tmp_path / "statement.age"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "intake"),
            "seal",
            "-R",
            str(recipients),
            "-o",
            str(out),
        ],
        input=b"statement",
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    message = result.stderr.decode()
    assert message.count("\n") == 1
    assert "post-quantum" in message
    assert not out.exists()
