"""Interop with Debian's ``age`` 1.1.1 and with ``pyrage`` (rage), in both directions.

``age`` reads passphrases from the terminal, never from stdin, so the
passphrase cases drive it through a pseudo-terminal.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_intake.crypto.age import (
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    decrypt,
    encrypt,
    parse_identities_file,
    parse_recipient,
)
from pty_support import run_on_tty

pytestmark = pytest.mark.interop

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
INTAKE = [sys.executable, "-m", "evidence_intake.cli.main"]
SIZES = [0, 1000, 64 * 1024, 64 * 1024 + 1]


@pytest.fixture(scope="module")
def age_tools() -> tuple[str, str]:
    if AGE is None or AGE_KEYGEN is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's age is not installed (apt-get install age)")
        pytest.skip("Debian's age is not installed")
    return AGE, AGE_KEYGEN


@pytest.fixture(scope="module")
def age_keys(
    age_tools: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Path, str]]:
    """Three identities made by age-keygen, shared by the module's tests."""
    folder = tmp_path_factory.mktemp("age-keys")
    return [(folder / f"k{i}.txt", age_keygen(age_tools, folder / f"k{i}.txt")) for i in range(3)]


def age_keygen(tools: tuple[str, str], path: Path) -> str:
    subprocess.run([tools[1], "-o", str(path)], check=True, capture_output=True)
    out = subprocess.run([tools[1], "-y", str(path)], check=True, capture_output=True)
    return out.stdout.decode().strip()


def intake_seal(data: bytes, recipients: list[str], armor: bool = False) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(data), out, [parse_recipient(r) for r in recipients], armor=armor)
    return out.getvalue()


def intake_open(data: bytes, identity_file: Path) -> bytes:
    out = io.BytesIO()
    identities = parse_identities_file(identity_file.read_bytes())
    decrypt(io.BytesIO(data), out, identities)
    return out.getvalue()


def run_in_pty(argv: list[str], passphrase: str, timeout: float = 60) -> tuple[int, bytes]:
    """Run ``argv`` on a pseudo-terminal, answering its passphrase prompts (at most two)."""
    return run_on_tty(argv, answers=[passphrase, passphrase], prompt=b"passphrase",
                      timeout=timeout)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("armor", [False, True])
def test_intake_seals_age_opens(
    age_tools: tuple[str, str], age_keys: list[tuple[Path, str]], tmp_path: Path, size: int,
    armor: bool
) -> None:
    keys = [k for k, _ in age_keys]
    recipients = [r for _, r in age_keys]
    data = os.urandom(size)
    sealed = tmp_path / "f.age"
    sealed.write_bytes(intake_seal(data, recipients, armor=armor))
    for key in keys:
        opened = subprocess.run(
            [age_tools[0], "-d", "-i", str(key), str(sealed)], capture_output=True, check=True
        )
        assert opened.stdout == data


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("armor", [False, True])
def test_age_seals_intake_opens(
    age_tools: tuple[str, str], age_keys: list[tuple[Path, str]], tmp_path: Path, size: int,
    armor: bool
) -> None:
    keys = [k for k, _ in age_keys]
    recipients = [r for _, r in age_keys]
    data = os.urandom(size)
    argv = [age_tools[0], *(a for r in recipients for a in ("-r", r))]
    sealed = subprocess.run(
        argv + (["-a"] if armor else []), input=data, capture_output=True, check=True
    ).stdout
    assert sealed.startswith(b"-----BEGIN" if armor else b"age-encryption.org/v1\n")
    for key in keys:
        assert intake_open(sealed, key) == data


