"""Our minisign code against bytes Debian's minisign 0.11 wrote (tests/vectors/minisign).

These run without the minisign binary: they pin the formats to what minisign
really writes. Ed25519 is deterministic, so our signatures must equal
minisign's byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_intake.crypto.errors import SignatureError
from evidence_intake.crypto.minisign import (
    KeyIdMismatchError,
    LegacySignatureError,
    PublicKey,
    SigningKey,
    parse_unverified_signature,
    verify,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "minisign"
PASSPHRASE = b"test passphrase: not a secret"
EXPECTED_FILES = {
    "README.md",
    "encrypted.key",
    "encrypted.pub",
    "message.bin",
    "message.bin.encrypted-key.minisig",
    "message.bin.legacy.minisig",
    "message.bin.minisig",
    "unencrypted.key",
    "unencrypted.pub",
}
# (signature file, signing key name, algorithm, trusted comment, untrusted comment)
SIGNATURES = [
    ("message.bin.minisig", "unencrypted", b"ED",
     "timestamp:1764400000\tfile:message.bin\thashed", "signature from minisign secret key"),
    ("message.bin.legacy.minisig", "unencrypted", b"Ed",
     "legacy signature over the raw file", "legacy (Ed) signature"),
    ("message.bin.encrypted-key.minisig", "encrypted", b"ED",
     "signed with the passphrase-protected test key", "signature from minisign secret key"),
]


def _text(name: str) -> str:
    return (VECTORS / name).read_text(encoding="utf-8")


def test_the_vector_folder_is_complete() -> None:
    found = {path.name for path in VECTORS.iterdir()}
    assert found == EXPECTED_FILES, f"vector folder changed: {sorted(found ^ EXPECTED_FILES)}"
    assert len(SIGNATURES) == 3


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    # One scrypt derivation at minisign's 1 GiB setting for the whole module.
    return {
        "unencrypted": SigningKey.from_file_text(_text("unencrypted.key"), None),
        "encrypted": SigningKey.from_file_text(_text("encrypted.key"), PASSPHRASE),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unencrypted", "encrypted"])
def test_minisign_secret_keys_load_and_match_their_public_keys(
    keys: dict[str, SigningKey], name: str
) -> None:
    public = PublicKey.from_file_text(_text(f"{name}.pub"))
    assert keys[name].public_key == public
    assert keys[name].key_id == public.key_id


def test_public_key_file_round_trips_through_our_writer() -> None:
    text = _text("unencrypted.pub")
    public = PublicKey.from_file_text(text)
    assert public.to_file_text() == text
    assert public.fingerprint == "B201F0DCB7128423"


def test_fingerprint_keeps_the_leading_zero_minisign_0_11_drops() -> None:
    text = _text("encrypted.pub")
    assert text.startswith("untrusted comment: minisign public key F3477E0A60651FF\n")
    public = PublicKey.from_file_text(text)
    assert public.fingerprint == "0F3477E0A60651FF"
    assert public.to_string() == text.splitlines()[1]


@pytest.mark.slow
@pytest.mark.parametrize(("sig_name", "key_name", "alg", "trusted", "untrusted"), SIGNATURES)
def test_minisign_signatures_verify_and_we_reproduce_them_exactly(
    keys: dict[str, SigningKey], sig_name: str, key_name: str, alg: bytes, trusted: str,
    untrusted: str,
) -> None:
    data = (VECTORS / "message.bin").read_bytes()
    signature_text = _text(sig_name)
    public = PublicKey.from_file_text(_text(f"{key_name}.pub"))
    assert parse_unverified_signature(signature_text).algorithm == alg
    assert verify(data, signature_text, public) == trusted
    ours = keys[key_name].sign(data, trusted, untrusted, legacy=alg == b"Ed")
    assert ours == signature_text


def test_minisign_legacy_signature_is_refused_when_prehashing_is_required() -> None:
    data = (VECTORS / "message.bin").read_bytes()
    public = PublicKey.from_file_text(_text("unencrypted.pub"))
    with pytest.raises(LegacySignatureError):
        verify(data, _text("message.bin.legacy.minisig"), public, allow_legacy=False)


def test_minisign_signature_by_the_other_key_is_a_key_id_mismatch() -> None:
    data = (VECTORS / "message.bin").read_bytes()
    other = PublicKey.from_file_text(_text("encrypted.pub"))
    with pytest.raises(KeyIdMismatchError) as caught:
        verify(data, _text("message.bin.minisig"), other)
    assert caught.value.public_key_id == other.key_id
    assert isinstance(caught.value, SignatureError)
