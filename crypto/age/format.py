"""The age v1 header: strict parsing and canonical encoding.

Threat model: the header is the first thing an attacker controls. Parsing is
strict so that exactly one byte string encodes a given header (no
malleability): every base64 field must be canonical unpadded base64, body
lines are exactly 64 columns except a final shorter one (possibly empty), and
lines end with LF only. Because parsing accepts only canonical encodings,
``encode(parse(h)) == h`` holds for every accepted header, and the header MAC
can be computed over the bytes as read.

This module knows nothing about recipient types, keys or the payload.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import BinaryIO, NamedTuple, Protocol

from ..errors import HeaderError
from .stanza import Stanza

INTRO = b"age-encryption.org/v1\n"
STANZA_PREFIX = b"-> "
MAC_PREFIX = b"---"
COLUMNS = 64
BYTES_PER_LINE = COLUMNS // 4 * 3
MAC_SIZE = 32

# A header line is never longer than this; a longer one is malformed, and the
# limit keeps a hostile header from making us buffer without bound.
_MAX_LINE = 64 * 1024
# And a header has at most this many stanzas (age itself has no limit, but a
# real file has a handful; this keeps memory bounded on hostile input).
_MAX_STANZAS = 4096
# Line and stanza counts alone do not bound memory: one stanza may have any
# number of 64-column body lines. Go's age caps a stanza (argument line and
# body lines, newlines included) at 1 MiB and the whole header at 16 MiB; we
# apply the same limits, so a file one implementation opens the other does too.
MAX_STANZA_SIZE = 1 << 20
MAX_HEADER_SIZE = 16 << 20


def b64_encode(data: bytes) -> str:
    """Unpadded standard base64, as age writes every header field."""
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def b64_decode(text: str) -> bytes:
    """Decode unpadded standard base64, accepting only the canonical encoding.

    Python's decoder tolerates padding, stray characters in some modes and
    non-zero trailing bits; age forbids all of them, so we decode and then
    require that re-encoding gives back exactly the input.
    """
    if not text.isascii() or "=" in text or "\n" in text or "\r" in text:
        raise HeaderError("invalid base64 in header")
    if len(text) % 4 == 1:
        raise HeaderError("invalid base64 length in header")
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise HeaderError("invalid base64 in header") from err
    if b64_encode(data) != text:
        raise HeaderError("non-canonical base64 in header")
    return data


# arbitrary-string = 1*VCHAR (0x21-0x7E) in the spec's ABNF.
_ARGUMENT = re.compile(r"[\x21-\x7e]+")


def _check_argument(arg: str) -> None:
    if _ARGUMENT.fullmatch(arg) is None:
        raise HeaderError("invalid stanza argument")


class Header(NamedTuple):
    """A parsed header: its stanzas, the MAC, and the exact bytes the MAC covers."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes


def encode_stanza(stanza: Stanza) -> bytes:
    """One stanza in canonical form: the ``->`` line, then 64-column body lines.

    The body always ends with a line shorter than 64 columns, which is empty
    when the body's base64 is a multiple of 64 columns long.
    """
    for arg in (stanza.type, *stanza.args):
        _check_argument(arg)
    line = " ".join(("->", stanza.type, *stanza.args)).encode("ascii") + b"\n"
    body = b64_encode(stanza.body).encode("ascii")
    lines = [body[i : i + COLUMNS] for i in range(0, len(body), COLUMNS)]
    if not lines or len(lines[-1]) == COLUMNS:
        lines.append(b"")
    return line + b"".join(chunk + b"\n" for chunk in lines)


def encode_without_mac(stanzas: Sequence[Stanza]) -> bytes:
    """The header bytes the MAC covers: intro, stanzas and ``---`` (no space)."""
    return INTRO + b"".join(encode_stanza(s) for s in stanzas) + MAC_PREFIX


