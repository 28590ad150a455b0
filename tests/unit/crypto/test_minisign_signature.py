"""minisign signatures: every tampering fails with its own error class."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import pytest
from evidence_intake.crypto.errors import SignatureError
from evidence_intake.crypto.minisign import (
    KeyIdMismatchError,
    LegacySignatureError,
    MalformedSignatureError,
    PublicKey,
    SigningKey,
    TrustedCommentError,
    parse_unverified_signature,
    verify,
    verify_stream,
)
from evidence_intake.crypto.minisign.encoding import (
    MAX_TRUSTED_COMMENT_BYTES,
    MAX_UNTRUSTED_COMMENT_BYTES,
)

DATA = b"bundle manifest\x00\xff" * 100
COMMENT = "timestamp:1764400000\tfile:bundle.zip\thashed\tသက်သေ"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def signed(key: SigningKey) -> str:
    return key.sign(DATA, COMMENT)


def _raises_exactly(kind: type[Exception], call: Callable[[], object]) -> None:
    """``call`` raises ``kind`` itself, not a more specific subclass."""
    with pytest.raises(kind) as caught:
        call()
    assert type(caught.value) is kind, f"{type(caught.value).__name__}: {caught.value}"


def _replace_line(text: str, index: int, line: str) -> str:
    lines = text.splitlines()
    lines[index] = line
    return "\n".join(lines) + "\n"


def _flip_in_b64_line(text: str, index: int, byte: int) -> str:
    raw = bytearray(base64.b64decode(text.splitlines()[index]))
    raw[byte] ^= 0x01
    return _replace_line(text, index, base64.b64encode(raw).decode())


# -- what verifies -------------------------------------------------------------


def test_sign_then_verify_returns_the_trusted_comment(key: SigningKey, signed: str) -> None:
    assert verify(DATA, signed, key.public_key) == COMMENT
    assert verify_stream(io.BytesIO(DATA), signed, key.public_key) == COMMENT
    parsed = parse_unverified_signature(signed)
    assert parsed.prehashed
    assert parsed.key_id == key.key_id
    assert parsed.untrusted_comment == "signature from minisign secret key"


def test_signature_file_layout(key: SigningKey, signed: str) -> None:
    lines = signed.split("\n")
    assert lines[0] == "untrusted comment: signature from minisign secret key"
    assert base64.b64decode(lines[1])[:10] == b"ED" + key.key_id
    assert lines[2] == f"trusted comment: {COMMENT}"
    assert len(base64.b64decode(lines[3])) == 64
    assert lines[4] == ""
    assert len(lines) == 5


def test_sign_stream_equals_sign_across_chunk_boundaries(key: SigningKey) -> None:
    data = bytes(range(256)) * (3 * 4096 + 17)  # a little over 3 MiB
    assert key.sign_stream(io.BytesIO(data), "c") == key.sign(data, "c")


def test_empty_file_and_empty_comment_sign_and_verify(key: SigningKey) -> None:
    text = key.sign(b"", "")
    assert verify(b"", text, key.public_key) == ""


def test_untrusted_comment_may_change_without_breaking_the_signature(
    key: SigningKey, signed: str
) -> None:
    edited = _replace_line(signed, 0, "untrusted comment: anyone can edit this line")
    assert verify(DATA, edited, key.public_key) == COMMENT


def test_crlf_signature_file_verifies(key: SigningKey, signed: str) -> None:
    assert verify(DATA, signed.replace("\n", "\r\n"), key.public_key) == COMMENT


def test_signature_file_without_final_newline_verifies(key: SigningKey, signed: str) -> None:
    assert verify(DATA, signed.rstrip("\n"), key.public_key) == COMMENT


# -- tampering -----------------------------------------------------------------


def test_tampered_file_fails(key: SigningKey, signed: str) -> None:
    tampered = bytearray(DATA)
    tampered[500] ^= 0x20
    _raises_exactly(SignatureError, lambda: verify(bytes(tampered), signed, key.public_key))
    _raises_exactly(SignatureError, lambda: verify(DATA + b"\n", signed, key.public_key))
    _raises_exactly(
        SignatureError, lambda: verify_stream(io.BytesIO(DATA[:-1]), signed, key.public_key)
    )


def test_tampered_signature_fails(key: SigningKey, signed: str) -> None:
    for byte in (10, 40, 73):
        bad = _flip_in_b64_line(signed, 1, byte)
        _raises_exactly(SignatureError, lambda bad=bad: verify(DATA, bad, key.public_key))


def test_tampered_trusted_comment_fails(key: SigningKey, signed: str) -> None:
    forged = _replace_line(signed, 2, "trusted comment: timestamp:1000000000\tfile:other.zip")
    _raises_exactly(TrustedCommentError, lambda: verify(DATA, forged, key.public_key))


def test_trusted_comment_from_another_signature_fails(key: SigningKey, signed: str) -> None:
    """Swapping in a validly signed comment+global signature of another signature."""
    other = key.sign(b"another file", "release for ICC OTP")
    spliced = "\n".join(signed.splitlines()[:2] + other.splitlines()[2:]) + "\n"
    _raises_exactly(TrustedCommentError, lambda: verify(DATA, spliced, key.public_key))


def test_tampered_global_signature_fails(key: SigningKey, signed: str) -> None:
    bad = _flip_in_b64_line(signed, 3, 5)
    _raises_exactly(TrustedCommentError, lambda: verify(DATA, bad, key.public_key))


def test_signature_by_another_key_is_a_key_id_mismatch(key: SigningKey, signed: str) -> None:
    other = SigningKey.generate().public_key
    with pytest.raises(KeyIdMismatchError) as caught:
        verify(DATA, signed, other)
    assert caught.value.signature_key_id == key.key_id
    assert caught.value.public_key_id == other.key_id
    assert key.public_key.fingerprint in str(caught.value)


def test_another_key_claiming_our_key_id_fails_the_signature_check(
    key: SigningKey, signed: str
) -> None:
    """An attacker's key relabelled with our key id gets past the id check, not further."""
    impostor = SigningKey(key.key_id, bytes(32))
    forged = impostor.sign(DATA, COMMENT)
    _raises_exactly(SignatureError, lambda: verify(DATA, forged, key.public_key))
    relabelled = PublicKey(key.key_id, impostor.public_key.ed25519_bytes)
    _raises_exactly(SignatureError, lambda: verify(DATA, signed, relabelled))


