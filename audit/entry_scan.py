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
  ``seq`` 0 only with the all-zero ``prev``. The expression takes ``prev``
  as 64 string characters; that they are lower-case hex digits is checked
  after it, for a whole block at once (``bytes.translate``), because the
  regex engine tests a class of two ranges one range at a time, which on
  random hex digits took it half again as long as a class it tests with
  one table lookup.

Lines with escapes, non-ASCII text, 16-digit integers or arrays of objects
take the exact path; they are correct there, only slower.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .entry import Entry

#: Shapes kept per kind; a log with more distinct shapes checks the rest exactly.
MAX_SHAPES = 64

# A character a string may hold as it is: printable ASCII and DEL, but not
# '"' or '\\' - the set [^"\\\x00-\x1f\x80-\xff], written as a positive class:
# the regex engine tests one with a single table lookup, a negated one in two
# steps, and the scan of realistic lines took a quarter less time this way.
_CHAR = rb"[ !#-\[\]-\x7f]"
_STR = rb'"' + _CHAR + rb'*"'
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
_HEX_DIGITS = b"0123456789abcdef"


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
                rb'"actor":"' + _CHAR + rb'{1,200}",'
                rb'"details":(?:' + details + rb'),'
                rb'"prev":"(' + _CHAR + rb'{64})","seq":' + _SEQ + rb','
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
        if found is None or found[1].translate(None, _HEX_DIGITS):
            return None
        return found[1], found[2]

    def match_lines(self, block: bytes, entries: int
                    ) -> tuple[bytes, tuple[bytes, ...]] | None:
        """``(prevs, seqs)`` of the entry lines of ``block``, or None if one is unsure.

        ``prevs`` is every entry's prev, concatenated (64 hex digits each),
        ``seqs`` the digits of each entry's seq. ``block`` is whole lines,
        each ending in a newline, of which ``entries`` are entry lines (the
        others are checkpoint lines, which never match), and may end with
        the start of a line without its newline (which never matches). A
        match starts at a line start and ends at that line's newline (no
        part of the expression matches a newline), so as many matches as
        entry lines means that every entry line matched.
        """
        found: list[tuple[bytes, bytes]] = self._lines.findall(block)
        if len(found) != entries:
            return None
        if not found:
            return b"", ()
        prev_list, seqs = zip(*found, strict=True)
        prevs = b"".join(prev_list)
        if prevs.translate(None, _HEX_DIGITS):
            return None
        return prevs, seqs
