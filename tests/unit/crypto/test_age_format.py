"""Header encoding details the CCTV vectors do not pin down on their own."""

from __future__ import annotations

import io

import pytest
from evidence_intake.crypto.age import format as age_format
from evidence_intake.crypto.age.stanza import Stanza
from evidence_intake.crypto.errors import HeaderError

MAC = bytes(range(32))


def test_body_of_48_bytes_ends_with_an_empty_line() -> None:
    encoded = age_format.encode_stanza(Stanza("t", ("a",), bytes(48)))
    lines = encoded.split(b"\n")
    assert lines == [b"-> t a", b"A" * 64, b"", b""]


def test_empty_body_is_one_empty_line() -> None:
    assert age_format.encode_stanza(Stanza("t", (), b"")) == b"-> t\n\n"


def test_round_trip_keeps_stanzas_and_bytes() -> None:
    stanzas = [Stanza("X25519", ("abc",), bytes(32)), Stanza("grease-!~", (), bytes(100))]
    header = age_format.encode(stanzas, MAC)
    src = io.BytesIO(header + b"payload")
    parsed = age_format.parse_unverified(src)  # type: ignore[arg-type]
    assert list(parsed.stanzas) == stanzas
    assert parsed.mac == MAC
    assert parsed.mac_input == age_format.encode_without_mac(stanzas)
    assert src.read() == b"payload"


@pytest.mark.parametrize("text", ["AA==", "AB", "A", "AAA\n", "AA A", "ÄA"])
def test_non_canonical_or_invalid_base64_is_rejected(text: str) -> None:
    # "AB" decodes (to 0x00) only by ignoring set trailing bits.
    with pytest.raises(HeaderError):
        age_format.b64_decode(text)


def test_canonical_base64_is_accepted() -> None:
    assert age_format.b64_decode("AA") == b"\x00"
    assert age_format.b64_decode("") == b""


@pytest.mark.parametrize("arg", ["", "a b", "tab\t", "é"])
def test_encoder_refuses_arguments_the_parser_would_reject(arg: str) -> None:
    with pytest.raises(HeaderError):
        age_format.encode_stanza(Stanza("t", (arg,), b""))


def test_overlong_line_is_refused_without_buffering_it_all() -> None:
    src = io.BytesIO(age_format.INTRO + b"-> " + b"a" * (1 << 20) + b"\n")
    with pytest.raises(HeaderError):
        age_format.parse_unverified(src)  # type: ignore[arg-type]
    # The parser stopped after the line limit instead of reading the whole line.
    assert src.tell() < 100 * 1024


def _mac_line() -> bytes:
    return b"--- " + age_format.b64_encode(MAC).encode("ascii") + b"\n"


def test_endless_stanza_body_cannot_exhaust_memory() -> None:
    # Memory exhaustion: one stanza with 8 MiB of full 64-column body lines. Every
    # line is well-formed, so only a stanza size limit stops the parser early.
    body_line = b"A" * age_format.COLUMNS + b"\n"
    count = (8 << 20) // len(body_line)
    src = io.BytesIO(age_format.INTRO + b"-> X25519 x\n" + body_line * count + b"\n" + _mac_line())
    with pytest.raises(HeaderError, match="stanza exceeds"):
        age_format.parse_unverified(src)  # type: ignore[arg-type]
    assert src.tell() <= age_format.MAX_STANZA_SIZE + 1024


def test_header_of_many_large_stanzas_cannot_exhaust_memory() -> None:
    # Memory exhaustion across stanzas: each stanza is legal on its own (a 60 KiB
    # argument line), but together they pass the 16 MiB header limit.
    stanza = b"-> t " + b"a" * (60 * 1024) + b"\n\n"
    count = age_format.MAX_HEADER_SIZE // len(stanza) + 2
    src = io.BytesIO(age_format.INTRO + stanza * count + _mac_line())
    with pytest.raises(HeaderError, match="header exceeds"):
        age_format.parse_unverified(src)  # type: ignore[arg-type]
    assert src.tell() <= age_format.MAX_HEADER_SIZE + 64 * 1024


def test_header_just_under_the_limits_still_parses() -> None:
    # The limits must not refuse what a real age implementation writes: a stanza
    # of nearly 1 MiB and a header of several of them.
    body = bytes(age_format.BYTES_PER_LINE * ((1 << 20) // 66))
    stanzas = [Stanza("t", ("a",), body) for _ in range(3)]
    encoded = age_format.encode(stanzas, MAC)
    assert max(len(age_format.encode_stanza(s)) for s in stanzas) < age_format.MAX_STANZA_SIZE
    header = age_format.parse_unverified(io.BytesIO(encoded))  # type: ignore[arg-type]
    assert header.stanzas == tuple(stanzas)


def test_header_without_stanzas_is_malformed_not_a_key_mismatch() -> None:
    # Failure-kind confusion: "1*stanza" in the grammar; a header with none must be
    # reported as malformed (as rage does), never as "no identity matched".
    src = io.BytesIO(age_format.INTRO + _mac_line() + bytes(32))
    with pytest.raises(HeaderError, match="no recipient stanza"):
        age_format.parse_unverified(src)  # type: ignore[arg-type]