def test_intake_cli_against_age_cli(age_tools: tuple[str, str], tmp_path: Path) -> None:
    key = tmp_path / "k.txt"
    made = subprocess.run([*INTAKE, "keygen", "-o", str(key)], capture_output=True, check=True)
    recipient = made.stderr.decode().strip().removeprefix("Public key: ")
    data = os.urandom(70_000)
    (tmp_path / "plain").write_bytes(data)
    # age seals to an intake key, intake opens; and the other way round.
    subprocess.run([age_tools[0], "-r", recipient, "-o", str(tmp_path / "a.age"),
                    str(tmp_path / "plain")], check=True)
    subprocess.run([*INTAKE, "open", "-i", str(key), "-o", str(tmp_path / "a.out"),
                    str(tmp_path / "a.age")], check=True)
    assert (tmp_path / "a.out").read_bytes() == data
    subprocess.run([*INTAKE, "seal", "-r", recipient, "-o", str(tmp_path / "b.age"),
                    str(tmp_path / "plain")], check=True)
    subprocess.run([age_tools[0], "-d", "-i", str(key), "-o", str(tmp_path / "b.out"),
                    str(tmp_path / "b.age")], check=True)
    assert (tmp_path / "b.out").read_bytes() == data


def test_age_opens_a_passphrase_protected_intake_identity(
    age_tools: tuple[str, str], tmp_path: Path
) -> None:
    pass_file = tmp_path / "pass"
    pass_file.write_text("interop passphrase\n")
    key = tmp_path / "k.age"
    made = subprocess.run(
        [*INTAKE, "keygen", "--passphrase-file", str(pass_file), "-o", str(key)],
        capture_output=True, check=True,
    )
    recipient = made.stderr.decode().strip().removeprefix("Public key: ")
    (tmp_path / "f.age").write_bytes(intake_seal(b"for the investigator", [recipient]))
    out = tmp_path / "f.out"
    code, transcript = run_in_pty(
        [age_tools[0], "-d", "-i", str(key), "-o", str(out), str(tmp_path / "f.age")],
        "interop passphrase",
    )
    assert code == 0, transcript
    assert out.read_bytes() == b"for the investigator"


def test_intake_opens_an_age_passphrase_protected_identity(
    age_tools: tuple[str, str], tmp_path: Path
) -> None:
    plain_key = tmp_path / "k.txt"
    recipient = age_keygen(age_tools, plain_key)
    key = tmp_path / "k.age"
    code, transcript = run_in_pty(
        [age_tools[0], "-p", "-a", "-o", str(key), str(plain_key)], "age side passphrase"
    )
    assert code == 0, transcript
    assert key.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    (tmp_path / "pass").write_text("age side passphrase\n")
    (tmp_path / "f.age").write_bytes(intake_seal(b"sealed", [recipient]))
    opened = subprocess.run(
        [*INTAKE, "open", "-i", str(key), "--passphrase-file", str(tmp_path / "pass"),
         str(tmp_path / "f.age")],
        capture_output=True, check=False,
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == b"sealed"


# --- pyrage (rage, Rust) -----------------------------------------------------------


@pytest.fixture(scope="module")
def pyrage():  # type: ignore[no-untyped-def]
    return pytest.importorskip("pyrage")


@pytest.mark.parametrize("size", [0, 64 * 1024, 200_000])
def test_pyrage_both_directions(pyrage, size: int) -> None:  # type: ignore[no-untyped-def]
    theirs = pyrage.x25519.Identity.generate()
    ours = X25519Identity.generate()
    data = os.urandom(size)
    # We seal to a rage key; rage opens.
    sealed = intake_seal(data, [str(theirs.to_public()), str(ours.recipient)])
    assert pyrage.decrypt(sealed, [theirs]) == data
    # rage seals to our key; we open.
    their_sealed = pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(str(ours.recipient))])
    out = io.BytesIO()
    decrypt(io.BytesIO(their_sealed), out, [ours])
    assert out.getvalue() == data
    # Identity strings are the same format on both sides.
    assert str(X25519Identity.from_string(str(theirs)).recipient) == str(theirs.to_public())


def test_pyrage_passphrase_both_directions(pyrage) -> None:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    encrypt(io.BytesIO(b"by passphrase"), out, [ScryptRecipient("pw", log_n=12)])
    assert pyrage.passphrase.decrypt(out.getvalue(), "pw") == b"by passphrase"
    theirs = pyrage.passphrase.encrypt(b"from rage", "pw")
    back = io.BytesIO()
    decrypt(io.BytesIO(theirs), back, [ScryptIdentity("pw")])
    assert back.getvalue() == b"from rage"
