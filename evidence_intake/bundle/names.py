"""Turning attacker-influenced names into safe file names inside the output directory.

An attachment's original name comes from inside the sealed record: it was
typed on the counsellor's machine and is authentic, but it may still hold
path separators, ``..``, control or bidirectional-override characters, a
Windows device name, or be thousands of bytes long. Only a single, plain path
component ever comes out of :func:`safe_filename`, and the caller prefixes
the attachment's index, so two attachments can never collide either.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 200
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{n}" for n in range(10)] + [f"LPT{n}" for n in range(10)])
_REPLACE = re.compile(r'[\\/:*?"<>|]')


def safe_filename(name: str, fallback: str) -> str:
    """A single path component derived from ``name``; ``fallback`` if nothing is left.

    Keeps letters, digits, marks, punctuation and spaces of any script
    (Burmese names stay readable); drops control, format (including bidi
    overrides), surrogate and private-use characters; replaces separators
    and characters Windows forbids with ``_``; never returns ``.``, ``..``,
    a hidden (dot-leading) name or a Windows device name; truncates to
    :data:`MAX_NAME_BYTES` bytes of UTF-8 keeping the extension.
    """
    text = unicodedata.normalize("NFC", name)
    text = "".join(ch for ch in text
                   if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
    text = _REPLACE.sub("_", text).strip(" .")
    if not text:
        return fallback
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    ext = _truncate(ext, 20).strip(" .")
    stem = _truncate(stem, MAX_NAME_BYTES - len(ext.encode("utf-8")) - 2).strip(" .")
    if not stem:
        return fallback
    if stem.split(".")[0].strip().upper() in _RESERVED:
        stem = "_" + stem
    return f"{stem}.{ext}" if ext else stem


def _truncate(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:max(limit, 0)].decode("utf-8", "ignore")
