"""The public age API: keys, recipients rules, streaming seal/open, armor, HKDF."""

from __future__ import annotations

import hashlib
import io
import os
import time

import pytest
from evidence_intake.crypto import errors
from evidence_intake.crypto.age import (
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    bech32,
    decrypt,
    encrypt,
    open_decryptor,
    open_encryptor,
    parse_identities_file,
    parse_identity,
    parse_recipient,
    parse_recipients_file,
    recipient_fingerprint,
)
from evidence_intake.crypto.age import format as age_format
from evidence_intake.crypto.age.armor import ArmorReader, ArmorWriter
from evidence_intake.crypto.age.hkdf import hkdf_sha256
from evidence_intake.crypto.age.stanza import Stanza

# A test key from the CCTV vectors (public test material, not a secret).
CCTV_IDENTITY = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"
FIXED_RECIPIENT = str(X25519Recipient(bytes(range(32))))


def seal(data: bytes, recipients: list[object], **kw: object) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(data), out, recipients, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def unseal(data: bytes, identities: list[object]) -> bytes:
    out = io.BytesIO()
    decrypt(io.BytesIO(data), out, identities)  # type: ignore[arg-type]
    return out.getvalue()


# --- HKDF (RFC 5869 appendix A, test cases 1 and 3) ---------------------------


