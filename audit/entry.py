"""One audit-log entry and its canonical byte encoding.

Threat model: the entry bytes are what the hash chain and the Merkle tree
commit to, so two honest implementations must produce the same bytes for the
same entry, and one byte string must never be read as two different entries.
The encoding is therefore canonical and strict (docs/formats/audit-log.md):

* a JSON object with exactly the keys ``action actor details prev seq subject
  time``, keys sorted, no insignificant whitespace, UTF-8;
* strings escape only ``"``, ``\\`` and U+0000..U+001F (``\\b \\t \\n \\f \\r``
  short forms, otherwise ``\\u00xx`` in lower case); everything else,
  including U+007F and non-ASCII, is written as raw UTF-8;
* numbers are integers in the interoperable range -(2^53-1)..2^53-1, written
  in decimal without sign for non-negatives, no fraction or exponent;
* object keys are ASCII, so code-point order and UTF-16 order agree; with
  these restrictions the encoding is exactly RFC 8785 (JCS).

Parsing accepts only bytes that re-encode to themselves, which also rules out
duplicate keys, BOMs, whitespace and escaped non-ASCII.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import EntryFormatError

#: ``prev`` of the first entry: no predecessor.
GENESIS_PREV = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1
ENTRY_KEYS = frozenset({"action", "actor", "details", "prev", "seq", "subject", "time"})

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z\Z")
_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)

JSONValue = Any  # None | bool | int | str | list[JSONValue] | dict[str, JSONValue]


def encode_canonical(value: object) -> bytes:
    """The canonical bytes of an already validated JSON value."""
    return _ENCODER.encode(value).encode("utf-8")


def _check_json(value: object, path: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise EntryFormatError(f"{path}: integer outside +-(2^53-1)")
        return
    if isinstance(value, str):
        _check_str(value, path)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise EntryFormatError(f"{path}: object keys must be ASCII strings")
            _check_json(item, f"{path}.{key}")
        return
    raise EntryFormatError(f"{path}: {type(value).__name__} is not allowed (no floats)")


def _check_str(value: str, path: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise EntryFormatError(f"{path}: lone surrogate in string") from err


@dataclass(frozen=True, slots=True)
class Entry:
    """An audit-log entry. Nothing secret or identifying about a witness goes here.

    ``subject`` maps a kind to an opaque id (``{"statement": "st_..."}``);
    ``details`` holds non-secret facts: sizes, SHA-256 digests, fingerprints.
    """

    seq: int
    time: str
    actor: str
    action: str
    subject: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, JSONValue] = field(default_factory=dict)
    prev: str = GENESIS_PREV

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`EntryFormatError` unless every field is well formed."""
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or not (
            0 <= self.seq <= MAX_SAFE_INTEGER
        ):
            raise EntryFormatError("seq must be an integer 0..2^53-1")
        if not isinstance(self.time, str) or not _TIME.match(self.time):
            raise EntryFormatError("time must be RFC 3339 UTC, e.g. 2026-01-02T03:04:05.123456Z")
        if not isinstance(self.actor, str) or not self.actor or len(self.actor) > 200:
            raise EntryFormatError("actor must be a non-empty account id")
        _check_str(self.actor, "actor")
        if not isinstance(self.action, str) or not _ACTION.match(self.action):
            raise EntryFormatError("action must look like 'statement.sealed'")
        if not isinstance(self.subject, Mapping) or not all(
            isinstance(k, str) and k.isascii() and isinstance(v, str)
            for k, v in self.subject.items()
        ):
            raise EntryFormatError("subject must map ASCII kinds to id strings")
        for value in self.subject.values():
            _check_str(value, "subject")
        if not isinstance(self.details, Mapping):
            raise EntryFormatError("details must be an object")
        _check_json(dict(self.details), "details")
        if not isinstance(self.prev, str) or not _HEX64.match(self.prev):
            raise EntryFormatError("prev must be 64 lower-case hex digits")
        if self.seq == 0 and self.prev != GENESIS_PREV:
            raise EntryFormatError("entry 0 must have the all-zero prev")

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "action": self.action,
            "actor": self.actor,
            "details": dict(self.details),
            "prev": self.prev,
            "seq": self.seq,
            "subject": dict(self.subject),
            "time": self.time,
        }

    def canonical_bytes(self) -> bytes:
        """The exact bytes every hash of this entry is computed over."""
        return encode_canonical(self.to_json())

    def entry_hash(self) -> bytes:
        """SHA-256 of the canonical bytes: the next entry's ``prev``."""
        return hashlib.sha256(self.canonical_bytes()).digest()

    def leaf_hash(self) -> bytes:
        """The RFC 9162 leaf hash of this entry: SHA-256(0x00 || canonical bytes)."""
        return hashlib.sha256(b"\x00" + self.canonical_bytes()).digest()

    @classmethod
    def from_json(cls, obj: object) -> Entry:
        """Build an entry from a decoded JSON object, checking its key set."""
        if not isinstance(obj, dict):
            raise EntryFormatError("an entry must be a JSON object")
        if obj.keys() != ENTRY_KEYS:
            missing = sorted(ENTRY_KEYS - obj.keys())
            extra = sorted(obj.keys() - ENTRY_KEYS)
            raise EntryFormatError(f"wrong keys (missing {missing}, unexpected {extra})")
        return cls(
            seq=obj["seq"], time=obj["time"], actor=obj["actor"], action=obj["action"],
            subject=obj["subject"], details=obj["details"], prev=obj["prev"],
        )

    @classmethod
    def from_canonical(cls, data: bytes) -> Entry:
        """Parse canonical bytes; anything that does not re-encode identically is refused."""
        try:
            obj = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as err:
            raise EntryFormatError(f"not UTF-8 JSON: {err}") from err
        entry = cls.from_json(obj)
        if entry.canonical_bytes() != data:
            raise EntryFormatError("not in canonical form (key order, spacing or escaping)")
        return entry


def _refuse_constant(name: str) -> None:
    raise EntryFormatError(f"{name} is not allowed")
