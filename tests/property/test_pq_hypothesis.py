"""hypothesis: hybrid post-quantum sealing round-trips, and every flipped bit in a
hybrid stanza gives exactly the failure kind the age format's structure implies.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from evidence_intake.crypto import age
from evidence_intake.crypto.age.mlkem768x25519 import HybridIdentity
from evidence_intake.crypto.age.stanza import Identity, Recipient
from evidence_intake.crypto.age.x25519 import X25519Identity
from evidence_intake.crypto.errors import (
    AgeError,
    HeaderError,
    HeaderMACError,
    NoIdentityMatchError,
    RecipientMixError,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

# Fixed test keys (derived from labels, not secret), so failures replay exactly.
PQ = [HybridIdentity(hashlib.sha256(b"pq test key %d" % i).digest()) for i in range(5)]
CLASSICAL = [X25519Identity.generate() for _ in range(5)]

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seal(plaintext: bytes, recipients: list[Recipient], *, armor: bool = False) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(plaintext), out, recipients, armor=armor)
    return out.getvalue()


def _open(sealed: bytes, identities: list[Identity]) -> bytes:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), out, identities)
    return out.getvalue()


# --- round trips --------------------------------------------------------------------------

# Sizes around the 64 KiB STREAM chunk boundary, and small ones.
_SIZES = st.one_of(st.integers(0, 300), st.sampled_from([65535, 65536, 65537, 131072]))


@_SETTINGS
@given(
    kind=st.sampled_from(["postquantum", "classical"]),
    chosen=st.sets(st.integers(0, 4), min_size=1, max_size=5),
    size=_SIZES,
    armor=st.booleans(),
    data=st.data(),
)
def test_round_trip_with_hybrid_or_classical_recipients(
    kind: str, chosen: set[int], size: int, armor: bool, data: st.DataObject
) -> None:
    pool: list[HybridIdentity] | list[X25519Identity] = PQ if kind == "postquantum" else CLASSICAL
    plaintext = data.draw(st.binary(min_size=size, max_size=size)) if size <= 300 else bytes(size)
    order = data.draw(st.permutations(sorted(chosen)))
    sealed = _seal(plaintext, [pool[i].recipient for i in order], armor=armor)
    for i in chosen:
        assert _open(sealed, [pool[i]]) == plaintext
    outsiders = [pool[i] for i in range(5) if i not in chosen]
    if outsiders:
        with pytest.raises(NoIdentityMatchError):
            _open(sealed, outsiders)
    # The other family never opens it, whatever it holds.
    other = CLASSICAL if kind == "postquantum" else PQ
    with pytest.raises(NoIdentityMatchError):
        _open(sealed, list(other))


@_SETTINGS
@given(
    pq=st.sets(st.integers(0, 4), min_size=1, max_size=3),
    classical=st.sets(st.integers(0, 4), min_size=1, max_size=3),
    data=st.data(),
)
def test_mixing_hybrid_with_classical_is_refused(
    pq: set[int], classical: set[int], data: st.DataObject
) -> None:
    recipients: list[Recipient] = [PQ[i].recipient for i in pq]
    recipients += [CLASSICAL[i].recipient for i in classical]
    shuffled = data.draw(st.permutations(recipients))
    out = io.BytesIO()
    with pytest.raises(RecipientMixError):
        age.encrypt(io.BytesIO(b"statement"), out, shuffled)


# --- flipped bits in a hybrid stanza ------------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_INTRO = b"age-encryption.org/v1\n"
_PREFIX = b"-> mlkem768x25519 "  # "->", space, type, space
_ARG_LEN = 1494  # base64 of the 1120-byte enc: its last character holds 2 data bits
_BODY_LEN = 43  # base64 of the 32-byte body: its last character holds 4 data bits
STANZA_LEN = len(_PREFIX) + _ARG_LEN + 1 + _BODY_LEN + 1

MALFORMED, FOREIGN, ALTERED = "malformed", "foreign", "altered"


def _is_vchar(byte: int) -> bool:
    return 0x21 <= byte <= 0x7E


def _canonical_last(char: str, padding_bits: int) -> bool:
    return _B64.index(char) & ((1 << padding_bits) - 1) == 0


def classify_flip(offset: int, new: int) -> str:
    """What a stanza becomes when its byte at ``offset`` is replaced by ``new``.

    * MALFORMED: the header no longer parses, or the stanza is still an
      ``mlkem768x25519`` stanza but breaks its rules (argument count, base64,
      lengths): a header failure for anyone holding a hybrid identity.
    * FOREIGN: it parses but is no longer an ``mlkem768x25519`` stanza
      (a different type string): hybrid identities ignore it.
    * ALTERED: still a well-formed ``mlkem768x25519`` stanza with a different
      ``enc`` or body: its HPKE open fails, so it is no match for its owner.
    """
    type_end = len(_PREFIX) - 1  # offset of the space after the type
    arg_start = len(_PREFIX)
    arg_end = arg_start + _ARG_LEN  # offset of the LF after the argument
    body_start = arg_end + 1
    body_end = body_start + _BODY_LEN  # offset of the final LF
    char = chr(new)
    if offset < 3:
        return MALFORMED  # "-> " is what makes the line a stanza
    if offset < type_end:
        # A different type string, or a byte the header grammar forbids.
        # (No single flip of these letters gives a space or a line feed.)
        return FOREIGN if _is_vchar(new) else MALFORMED
    if offset == type_end:
        # The type swallows the argument: one unknown argument, "mlkem768x25519?…".
        return FOREIGN if _is_vchar(new) else MALFORMED
    if offset < arg_end:
        if char not in _B64:
            return MALFORMED  # not base64, or a space (3 arguments), or a line break
        if offset == arg_end - 1 and not _canonical_last(char, 4):
            return MALFORMED
        return ALTERED
    if offset == arg_end:
        return MALFORMED  # the argument line runs into the body or breaks
    if offset < body_end:
        if char not in _B64:
            return MALFORMED
        if offset == body_end - 1 and not _canonical_last(char, 2):
            return MALFORMED
        return ALTERED
    return MALFORMED  # the final LF: the body line runs into the MAC line


def expected_failure(kind: str, flipped_is_ours: bool) -> type[AgeError]:
    if kind == MALFORMED:
        return HeaderError
    if flipped_is_ours:
        # Our only stanza is gone or no longer opens; nothing else is for us.
        return NoIdentityMatchError
    # Our stanza still opens, but the header MAC covers the altered stanza.
    return HeaderMACError


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 3),
    data=st.data(),
    offset=st.integers(0, STANZA_LEN - 1),
    bit=st.integers(0, 7),
)
def test_any_flipped_bit_in_a_hybrid_stanza_gives_the_right_failure(
    count: int, data: st.DataObject, offset: int, bit: int
) -> None:
    flipped = data.draw(st.integers(0, count - 1), label="flipped stanza")
    opener = data.draw(st.integers(0, count - 1), label="opening identity")
    sealed = bytearray(_seal(b"a statement", [PQ[i].recipient for i in range(count)]))
    start = len(_INTRO) + flipped * STANZA_LEN
    assert bytes(sealed[start : start + len(_PREFIX)]) == _PREFIX
    assert sealed[start + STANZA_LEN - 1 : start + STANZA_LEN] == b"\n"
    sealed[start + offset] ^= 1 << bit

    kind = classify_flip(offset, sealed[start + offset])
    expected = expected_failure(kind, flipped == opener)
    event(f"{kind} -> {expected.__name__}")
    with pytest.raises(expected):
        _open(bytes(sealed), [PQ[opener]])


def test_flip_classifier_covers_every_region() -> None:
    # The oracle above is only as good as its cases; pin one of each by hand.
    assert classify_flip(0, ord(",")) == MALFORMED
    assert classify_flip(3, ord("M")) == FOREIGN  # "Mlkem768x25519", as hybrid_uppercase
    assert classify_flip(3, 0x0D) == MALFORMED
    assert classify_flip(17, ord("!")) == FOREIGN
    assert classify_flip(17, 0x00) == MALFORMED
    assert classify_flip(18, ord("B")) == ALTERED
    assert classify_flip(18, ord("0") ^ 0x10) == MALFORMED  # a space: three arguments
    assert classify_flip(18, ord("J") ^ 0x40) == MALFORMED  # a line feed
    assert classify_flip(18 + 1493, ord("Q")) == ALTERED  # index 16: padding bits clear
    assert classify_flip(18 + 1493, ord("R")) == MALFORMED  # index 17: non-canonical
    assert classify_flip(18 + 1494, ord("*")) == MALFORMED
    assert classify_flip(18 + 1495 + 42, ord("E")) == ALTERED  # index 4: padding bits clear
    assert classify_flip(18 + 1495 + 42, ord("F")) == MALFORMED
    assert classify_flip(STANZA_LEN - 1, ord("J")) == MALFORMED


# Every bit of every structural byte (the prefix, the type, the separators and
# the last base64 character of the argument and of the body), both for the
# stanza's owner and for the holder of the other stanza: no sampling here.
_STRUCTURAL = [*range(len(_PREFIX)), 18 + 1493, 18 + 1494, 18 + 1495 + 42, STANZA_LEN - 1]


@pytest.mark.parametrize("offset", _STRUCTURAL)
def test_every_flip_of_the_structural_bytes(offset: int) -> None:
    pristine = _seal(b"a statement", [PQ[0].recipient, PQ[1].recipient])
    start = len(_INTRO)
    for bit in range(8):
        sealed = bytearray(pristine)
        sealed[start + offset] ^= 1 << bit
        kind = classify_flip(offset, sealed[start + offset])
        for opener in (0, 1):
            with pytest.raises(expected_failure(kind, opener == 0)):
                _open(bytes(sealed), [PQ[opener]])
