"""hypothesis: round-trips, single-bit tampering, and header parse→encode identity."""

from __future__ import annotations

import io
import os
from functools import lru_cache

from evidence_intake.crypto import errors
from evidence_intake.crypto.age import X25519Identity, decrypt, encrypt
from evidence_intake.crypto.age import format as age_format
from evidence_intake.crypto.age.stanza import Stanza
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

C = 64 * 1024
BOUNDARIES = [0, 1, C - 1, C, C + 1, 2 * C - 1, 2 * C, 2 * C + 1, 3 * C]
FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@lru_cache(maxsize=1)
def identities() -> tuple[X25519Identity, ...]:
    return tuple(X25519Identity.generate() for _ in range(6))


@lru_cache(maxsize=4)
def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def seal(data: bytes, count: int, armor: bool = False) -> bytes:
    out = io.BytesIO()
    recipients = [i.recipient for i in identities()[:count]]
    encrypt(io.BytesIO(data), out, recipients, armor=armor)  # type: ignore[arg-type]
    return out.getvalue()


def unseal(data: bytes, identity: X25519Identity) -> bytes:
    out = io.BytesIO()
    decrypt(io.BytesIO(data), out, [identity])  # type: ignore[arg-type]
    return out.getvalue()


sizes = st.one_of(
    st.sampled_from(BOUNDARIES),
    st.builds(lambda b, d: max(0, b + d), st.sampled_from(BOUNDARIES), st.integers(-3, 3)),
    st.integers(0, 3 * C + 10),
)


@FAST
@given(size=sizes, count=st.integers(1, 6), which=st.integers(0, 5), armor=st.booleans())
def test_seal_open_round_trip(size: int, count: int, which: int, armor: bool) -> None:
    data = random_bytes(3 * C + 10)[:size]
    sealed = seal(data, count, armor)
    assert unseal(sealed, identities()[which % count]) == data
    if count < 6:
        # Someone not among the recipients cannot open it.
        try:
            unseal(sealed, identities()[5])
        except errors.NoIdentityMatchError:
            pass
        else:
            raise AssertionError("a non-recipient opened the file")


@lru_cache(maxsize=8)
def sample_file(size: int, count: int) -> bytes:
    return seal(random_bytes(2 * C + 50)[:size], count)


@FAST
@given(
    size=st.sampled_from([0, 100, C, C + 3]),
    count=st.integers(1, 3),
    data=st.data(),
)
def test_any_single_flipped_bit_is_detected_with_the_right_kind(
    size: int, count: int, data: st.DataObject
) -> None:
    sealed = sample_file(size, count)
    mac_line = sealed.index(b"\n---") + 1
    payload = sealed.index(b"\n", mac_line) + 1
    position = data.draw(st.integers(0, len(sealed) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = bytearray(sealed)
    tampered[position] ^= 1 << bit
    expected: tuple[type[errors.AgeError], ...]
    if position < mac_line:
        # Intro and stanzas: unparseable, no longer ours, or caught by the MAC.
        expected = (errors.HeaderError, errors.NoIdentityMatchError, errors.HeaderMACError)
    elif position < payload:
        expected = (errors.HeaderError, errors.HeaderMACError)
    else:
        # Payload nonce or a chunk: the payload key or a tag changes.
        expected = (errors.PayloadError,)
    try:
        unseal(bytes(tampered), identities()[0])
    except expected:
        return
    raise AssertionError(f"bit {bit} of byte {position} flipped without detection")


vchar = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
stanzas = st.lists(
    st.builds(
        Stanza,
        type=vchar,
        args=st.lists(vchar, max_size=4).map(tuple),
        body=st.binary(max_size=200),
    ),
    min_size=1,  # the grammar's "1*stanza": a header without one is malformed
    max_size=5,
)


@FAST
@given(stanzas=stanzas, mac=st.binary(min_size=32, max_size=32))
def test_header_encode_parse_encode_is_identity(stanzas: list[Stanza], mac: bytes) -> None:
    encoded = age_format.encode(stanzas, mac)
    parsed = age_format.parse_unverified(io.BytesIO(encoded))  # type: ignore[arg-type]
    assert list(parsed.stanzas) == stanzas
    assert parsed.mac == mac
    assert age_format.encode(parsed.stanzas, parsed.mac) == encoded


@FAST
@given(
    stanzas=stanzas,
    position=st.integers(0, 10_000),
    replacement=st.integers(0, 255),
)
def test_a_mutated_header_parses_only_to_its_own_encoding(
    stanzas: list[Stanza], position: int, replacement: int
) -> None:
    """Strictness: any header the parser accepts re-encodes to exactly its bytes."""
    encoded = bytearray(age_format.encode(stanzas, bytes(32)))
    encoded[position % len(encoded)] = replacement
    src = io.BytesIO(bytes(encoded))
    try:
        parsed = age_format.parse_unverified(src)  # type: ignore[arg-type]
    except errors.HeaderError:
        return
    consumed = bytes(encoded[: src.tell()])
    assert age_format.encode(parsed.stanzas, parsed.mac) == consumed