# -- legacy (Ed) signatures ------------------------------------------------------


def test_legacy_signature_verifies_unless_prehashing_is_required(key: SigningKey) -> None:
    text = key.sign(DATA, "legacy", legacy=True)
    assert base64.b64decode(text.splitlines()[1])[:2] == b"Ed"
    assert verify(DATA, text, key.public_key) == "legacy"
    assert verify_stream(io.BytesIO(DATA), text, key.public_key) == "legacy"
    with pytest.raises(LegacySignatureError):
        verify(DATA, text, key.public_key, allow_legacy=False)
    with pytest.raises(LegacySignatureError):
        verify_stream(io.BytesIO(DATA), text, key.public_key, allow_legacy=False)


@pytest.mark.parametrize(("source", "target"), [(b"ED", b"Ed"), (b"Ed", b"ED")])
def test_switching_the_algorithm_bytes_fails(
    key: SigningKey, source: bytes, target: bytes
) -> None:
    text = key.sign(DATA, "c", legacy=source == b"Ed")
    raw = bytearray(base64.b64decode(text.splitlines()[1]))
    raw[0:2] = target
    switched = _replace_line(text, 1, base64.b64encode(raw).decode())
    _raises_exactly(SignatureError, lambda: verify(DATA, switched, key.public_key))


