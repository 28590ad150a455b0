"""Properties of minisign signatures (hypothesis).

- sign -> verify returns the trusted comment, for any data and any comment
  minisign can carry;
- any single flipped bit of a signature file is detected, except inside the
  untrusted comment's text, which is unsigned by design (there the result is
  either the same verified comment or a parse error);
- any single flipped bit of the signed data is detected.
"""

from __future__ import annotations

import contextlib
import io

import pytest
from evidence_intake.crypto.errors import SignatureError
from evidence_intake.crypto.minisign import (
    MalformedSignatureError,
    SigningKey,
    verify,
    verify_stream,
)
from hypothesis import given, settings
from hypothesis import strategies as st

KEY = SigningKey.generate()
DATA = b"statement export \x00\x01\xfe\xff" * 40
TRUSTED = "timestamp:1764400000\tfile:bundle.zip\thashed\tမှတ်တမ်း"
UNTRUSTED = "signature from minisign secret key"
SIGNED = KEY.sign(DATA, TRUSTED, UNTRUSTED).encode("utf-8")
# Byte range of the untrusted comment's text (after the prefix, before "\n").
UNTRUSTED_TEXT = range(len("untrusted comment: "), len("untrusted comment: ") + len(UNTRUSTED))

comments = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=5000), trusted=comments, untrusted=comments, legacy=st.booleans())
def test_sign_verify_round_trip(data: bytes, trusted: str, untrusted: str, legacy: bool) -> None:
    text = KEY.sign(data, trusted, untrusted, legacy=legacy)
    assert verify(data, text, KEY.public_key) == trusted
    assert verify_stream(io.BytesIO(data), text, KEY.public_key) == trusted


@settings(max_examples=400, deadline=None)
@given(position=st.integers(0, len(SIGNED) * 8 - 1))
def test_any_flipped_bit_in_the_signature_file_is_detected(position: int) -> None:
    flipped = bytearray(SIGNED)
    flipped[position // 8] ^= 1 << (position % 8)
    # The CLI refuses signature files that are not UTF-8; a library caller
    # might decode leniently, so test that path too (lone surrogates).
    text = bytes(flipped).decode("utf-8", errors="surrogateescape")
    if position // 8 in UNTRUSTED_TEXT:
        with contextlib.suppress(MalformedSignatureError):
            assert verify(DATA, text, KEY.public_key) == TRUSTED
        return
    with pytest.raises(SignatureError):
        verify(DATA, text, KEY.public_key)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(DATA) * 8 - 1), legacy=st.booleans())
def test_any_flipped_bit_in_the_data_is_detected(position: int, legacy: bool) -> None:
    text = KEY.sign(DATA, TRUSTED, legacy=legacy)
    flipped = bytearray(DATA)
    flipped[position // 8] ^= 1 << (position % 8)
    with pytest.raises(SignatureError):
        verify(bytes(flipped), text, KEY.public_key)