def test_hkdf_rfc5869_case_1() -> None:
    okm = hkdf_sha256(b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_rfc5869_case_3_empty_salt_and_info() -> None:
    okm = hkdf_sha256(b"\x0b" * 22, b"", b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


# --- keys ----------------------------------------------------------------------


def test_identity_string_round_trip_and_recipient() -> None:
    identity = parse_identity(CCTV_IDENTITY)
    assert isinstance(identity, X25519Identity)
    assert str(identity) == CCTV_IDENTITY
    assert identity.to_string() == CCTV_IDENTITY
    recipient = identity.recipient
    assert parse_recipient(str(recipient)) == recipient
    assert CCTV_IDENTITY not in repr(identity)


def test_generated_identities_differ_and_open_their_own_files() -> None:
    a, b = X25519Identity.generate(), X25519Identity.generate()
    assert str(a) != str(b)
    sealed = seal(b"hello", [a.recipient])
    assert unseal(sealed, [b, a]) == b"hello"
    with pytest.raises(errors.NoIdentityMatchError):
        unseal(sealed, [b])


def test_recipient_fingerprint_is_sha256_of_the_string() -> None:
    recipient = X25519Identity.generate().recipient
    expected = hashlib.sha256(str(recipient).encode()).hexdigest()
    assert recipient_fingerprint(recipient) == expected


@pytest.mark.parametrize(
    "text",
    [
        "age1",
        CCTV_IDENTITY,
        FIXED_RECIPIENT.upper(),
        # The same string with its last character changed: the checksum fails.
        FIXED_RECIPIENT[:-1] + ("p" if FIXED_RECIPIENT.endswith("q") else "q"),
    ],
)
def test_bad_recipients_are_key_format_errors(text: str) -> None:
    with pytest.raises(errors.KeyFormatError):
        parse_recipient(text)


def test_a_secret_key_given_as_recipient_is_refused_without_echoing_it() -> None:
    with pytest.raises(errors.KeyFormatError, match="secret key") as info:
        parse_recipients_file(f"# oops\n{CCTV_IDENTITY}\n")
    assert CCTV_IDENTITY not in str(info.value)


def test_ssh_recipients_are_unsupported() -> None:
    with pytest.raises(errors.UnsupportedRecipientError):
        parse_recipient("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXU")


def test_recipients_file_skips_comments_and_names_the_bad_line() -> None:
    r1 = str(X25519Identity.generate().recipient)
    r2 = str(X25519Identity.generate().recipient)
    parsed = parse_recipients_file(f"# team\n{r1}\n\n   \n{r2}\n")
    assert [str(r) for r in parsed] == [r1, r2]
    with pytest.raises(errors.KeyFormatError, match="line 3"):
        parse_recipients_file(f"{r1}\n# x\nage1garbage\n")
    with pytest.raises(errors.KeyFormatError):
        parse_recipients_file("# nothing here\n")


def test_identity_file_errors_never_quote_the_line() -> None:
    secret = CCTV_IDENTITY[:-1] + "Q"  # bad checksum, but still secret-looking
    with pytest.raises(errors.KeyFormatError) as info:
        parse_identities_file(f"# key\n{secret}\n")
    assert secret not in str(info.value)
    assert "line 2" in str(info.value)


def test_passphrase_sealed_identity_file() -> None:
    identity = X25519Identity.generate()
    text = f"# public key: {identity.recipient}\n{identity}\n".encode()
    sealed = seal(text, [ScryptRecipient("pw", log_n=10)], armor=True)
    calls = []

    def passphrase() -> str:
        calls.append(1)
        return "pw"

    parsed = parse_identities_file(sealed, passphrase)
    assert [str(i) for i in parsed] == [str(identity)]
    assert calls == [1]
    with pytest.raises(errors.KeyFormatError):
        parse_identities_file(sealed)
    with pytest.raises(errors.NoIdentityMatchError):
        parse_identities_file(sealed, lambda: "wrong")


def test_post_quantum_strings_dispatch_to_the_hybrid_module() -> None:
    hybrid = pytest.importorskip("evidence_intake.crypto.age.mlkem768x25519")
    identity = hybrid.generate_identity()
    assert parse_recipient(str(identity.recipient)) == identity.recipient
    assert str(parse_identity(str(identity))) == str(identity)


# --- recipient rules -----------------------------------------------------------


def test_scrypt_must_be_the_only_recipient() -> None:
    with pytest.raises(errors.RecipientMixError):
        seal(b"x", [ScryptRecipient("pw", log_n=10), X25519Identity.generate().recipient])
    with pytest.raises(errors.RecipientMixError):
        seal(b"x", [ScryptRecipient("pw", log_n=10), ScryptRecipient("pw2", log_n=10)])


def test_post_quantum_and_classical_do_not_mix() -> None:
    hybrid = pytest.importorskip("evidence_intake.crypto.age.mlkem768x25519")
    pq = hybrid.generate_identity().recipient
    with pytest.raises(errors.RecipientMixError, match="post-quantum recipients cannot be mixed"):
        seal(b"x", [X25519Identity.generate().recipient, pq])


def test_no_recipients_is_refused() -> None:
    with pytest.raises(ValueError, match="recipient"):
        seal(b"x", [])


# --- X25519 and scrypt stanzas ------------------------------------------------------


def _x25519_stanza(share: bytes) -> Stanza:
    return Stanza("X25519", (age_format.b64_encode(share),), bytes(32))


@pytest.mark.parametrize("share", [bytes(32), b"\x01" + bytes(31)])
def test_low_order_share_is_a_header_error(share: bytes) -> None:
    with pytest.raises(errors.HeaderError):
        X25519Identity.generate().unwrap([_x25519_stanza(share)])


def test_foreign_stanza_types_are_ignored() -> None:
    assert X25519Identity.generate().unwrap([Stanza("grease", ("x",), b"")]) is None


def test_scrypt_work_factor_is_capped_before_the_kdf() -> None:
    stanza = Stanza("scrypt", (age_format.b64_encode(bytes(16)), "40"), bytes(32))
    start = time.monotonic()
    with pytest.raises(errors.HeaderError):
        ScryptIdentity("pw").unwrap([stanza])
    assert time.monotonic() - start < 1.0


def test_scrypt_round_trip_and_wrong_passphrase() -> None:
    sealed = seal(b"words", [ScryptRecipient("pw", log_n=10)])
    assert b"-> scrypt " in sealed and sealed.split(b"\n")[1].endswith(b" 10")
    assert unseal(sealed, [ScryptIdentity("pw")]) == b"words"
    with pytest.raises(errors.NoIdentityMatchError):
        unseal(sealed, [ScryptIdentity("nope")])


def test_scrypt_identity_respects_a_lower_limit() -> None:
    sealed = seal(b"x", [ScryptRecipient("pw", log_n=12)])
    with pytest.raises(errors.HeaderError):
        unseal(sealed, [ScryptIdentity("pw", max_log_n=11)])


# --- streaming API -----------------------------------------------------------------


def test_open_encryptor_streams_pushed_chunks() -> None:
    identity = X25519Identity.generate()
    data = os.urandom(200_000)
    out = io.BytesIO()
    with open_encryptor(out, [identity.recipient]) as writer:  # type: ignore[arg-type]
        for i in range(0, len(data), 9_999):
            writer.write(data[i : i + 9_999])
    assert unseal(out.getvalue(), [identity]) == data


def test_open_encryptor_armored_and_open_decryptor_reads() -> None:
    identity = X25519Identity.generate()
    out = io.BytesIO()
    with open_encryptor(out, [identity.recipient], armor=True) as writer:  # type: ignore[arg-type]
        writer.write(b"armored statement")
    assert out.getvalue().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    reader = open_decryptor(io.BytesIO(out.getvalue()), [identity])  # type: ignore[arg-type]
    assert reader.read(8) == b"armored "
    assert reader.read() == b"statement"


def test_open_decryptor_raises_header_errors_at_once() -> None:
    identity = X25519Identity.generate()
    sealed = seal(b"x", [X25519Identity.generate().recipient])
    with pytest.raises(errors.NoIdentityMatchError):
        open_decryptor(io.BytesIO(sealed), [identity])  # type: ignore[arg-type]


def test_encryptor_that_raises_leaves_an_unopenable_file() -> None:
    identity = X25519Identity.generate()
    out = io.BytesIO()
    with pytest.raises(RuntimeError), open_encryptor(out, [identity.recipient]) as writer:  # type: ignore[arg-type]
        writer.write(b"partial")
        raise RuntimeError("upload aborted")
    with pytest.raises(errors.PayloadError):
        unseal(out.getvalue(), [identity])


def test_several_recipients_each_open_the_file() -> None:
    identities = [X25519Identity.generate() for _ in range(5)]
    sealed = seal(b"shared", [i.recipient for i in identities])
    assert sealed.count(b"\n-> X25519 ") == 5
    for identity in identities:
        assert unseal(sealed, [identity]) == b"shared"


def test_recipient_equality_and_hash() -> None:
    key = os.urandom(32)
    assert X25519Recipient(key) == X25519Recipient(key)
    assert len({X25519Recipient(key), X25519Recipient(key)}) == 1


# --- armor -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 47, 48, 49, 48 * 1024 + 5])
def test_armor_writer_lines_and_reader_round_trip(size: int) -> None:
    data = os.urandom(size)
    out = io.BytesIO()
    writer = ArmorWriter(out)  # type: ignore[arg-type]
    for i in range(0, size, 1000):
        writer.write(data[i : i + 1000])
    writer.close()
    lines = out.getvalue().split(b"\n")
    assert lines[0] == b"-----BEGIN AGE ENCRYPTED FILE-----"
    assert lines[-2:] == [b"-----END AGE ENCRYPTED FILE-----", b""]
    body = lines[1:-2]
    assert all(len(line) == 64 for line in body[:-1])
    assert all(0 < len(line) <= 64 for line in body)
    reader = io.BufferedReader(ArmorReader(io.BufferedReader(io.BytesIO(out.getvalue()))))
    assert reader.read() == data


def test_armor_reader_rejects_data_after_end() -> None:
    armored = b"-----BEGIN AGE ENCRYPTED FILE-----\nAAAA\n-----END AGE ENCRYPTED FILE-----\nx\n"
    reader = io.BufferedReader(ArmorReader(io.BufferedReader(io.BytesIO(armored))))
    with pytest.raises(errors.ArmorError):
        reader.read()


# Every low-order X25519 encoding (libsodium's list, with the non-canonical ones).
LOW_ORDER_POINTS = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ec" + "ff" * 30 + "7f"),
    bytes.fromhex("ed" + "ff" * 30 + "7f"),
    bytes.fromhex("ee" + "ff" * 30 + "7f"),
]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_low_order_recipient_is_refused_as_a_bad_key(point: bytes) -> None:
    # A planted low-order "investigator key": every file sealed to it would fail
    # (or, without libsodium's check, wrap the file key under a public key). It is
    # refused where it is entered, as a key error, not at sealing time as a
    # misleading header error.
    text = bech32.encode("age", point)
    with pytest.raises(errors.KeyFormatError):
        parse_recipient(text)
    with pytest.raises(errors.KeyFormatError):
        X25519Recipient(point)
