"""minisign key files: round trips, passphrases, tampering, hostile KDF parameters."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from evidence_intake.crypto.errors import CryptoError, KeyFormatError
from evidence_intake.crypto.minisign import (
    KdfParametersError,
    PassphraseError,
    PublicKey,
    SigningKey,
    verify,
)
from evidence_intake.crypto.minisign.kdf import (
    MEMLIMIT_SENSITIVE,
    OPSLIMIT_SENSITIVE,
    scrypt_parameters,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import nacl_bindings_pick_scrypt_params

# N = 2^10: fast enough to run many times, same code path as minisign's 2^20.
FAST = {"kdf_opslimit": 32768, "kdf_memlimit": 1 << 20}
PASSPHRASE = "pass phrase ဖြတ်ရန် (test)".encode()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def _body(text: str) -> bytearray:
    return bytearray(base64.b64decode(text.splitlines()[1]))


def _with_body(text: str, body: bytes) -> str:
    return f"{text.splitlines()[0]}\n{base64.b64encode(body).decode()}\n"


# -- round trips ---------------------------------------------------------------


def test_unencrypted_key_file_round_trips(key: SigningKey) -> None:
    text = key.to_file_text(None)
    assert text.startswith("untrusted comment: minisign unencrypted secret key\n")
    assert _body(text)[2:4] == b"\x00\x00"
    loaded = SigningKey.from_file_text(text, None)
    assert loaded.public_key == key.public_key
    assert loaded.key_id == key.key_id
    assert loaded.sign(b"x", "t") == key.sign(b"x", "t")
    assert not SigningKey.file_is_encrypted(text)


def test_encrypted_key_file_round_trips(key: SigningKey) -> None:
    text = key.to_file_text(PASSPHRASE, **FAST)
    body = _body(text)
    assert body[0:6] == b"EdScB2"
    assert int.from_bytes(body[38:46], "little") == FAST["kdf_opslimit"]
    assert int.from_bytes(body[46:54], "little") == FAST["kdf_memlimit"]
    # The key id and secret key are not in the clear.
    assert bytes(key.key_id) not in bytes(body)
    assert SigningKey.file_is_encrypted(text)
    loaded = SigningKey.from_file_text(text, PASSPHRASE)
    assert loaded.public_key == key.public_key


def test_each_encryption_uses_a_fresh_salt(key: SigningKey) -> None:
    first, second = (_body(key.to_file_text(PASSPHRASE, **FAST)) for _ in range(2))
    assert first[6:38] != second[6:38]
    assert first[54:] != second[54:]


def test_default_kdf_limits_are_minisigns_sensitive_ones() -> None:
    assert (OPSLIMIT_SENSITIVE, MEMLIMIT_SENSITIVE) == (33554432, 1073741824)
    params = scrypt_parameters(OPSLIMIT_SENSITIVE, MEMLIMIT_SENSITIVE)
    assert (params.log2_n, params.r, params.p) == (20, 8, 1)


def test_generated_keys_differ() -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    assert a.key_id != b.key_id
    assert a.public_key != b.public_key


def test_key_file_with_crlf_line_endings_loads(key: SigningKey) -> None:
    text = key.to_file_text(None).replace("\n", "\r\n")
    assert SigningKey.from_file_text(text, None).public_key == key.public_key


def test_repr_shows_the_key_id_only(key: SigningKey) -> None:
    secret_b64 = key.to_file_text(None).splitlines()[1]
    shown = repr(key)
    assert key.public_key.fingerprint in shown
    assert secret_b64[:20] not in shown


# -- passphrases -----------------------------------------------------------------


def test_wrong_passphrase_is_refused(key: SigningKey) -> None:
    text = key.to_file_text(PASSPHRASE, **FAST)
    with pytest.raises(PassphraseError):
        SigningKey.from_file_text(text, PASSPHRASE + b"x")


def test_missing_passphrase_is_refused(key: SigningKey) -> None:
    text = key.to_file_text(PASSPHRASE, **FAST)
    with pytest.raises(PassphraseError):
        SigningKey.from_file_text(text, None)


def test_passphrase_for_an_unencrypted_key_is_ignored(key: SigningKey) -> None:
    text = key.to_file_text(None)
    assert SigningKey.from_file_text(text, b"anything").public_key == key.public_key


@pytest.mark.parametrize(
    "bad", [b"", b"two\nlines", b"carriage\rreturn", b"nul\x00byte", b"x" * 1023]
)
def test_passphrases_minisign_cannot_read_back_are_refused(key: SigningKey, bad: bytes) -> None:
    with pytest.raises(ValueError, match="passphrase"):
        key.to_file_text(bad, **FAST)


def test_longest_passphrase_minisign_reads_is_accepted(key: SigningKey) -> None:
    text = key.to_file_text(b"p" * 1022, **FAST)
    assert SigningKey.from_file_text(text, b"p" * 1022).public_key == key.public_key


# -- tampering ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (0, KeyFormatError),  # signature algorithm
        (3, KeyFormatError),  # kdf algorithm
        (5, KeyFormatError),  # checksum algorithm
        (10, PassphraseError),  # salt: another key stream
        (54, PassphraseError),  # key id (encrypted)
        (70, PassphraseError),  # secret key (encrypted)
        (157, PassphraseError),  # checksum (encrypted)
    ],
)
def test_tampered_encrypted_key_file_is_refused(
    key: SigningKey, offset: int, expected: type[CryptoError]
) -> None:
    text = key.to_file_text(PASSPHRASE, **FAST)
    body = _body(text)
    body[offset] ^= 0x01
    with pytest.raises(expected):
        SigningKey.from_file_text(_with_body(text, bytes(body)), PASSPHRASE)


@pytest.mark.parametrize("offset", [54, 61, 62, 100, 125, 126, 157])
def test_tampered_unencrypted_key_fails_its_checksum(key: SigningKey, offset: int) -> None:
    text = key.to_file_text(None)
    body = _body(text)
    body[offset] ^= 0x80
    with pytest.raises(KeyFormatError):
        SigningKey.from_file_text(_with_body(text, bytes(body)), None)


def test_unencrypted_key_with_zero_checksum_loads_as_minisign_writes_it(key: SigningKey) -> None:
    text = key.to_file_text(None)
    body = _body(text)
    body[126:158] = bytes(32)
    assert SigningKey.from_file_text(_with_body(text, bytes(body)), None).key_id == key.key_id


def test_key_whose_public_half_does_not_match_its_seed_is_refused(key: SigningKey) -> None:
    """A file pairing our seed with another public key (checksum recomputed) must not load."""
    text = key.to_file_text(None)
    body = _body(text)
    body[94:126] = bytes(SigningKey.generate().public_key.ed25519_bytes)
    body[126:158] = hashlib.blake2b(b"Ed" + bytes(body[54:126]), digest_size=32).digest()
    with pytest.raises(KeyFormatError):
        SigningKey.from_file_text(_with_body(text, bytes(body)), None)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.splitlines()[1],  # no comment line
        lambda t: t.replace("untrusted comment: ", "comment: "),
        lambda t: t + "extra line\n",
        lambda t: t[:-10] + "\n",  # truncated
        lambda t: t.replace("=\n", "\n"),  # padding dropped
        lambda t: t.replace("=\n", "==\n"),
        lambda t: t.replace("R", "*", 1),
    ],
)
def test_malformed_key_files_are_refused(key: SigningKey, mangle: Callable[[str], str]) -> None:
    text = key.to_file_text(None)
    with pytest.raises(KeyFormatError):
        SigningKey.from_file_text(mangle(text), None)


def test_non_canonical_base64_secret_key_is_refused(key: SigningKey) -> None:
    text = key.to_file_text(None)
    line = text.splitlines()[1]
    assert line.endswith("=")
    # 158 bytes leave two unused bits in the last character; set one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = line[-2]
    bent = alphabet[alphabet.index(last) | 1]
    assert base64.b64decode(line[:-2] + bent + "=") == base64.b64decode(line)
    with pytest.raises(KeyFormatError, match="canonical"):
        SigningKey.from_file_text(f"{text.splitlines()[0]}\n{line[:-2]}{bent}=\n", None)


# -- hostile KDF parameters ------------------------------------------------------


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [
        (1 << 40, 1 << 40),  # N = 2^30: 1 TiB
        (1 << 34, 1 << 31),  # N = 2^21: twice minisign's memory
        (1 << 40, 0),  # N = 2, but p in the millions
        ((1 << 64) - 1, (1 << 64) - 1),
    ],
)
def test_hostile_kdf_parameters_are_refused_before_deriving(
    key: SigningKey, opslimit: int, memlimit: int
) -> None:
    text = key.to_file_text(PASSPHRASE, **FAST)
    body = _body(text)
    body[38:46] = opslimit.to_bytes(8, "little")
    body[46:54] = memlimit.to_bytes(8, "little")
    with pytest.raises(KdfParametersError):
        SigningKey.from_file_text(_with_body(text, bytes(body)), PASSPHRASE)


def test_writer_refuses_kdf_parameters_its_reader_would_refuse(key: SigningKey) -> None:
    with pytest.raises(KdfParametersError):
        key.to_file_text(PASSPHRASE, kdf_opslimit=1 << 40, kdf_memlimit=1 << 40)


@pytest.mark.parametrize(
    ("opslimit", "memlimit", "expected"),
    [
        (33554432, 1073741824, (20, 8, 1)),  # SENSITIVE: minisign -G
        (524288, 16777216, (14, 8, 1)),  # INTERACTIVE
        (0, 0, (1, 8, 512)),  # opslimit raised to 32768; memory bound
        (32768, 1 << 30, (10, 8, 1)),  # time bound: opslimit < memlimit / 32
    ],
)
def test_scrypt_parameters_follow_libsodium(
    opslimit: int, memlimit: int, expected: tuple[int, int, int]
) -> None:
    params = scrypt_parameters(opslimit, memlimit)
    assert (params.log2_n, params.r, params.p) == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_scrypt_parameters_match_pynacls_port_of_libsodium(opslimit: int, memlimit: int) -> None:
    params = scrypt_parameters(opslimit, memlimit)
    assert (params.log2_n, params.r, params.p) == nacl_bindings_pick_scrypt_params(
        opslimit, memlimit
    )


# -- public keys -----------------------------------------------------------------


def test_public_key_string_and_file_round_trip(key: SigningKey) -> None:
    public = key.public_key
    assert PublicKey.from_string(public.to_string()) == public
    assert PublicKey.from_string(f"  {public.to_string()}\n") == public
    text = public.to_file_text()
    assert text == (
        f"untrusted comment: minisign public key {public.fingerprint}\n{public.to_string()}\n"
    )
    assert PublicKey.from_file_text(text) == public
    raw = base64.b64decode(public.to_string())
    assert raw[:2] == b"Ed"
    assert raw[2:10] == public.key_id
    assert public.fingerprint == raw[2:10][::-1].hex().upper()


def test_public_key_with_another_algorithm_is_refused(key: SigningKey) -> None:
    raw = bytearray(base64.b64decode(key.public_key.to_string()))
    raw[0:2] = b"ED"
    with pytest.raises(KeyFormatError, match="algorithm"):
        PublicKey.from_string(base64.b64encode(raw).decode())


def test_small_order_public_key_is_refused() -> None:
    identity_point = b"\x01" + bytes(31)
    text = base64.b64encode(b"Ed" + bytes(8) + identity_point).decode()
    with pytest.raises(KeyFormatError, match="point"):
        PublicKey.from_string(text)


@pytest.mark.parametrize("text", ["", "RWQ", "not base64 at all!", "RWQ" * 30])
def test_garbage_public_keys_are_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        PublicKey.from_string(text)


def test_public_key_file_needs_its_comment_line(key: SigningKey) -> None:
    with pytest.raises(KeyFormatError):
        PublicKey.from_file_text(key.public_key.to_string() + "\n")


def test_a_loaded_key_signs_what_its_public_key_verifies(key: SigningKey) -> None:
    loaded = SigningKey.from_file_text(key.to_file_text(PASSPHRASE, **FAST), PASSPHRASE)
    assert verify(b"data", loaded.sign(b"data", "c"), key.public_key) == "c"
