"""Text-level helpers shared by the minisign key and signature files.

Every minisign file is a few lines of text: comment lines with a fixed prefix,
and lines of standard (RFC 4648, padded) base64. We read them strictly:
only canonical base64 is accepted (Python's decoder alone tolerates set
trailing bits), and comments may not contain the characters that C
implementations treat as line or string ends.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "

# minisign reads a comment line with fgets() into a 1024-byte buffer (prefix,
# text, newline and the terminating NUL), and a trusted comment line into an
# 8192-byte one; longer lines are cut and fail. These are the text lengths
# (UTF-8 bytes, without prefix and newline) that fit.
MAX_UNTRUSTED_COMMENT_BYTES = 1024 - len(UNTRUSTED_PREFIX) - 2
MAX_TRUSTED_COMMENT_BYTES = 8192 - len(TRUSTED_PREFIX) - 2

ErrorFactory = Callable[[str], Exception]


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode_exact(text: str, length: int, what: str, error: ErrorFactory) -> bytes:
    """Decode canonical padded base64 of exactly ``length`` bytes, or raise ``error``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as err:
        raise error(f"{what} is not valid base64") from err
    # Re-encoding rejects the non-canonical forms (non-zero trailing bits)
    # that b64decode accepts, so one value has exactly one text form.
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what} is not canonical base64")
    if len(raw) != length:
        raise error(f"{what} has {len(raw)} bytes, expected {length}")
    return raw


def split_lines(text: str, count: int, what: str, error: ErrorFactory) -> list[str]:
    """Split ``text`` into exactly ``count`` lines.

    Lines end in LF or CRLF; the last line's newline is optional. Anything
    after the expected lines, other than the final newline, is refused: a
    signature or key file with extra content is not one minisign wrote.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != count:
        raise error(f"{what} must have {count} lines, found {len(lines)}")
    stripped = [line[:-1] if line.endswith("\r") else line for line in lines]
    for line in stripped:
        if "\r" in line or "\x00" in line:
            raise error(f"{what} contains a stray carriage return or NUL character")
    return stripped


def strip_prefix(line: str, prefix: str, what: str, error: ErrorFactory) -> str:
    if not line.startswith(prefix):
        raise error(f"{what} must start with {prefix.strip()!r}")
    return line[len(prefix) :]


def check_comment(comment: str, limit: int, what: str) -> bytes:
    """Validate a comment we are about to write; return its UTF-8 bytes.

    Raises ``ValueError`` (a caller's mistake, not a crypto failure) for line
    breaks or NUL, which would split or truncate the line in minisign, and for
    text longer than minisign can read back.
    """
    if any(ch in comment for ch in "\r\n\x00"):
        raise ValueError(f"the {what} must be one line without NUL characters")
    encoded = comment.encode("utf-8")
    if len(encoded) > limit:
        raise ValueError(f"the {what} is {len(encoded)} bytes; minisign reads at most {limit}")
    return encoded