# -- malformed signature files -----------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "",
        lambda t: "\n".join(t.splitlines()[:3]) + "\n",  # global signature missing
        lambda t: t + "one more line\n",
        lambda t: t.replace("untrusted comment: ", "untrusted: ", 1),
        lambda t: _replace_line(t, 2, t.splitlines()[2].replace("trusted comment: ", "trusted: ")),
        lambda t: _replace_line(t, 1, t.splitlines()[1][:-4]),
        lambda t: _replace_line(t, 1, t.splitlines()[1].replace("=", "")),
        lambda t: _replace_line(t, 3, t.splitlines()[3] + "AAAA"),
        lambda t: _replace_line(t, 3, " " + t.splitlines()[3]),
        lambda t: _replace_line(t, 2, "trusted comment: a\rb"),
        lambda t: _replace_line(t, 2, "trusted comment: a\x00b"),
        lambda t: _replace_line(t, 2, "trusted comment: \udcff"),
        lambda t: _replace_line(t, 0, "untrusted comment: " + "u" * 1004),
        lambda t: _replace_line(t, 2, "trusted comment: " + "t" * 8174),
    ],
)
def test_malformed_signature_files_are_refused(
    key: SigningKey, signed: str, mangle: Callable[[str], str]
) -> None:
    with pytest.raises(MalformedSignatureError):
        verify(DATA, mangle(signed), key.public_key)


def test_unknown_signature_algorithm_is_refused(key: SigningKey, signed: str) -> None:
    raw = bytearray(base64.b64decode(signed.splitlines()[1]))
    raw[0:2] = b"Xx"
    text = _replace_line(signed, 1, base64.b64encode(raw).decode())
    with pytest.raises(MalformedSignatureError, match="algorithm"):
        verify(DATA, text, key.public_key)


def test_non_canonical_base64_signature_is_refused(key: SigningKey, signed: str) -> None:
    line = signed.splitlines()[3]  # 64 bytes: two unused bits before "=="
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert line.endswith("==")
    bent = line[:-3] + alphabet[alphabet.index(line[-3]) | 1] + "=="
    assert base64.b64decode(bent) == base64.b64decode(line)
    with pytest.raises(MalformedSignatureError, match="canonical"):
        verify(DATA, _replace_line(signed, 3, bent), key.public_key)


# -- comments we refuse to write -----------------------------------------------------


@pytest.mark.parametrize("comment", ["two\nlines", "carriage\rreturn", "nul\x00", "t" * 8174])
def test_trusted_comments_minisign_cannot_read_back_are_refused(
    key: SigningKey, comment: str
) -> None:
    with pytest.raises(ValueError, match="trusted comment"):
        key.sign(DATA, comment)


@pytest.mark.parametrize("comment", ["two\nlines", "u" * 1004])
def test_untrusted_comments_minisign_cannot_read_back_are_refused(
    key: SigningKey, comment: str
) -> None:
    with pytest.raises(ValueError, match="untrusted comment"):
        key.sign(DATA, "ok", comment)


def test_longest_comments_minisign_reads_are_accepted(key: SigningKey) -> None:
    trusted = "t" * MAX_TRUSTED_COMMENT_BYTES
    text = key.sign(DATA, trusted, "u" * MAX_UNTRUSTED_COMMENT_BYTES)
    assert verify(DATA, text, key.public_key) == trusted
    assert (MAX_TRUSTED_COMMENT_BYTES, MAX_UNTRUSTED_COMMENT_BYTES) == (8173, 1003)


def test_nonblocking_input_never_signs_a_truncated_prefix(key: SigningKey) -> None:
    # Silent truncation: a would-block answer (None) from a slow non-blocking pipe
    # taken for end of file would sign only the prefix read so far.
    import os
    import threading
    import time

    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as out:
            out.write(DATA[:100])
            out.flush()
            time.sleep(0.2)
            out.write(DATA[100:])

    thread = threading.Thread(target=produce)
    thread.start()
    with os.fdopen(read_fd, "rb") as src:
        text = key.sign_stream(src, COMMENT)
    thread.join()
    assert verify(DATA, text, key.public_key) == COMMENT
