"""Hybrid post-quantum interop, both ways, with the npm package ``age-encryption``.

typage (the TypeScript age implementation, run with Node through
``pq_age.mjs``) is an ``mlkem768x25519`` implementation nobody here wrote:
its ML-KEM, X25519, SHA-3 and HPKE come from the noble libraries, not OpenSSL.
What it seals to our ``age1pq1…`` recipients must open with our API and with
``intake open``; what ``intake seal`` makes must open with it; and both sides
must derive the same recipient from the same identity.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_intake.crypto import age
from evidence_intake.crypto.age.mlkem768x25519 import HybridIdentity, generate_identity

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "pq_age.mjs"
INTAKE = Path(sys.executable).parent / "intake"
# The identity of the C2SP CCTV hybrid vectors (a public test key).
CCTV_IDENTITY = "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG"
# Empty, one byte, exactly one STREAM chunk, one chunk and one byte; each with
# one encoding, both encodings overall (Node starts slowly: keep the matrix small).
CASES = [(0, False), (1, True), (64 * 1024, False), (64 * 1024 + 1, True)]
CASE_IDS = ["empty-binary", "1-armored", "64KiB-binary", "64KiB+1-armored"]


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    problem = None
    if path is None:
        problem = "node is not installed"
    elif not (HERE / "node_modules" / "age-encryption" / "package.json").is_file():
        problem = "age-encryption is not installed (cd tests/interop && npm ci)"
    if problem is not None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(problem)
        pytest.skip(problem)
    assert path is not None
    return path


def _node(node: str, *args: str, stdin: bytes = b"") -> bytes:
    result = subprocess.run(
        [node, str(SCRIPT), *args], input=stdin, capture_output=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"pq_age.mjs {args[0]} failed: {result.stderr.decode()}")
    return result.stdout


def _intake(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(INTAKE), *args], input=stdin, capture_output=True, check=False, timeout=120
    )


def _payload(size: int) -> bytes:
    # Distinct bytes at every position, so a misplaced chunk cannot go unnoticed.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


# --- keys ---------------------------------------------------------------------------------


def test_both_sides_derive_the_same_recipient(node: str) -> None:
    theirs = _node(node, "keygen").decode().strip()
    assert theirs.startswith("AGE-SECRET-KEY-PQ-1")
    ours = generate_identity()
    identities = [theirs, str(ours), CCTV_IDENTITY]
    recipients = _node(node, "to-recipient", stdin="\n".join(identities).encode()).decode()
    expected = [str(HybridIdentity.parse(text).recipient) for text in identities]
    assert recipients.split() == expected


# --- they seal, we open -------------------------------------------------------------------


@pytest.mark.parametrize(("size", "armor"), CASES, ids=CASE_IDS)
def test_typage_seals_we_open(node: str, tmp_path: Path, size: int, armor: bool) -> None:
    identities = [generate_identity() for _ in range(2)]
    plaintext = _payload(size)
    args = ["--armor"] if armor else []
    sealed = _node(node, "encrypt", *args, *(str(i.recipient) for i in identities), stdin=plaintext)
    assert sealed.startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1\n")

    for identity in identities:
        out = io.BytesIO()
        age.decrypt(io.BytesIO(sealed), out, [identity])
        assert out.getvalue() == plaintext

    # And with the command an investigator runs.
    key = tmp_path / "investigator-pq.key"
    key.write_text(f"# test key\n{identities[1]}\n")
    key.chmod(0o600)
    (tmp_path / "in.age").write_bytes(sealed)
    result = _intake(
        "open", "-q", "-i", str(key), "-o", str(tmp_path / "out"), str(tmp_path / "in.age")
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out").read_bytes() == plaintext


def test_typage_generated_identity_opens_with_intake(node: str, tmp_path: Path) -> None:
    key = tmp_path / "theirs.key"
    key.write_bytes(_node(node, "keygen"))
    key.chmod(0o600)
    recipient = _node(node, "to-recipient", stdin=key.read_bytes()).decode().strip()
    sealed = _node(node, "encrypt", recipient, stdin=b"statement for the IIMM")
    result = _intake("open", "-q", "-i", str(key), stdin=sealed)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"statement for the IIMM"


def test_typage_file_for_someone_else_is_no_match(node: str, tmp_path: Path) -> None:
    sealed = _node(node, "encrypt", str(generate_identity().recipient), stdin=b"x")
    with pytest.raises(age.NoIdentityMatchError):
        age.decrypt(io.BytesIO(sealed), io.BytesIO(), [generate_identity()])


# --- we seal, they open -------------------------------------------------------------------


@pytest.mark.parametrize(("size", "armor"), CASES, ids=CASE_IDS)
def test_intake_seals_typage_opens(node: str, tmp_path: Path, size: int, armor: bool) -> None:
    identities = [generate_identity() for _ in range(2)]
    keys = []
    for n, identity in enumerate(identities):
        key = tmp_path / f"investigator-{n}.key"
        key.write_text(f"# test key\n{identity}\n")
        keys.append(key)
    plaintext = _payload(size)
    (tmp_path / "statement").write_bytes(plaintext)
    sealed_path = tmp_path / "statement.age"
    recipients = [arg for i in identities for arg in ("-r", str(i.recipient))]
    result = _intake(
        "seal",
        "-q",
        *(["-a"] if armor else []),
        *recipients,
        "-o",
        str(sealed_path),
        str(tmp_path / "statement"),
    )
    assert result.returncode == 0, result.stderr.decode()
    sealed = sealed_path.read_bytes()
    assert sealed.startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1\n")

    for key in keys:
        assert _node(node, "decrypt", str(key), stdin=sealed) == plaintext


def test_keygen_pq_identity_file_opens_in_typage(node: str, tmp_path: Path) -> None:
    key = tmp_path / "investigator.key"
    result = _intake("keygen", "--pq", "-o", str(key))
    assert result.returncode == 0, result.stderr.decode()
    recipient = str(HybridIdentity.parse(_secret_line(key)).recipient)
    assert recipient in result.stdout.decode() + result.stderr.decode()
    sealed = _intake("seal", "-r", recipient, stdin=b"consented statement")
    assert sealed.returncode == 0, sealed.stderr.decode()
    assert _node(node, "decrypt", str(key), stdin=sealed.stdout) == b"consented statement"


def test_api_seal_to_typage_identity(node: str, tmp_path: Path) -> None:
    key = tmp_path / "theirs.key"
    key.write_bytes(_node(node, "keygen"))
    recipient = age.parse_recipient(
        _node(node, "to-recipient", stdin=key.read_bytes()).decode().strip()
    )
    out = io.BytesIO()
    age.encrypt(io.BytesIO(b"sealed by evidence-intake"), out, [recipient])
    assert _node(node, "decrypt", str(key), stdin=out.getvalue()) == b"sealed by evidence-intake"


def _secret_line(path: Path) -> str:
    (line,) = [
        line for line in path.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-PQ-1")
    ]
    return line
