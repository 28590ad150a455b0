"""A byte-level check that entry lines are canonical, without decoding them.

Why it is safe: the exact validator, :meth:`Entry.from_canonical`, decodes a
line and accepts it only if it re-encodes to the same bytes. This scanner
accepts a line only if it fully matches a regular expression that describes
nothing but such bytes, so it accepts a subset of what the exact validator
accepts, and any line it does not match is handed to the exact validator:

* every object key is a literal of the expression, in sorted order, so key
  order and duplicate keys need no check per line. The keys of ``details``
  and ``subject`` come from *shapes* learned from lines the exact validator
  accepted; a shape is re-checked when it is learned (keys sorted, distinct,
  printable ASCII that the encoder writes unescaped);
* a string is printable ASCII (0x20-0x7E and 0x7F) without ``"`` or ``\\``,
  which the canonical encoder writes as it is: no escapes at all, so no
  escape can be a needless one;
* an integer has at most 15 digits (inside +-(2^53-1)), no leading zero and
  no ``-0``; there are no fractions, exponents or whitespace;
* a ``details`` value is one of those scalars, ``true``/``false``/``null``,
  a flat array of them or an object of a learned shape; a ``subject`` value
  is a string;
* the fields match :meth:`Entry.validate`: the action and time patterns,
  an actor of 1 to 200 characters, 64 lower-case hex digits of ``prev``, and
  ``seq`` 0 only with the all-zero ``prev``.

Lines with escapes, non-ASCII text, 16-digit integers or arrays of objects
take the exact path; they are correct there, only slower.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .entry import Entry

#: Shapes kept per kind; a log with more distinct shapes checks the rest exactly.
MAX_SHAPES = 64

_STR = rb'"[^"\\\x00-\x1f\x80-\xff]*"'
_INT = rb"(?:0|-?[1-9][0-9]{0,14})"
_SCALAR = rb"(?:" + _STR + rb"|" + _INT + rb"|true|false|null)"
_ARRAY = rb"\[(?:" + _SCALAR + rb"(?:," + _SCALAR + rb")*)?\]"
_VALUE = rb"(?:" + _SCALAR + rb"|" + _ARRAY + rb")"
_PLAIN_KEY = re.compile(r'[^"\\\x00-\x1f\x80-\U0010ffff]*\Z')
_DIGIT = rb"[0-9]"
_TIME = (_DIGIT + rb"{4}-" + _DIGIT + rb"{2}-" + _DIGIT + rb"{2}T" + _DIGIT + rb"{2}:"
         + _DIGIT + rb"{2}:" + _DIGIT + rb"{2}(?:\." + _DIGIT + rb"{1,9})?Z")
# "seq":0 only right after the all-zero prev (a fixed-width look-behind).
_SEQ = rb'(0(?<=0{64}","seq":0)|[1-9][0-9]{0,14})'
_NOTHING = rb"(?!)"


def _key(key: object) -> bytes | None:
    if not isinstance(key, str) or not _PLAIN_KEY.match(key):
        return None
    return re.escape(b'"' + key.encode("ascii") + b'":')


def _object_shape(value: Mapping[str, object], leaf: bytes | None) -> bytes | None:
    """The expression for objects with ``value``'s keys; ``leaf`` fixes every value's form."""
    parts = []
    # Sorted and distinct (a mapping's keys are): the canonical key order.
    for key in sorted(value):
        literal = _key(key)
        item = leaf if leaf is not None else _value_shape(value[key])
        if literal is None or item is None:
            return None
        parts.append(literal + item)
    return rb"\{" + rb",".join(parts) + rb"\}"


def _value_shape(value: object) -> bytes | None:
    if isinstance(value, Mapping):
        return _object_shape(value, None)
    if isinstance(value, list):
        return _ARRAY if not any(isinstance(v, list | Mapping) for v in value) else None
    return _VALUE


class EntryScanner:
    """Recognises canonical entry lines of the shapes it has learned.

    ``match`` and ``match_lines`` return the ``(prev, seq)`` bytes of lines
    they vouch for, or None: None means "not sure", never "invalid"; the
    caller then asks :meth:`Entry.from_canonical` and may :meth:`learn` the
    entry's shape.
    """

    def __init__(self) -> None:
        self._details: dict[bytes, None] = {}
        self._subjects: dict[bytes, None] = {}
        self._compile()

    def _compile(self) -> None:
        details = b"|".join(self._details) or _NOTHING
        subjects = b"|".join(self._subjects) or _NOTHING
        line = (rb'\{"action":"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+",'
                rb'"actor":"[^"\\\x00-\x1f\x80-\xff]{1,200}",'
                rb'"details":(?:' + details + rb'),'
                rb'"prev":"([0-9a-f]{64})","seq":' + _SEQ + rb','
                rb'"subject":(?:' + subjects + rb'),'
                rb'"time":"' + _TIME + rb'"\}')
        self._line = re.compile(line)
        self._lines = re.compile(rb"^" + line + rb"\n", re.MULTILINE)

    def learn(self, entry: Entry) -> None:
        """Add the shapes of an entry the exact validator accepted."""
        details = _object_shape(entry.details, None)
        subject = _object_shape(entry.subject, _STR)
        added = False
        if details is not None and details not in self._details and (
                len(self._details) < MAX_SHAPES):
            self._details[details] = None
            added = True
        if subject is not None and subject not in self._subjects and (
                len(self._subjects) < MAX_SHAPES):
            self._subjects[subject] = None
            added = True
        if added:
            self._compile()

    def match(self, line: bytes) -> tuple[bytes, bytes] | None:
        """``(prev, seq)`` of one line (no newline) if it is surely canonical."""
        found = self._line.fullmatch(line)
        return None if found is None else (found[1], found[2])

    def match_lines(self, block: bytes, entries: int) -> list[tuple[bytes, bytes]] | None:
        """``(prev, seq)`` of every entry line of ``block``, or None if one is unsure.

        ``block`` is whole lines, each ending in a newline, of which
        ``entries`` are entry lines (the others are checkpoint lines, which
        never match). A match starts at a line start and ends at that line's
        newline (no part of the expression matches a newline), so as many
        matches as entry lines means that every entry line matched.
        """
        found: list[tuple[bytes, bytes]] = self._lines.findall(block)
        return found if len(found) == entries else None