def encode(stanzas: Sequence[Stanza], mac: bytes) -> bytes:
    """The complete header, ending with the MAC line and its newline."""
    return with_mac(encode_without_mac(stanzas), mac)


def with_mac(without_mac: bytes, mac: bytes) -> bytes:
    """The complete header from :func:`encode_without_mac`'s bytes and the MAC over them."""
    if len(mac) != MAC_SIZE:
        raise ValueError("the header MAC is 32 bytes")
    return without_mac + b" " + b64_encode(mac).encode("ascii") + b"\n"


class LineSource(Protocol):
    """A buffered binary stream: the header is read line by line."""

    def readline(self, size: int = -1, /) -> bytes: ...


def _read_line(src: BinaryIO | LineSource) -> bytes:
    """One LF-terminated line, without its LF; a missing LF is a header error."""
    line = src.readline(_MAX_LINE + 1)
    if not line.endswith(b"\n"):
        raise HeaderError("header truncated or line too long")
    return line[:-1]


def _ascii(line: bytes) -> str:
    try:
        return line.decode("ascii")
    except UnicodeDecodeError as err:
        raise HeaderError("non-ASCII byte in header") from err


def parse_unverified(src: BinaryIO | LineSource) -> Header:
    """Read and parse a header from ``src``, leaving ``src`` at the payload nonce.

    The result is *unverified*: its MAC can only be checked once an identity
    has unwrapped the file key. ``src`` must support ``readline(limit)``
    (any ``io.BufferedIOBase``). Raises :class:`HeaderError` on any deviation
    from the canonical encoding.
    """
    raw = bytearray()
    first = src.readline(len(INTRO))
    if first != INTRO:
        raise HeaderError("not an age v1 file (unexpected first line)")
    raw += first
    stanzas: list[Stanza] = []
    while True:
        line = _read_line(src)
        if len(raw) + len(line) + 1 > MAX_HEADER_SIZE:
            raise HeaderError(f"header exceeds the {MAX_HEADER_SIZE}-byte limit")
        if line.startswith(MAC_PREFIX):
            # "--- " followed by exactly one canonical base64 field of 32 bytes.
            parts = _ascii(line).split(" ")
            if parts[0] != "---" or len(parts) != 2:
                raise HeaderError("malformed header MAC line")
            mac = b64_decode(parts[1])
            if len(mac) != MAC_SIZE:
                raise HeaderError("header MAC has the wrong length")
            # The grammar requires one or more stanzas ("1*stanza"); without
            # one the file is malformed, not merely addressed to someone else.
            if not stanzas:
                raise HeaderError("header has no recipient stanza")
            raw += MAC_PREFIX
            return Header(tuple(stanzas), mac, bytes(raw))
        if not line.startswith(STANZA_PREFIX):
            raise HeaderError("header line is neither a stanza nor the MAC")
        if len(stanzas) >= _MAX_STANZAS:
            raise HeaderError("too many stanzas in header")
        raw += line + b"\n"
        stanza_size = len(line) + 1
        args = _ascii(line).split(" ")[1:]
        if not args:
            raise HeaderError("stanza without a type")
        for arg in args:
            _check_argument(arg)
        body = bytearray()
        while True:
            body_line = _read_line(src)
            if len(body_line) > COLUMNS:
                raise HeaderError("stanza body line longer than 64 columns")
            stanza_size += len(body_line) + 1
            if stanza_size > MAX_STANZA_SIZE:
                raise HeaderError(f"stanza exceeds the {MAX_STANZA_SIZE}-byte limit")
            if len(raw) + len(body_line) + 1 > MAX_HEADER_SIZE:
                raise HeaderError(f"header exceeds the {MAX_HEADER_SIZE}-byte limit")
            raw += body_line + b"\n"
            body += b64_decode(_ascii(body_line))
            if len(body_line) < COLUMNS:
                break
        stanzas.append(Stanza(args[0], tuple(args[1:]), bytes(body)))
