"""The verifier's byte-level fast path (EntryScanner) against the exact validator.

The scanner may refuse what the exact validator accepts (the verifier then
asks the exact validator), but it must never accept a line the exact
validator refuses, and what it reads from a line (prev, seq) must be what
the exact validator reads. The tests compare the two on fixed tamper cases,
on random entries and on random mutations of them.
"""

from __future__ import annotations

import json
import re
import string

import pytest
from evidence_intake.audit import entry_scan
from evidence_intake.audit.entry import MAX_SAFE_INTEGER, Entry
from evidence_intake.audit.entry_scan import MAX_SHAPES, EntryScanner
from evidence_intake.audit.errors import EntryFormatError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

BASE = {"action": "a.b", "actor": "x", "details": {}, "prev": "0" * 64, "seq": 0,
        "subject": {}, "time": "2026-11-29T12:00:00Z"}
HEX = "0123456789abcdef"


def canonical(obj: dict[str, object]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def exact(line: bytes) -> tuple[bytes, bytes] | None:
    """What the exact validator reads from a line, or None if it refuses it."""
    try:
        entry = Entry.from_canonical(line)
    except EntryFormatError:
        return None
    return entry.prev.encode(), str(entry.seq).encode()


def scanner_for(*objs: dict[str, object]) -> EntryScanner:
    """A scanner that learned the shapes of these entries (each must be valid)."""
    scanner = EntryScanner()
    for obj in objs:
        scanner.learn(Entry.from_canonical(canonical(obj)))
    return scanner


@pytest.mark.parametrize("change", [
    {"time": "2026-11-29T12:00:00Z\n2026-11-29T12:00:00Z"},
    {"action": "a.b\nc.d"},
    {"seq": True},
    {"seq": -1},
    {"seq": 1, "prev": "1" * 64},  # fine, but not ...
    {"prev": "1" + "0" * 63},  # ... a non-zero prev at seq 0
    # prev is matched as 64 plain characters and then held to lower-case hex:
    {"seq": 1, "prev": "A" * 64},
    {"seq": 1, "prev": "ab" * 31 + "aG"},
    {"seq": 1, "prev": " " * 64},
    {"seq": 1, "prev": "0" * 63 + "x"},
    {"seq": 1, "prev": "0" * 63},
    {"seq": 1, "prev": "0" * 65},
    {"actor": ""},
    {"actor": "a" * 201},
    {"actor": 7},
    {"subject": {"a": 1}},
    {"subject": []},
    {"details": []},
    {"time": 5},
    {"action": "A.b"},
    {"details": {"x": 1.5}},
    {"details": {"x": 2**60}},
    {"details": {"x": -(2**60)}},
    {"details": {"x": 2**53}},
    {"details": {"x": [1, 2**53]}},
    {"details": {"x": {"y": -(2**60)}}},
    {"extra": 1},
])
def test_scanner_refuses_what_the_exact_validator_refuses(change: dict[str, object]) -> None:
    line = canonical({**BASE, **change})
    shapes = [BASE, {**BASE, "details": {"x": 1}}, {**BASE, "details": {"x": {"y": 1}}},
              {**BASE, "subject": {"a": "b"}}]
    scanner = scanner_for(*shapes)
    if exact(line) is None:
        assert scanner.match(line) is None
        assert scanner.match_lines(line + b"\n", 1) is None
    else:
        assert scanner.match(line) == exact(line)


@pytest.mark.parametrize("mangle", [
    lambda line: line.replace(b'","', b'", "', 1),  # whitespace
    lambda line: line.replace(b'"x":1', b'"x":1.0', 1),  # float
    lambda line: line.replace(b'"x":1', b'"x":1e0', 1),  # exponent
    lambda line: line.replace(b'"x":1', b'"x":01', 1),  # leading zero
    lambda line: line.replace(b'"x":1', b'"x":-0', 1),  # negative zero
    lambda line: b'{"seq":0,' + line[1:],  # duplicate key
    lambda line: line.replace(b'"actor":"x"', b'"actor":"x","actor":"x"'),  # duplicate key
    lambda line: line.replace(b'"actor":"x"', b'"actor":"\\u0078"'),  # needless escape
    lambda line: line.replace(b'"actor":"x"', b'"actor":"x\\/"'),  # needless escape
    lambda line: line.replace(b'"actor":"x"', b'"actor":"x\x01"'),  # raw control character
    lambda line: line.replace(b'"actor":"x"', b'"actor":"x\xc3"'),  # not UTF-8
    lambda line: b"\xef\xbb\xbf" + line,  # byte order mark
    lambda line: line + b" ",  # trailing space
    lambda line: line.replace(b'"action":"a.b","actor":"x"', b'"actor":"x","action":"a.b"'),
    lambda line: line.replace(b'{"x":1}', b'{"x":1,"x":1}'),  # duplicate nested key
    lambda line: line.replace(b'"x":1', b'"x":NaN'),
    lambda line: line.replace(b'"x":1', b'"x":Infinity'),
    lambda line: line.replace(b'"x":1', b'"x":"\\ud800"'),  # lone surrogate
])
def test_scanner_refuses_non_canonical_forms(mangle) -> None:  # type: ignore[no-untyped-def]
    good = {**BASE, "details": {"x": 1}}
    line = canonical(good)
    scanner = scanner_for(good)
    assert scanner.match(line) == exact(line)
    bad = mangle(line)
    assert bad != line
    assert exact(bad) is None
    assert scanner.match(bad) is None


def test_the_plain_string_character_class_is_exactly_the_specified_set() -> None:
    # Printable ASCII and DEL without '"' and '\\': what the canonical encoder
    # writes unescaped and the module docstring promises.
    string = re.compile(entry_scan._STR)
    for byte in range(256):
        allowed = 0x20 <= byte <= 0x7F and byte not in b'"\\'
        assert bool(string.fullmatch(b'"' + bytes([byte]) + b'"')) is allowed, byte


def test_a_block_with_one_prev_that_is_not_lower_case_hex_is_not_vouched_for() -> None:
    scanner = scanner_for(BASE)
    good = canonical({**BASE, "seq": 1, "prev": "ab" * 32})
    bad = canonical({**BASE, "seq": 1, "prev": "AB" * 32})
    assert scanner.match(good) == exact(good)
    assert scanner.match(bad) is None and exact(bad) is None
    assert scanner.match_lines(good + b"\n" + good + b"\n", 2) is not None
    assert scanner.match_lines(good + b"\n" + bad + b"\n", 2) is None


def test_scanner_needs_a_learned_shape_and_keeps_a_bounded_number() -> None:
    line = canonical({**BASE, "details": {"size": 1}})
    scanner = EntryScanner()
    assert scanner.match(line) is None  # unknown shape: not sure, the exact path decides
    scanner.learn(Entry.from_canonical(line))
    assert scanner.match(line) == (b"0" * 64, b"0")
    for i in range(MAX_SHAPES + 5):
        scanner.learn(Entry.from_canonical(canonical({**BASE, "details": {f"k{i:03d}": 1}})))
    late = canonical({**BASE, "details": {f"k{MAX_SHAPES + 3:03d}": 1}})
    assert scanner.match(late) is None
    assert exact(late) is not None


def test_shapes_with_escapes_or_non_ascii_keys_are_not_learned() -> None:
    for details in [{"a\"b": 1}, {"a\\": 1}, {"x": [{"y": 1}]}, {"x": [[1]]}]:
        line = canonical({**BASE, "details": details})
        scanner = scanner_for({**BASE, "details": details})
        assert scanner.match(line) is None
        assert exact(line) is not None


def test_match_lines_needs_every_entry_line_to_match() -> None:
    scanner = scanner_for(BASE)
    one = canonical(BASE)
    other = canonical({**BASE, "seq": 1, "prev": "a" * 64})
    checkpoint = b'{"checkpoint":"note"}'
    assert scanner.match_lines(one + b"\n" + other + b"\n", 2) == (
        b"0" * 64 + b"a" * 64, (b"0", b"1"))
    assert scanner.match_lines(one + b"\n" + checkpoint + b"\n" + other + b"\n", 2) is not None
    assert scanner.match_lines(one + b"\n" + checkpoint + b"\n", 2) is None
    assert scanner.match_lines(one + b"\n" + one + b" \n", 2) is None
    # One object over two lines, two objects on one line.
    half = len(one) // 2
    assert scanner.match_lines(one[:half] + b"\n" + one[half:] + b"\n", 2) is None
    assert scanner.match_lines(one + b"," + one + b"\n", 1) is None
    assert scanner.match_lines(one + one + b"\n", 2) is None
    assert scanner.match_lines(b"", 0) == (b"", ())


# --- random entries and random mutations --------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_ascii = st.text(alphabet=string.printable + "\x7f\"\\", max_size=12)
_keys = st.one_of(st.text(alphabet="abcdefgh_0123", min_size=1, max_size=6), _ascii, _text)
_ints = st.one_of(st.integers(-(10**16), 10**16), st.integers(-MAX_SAFE_INTEGER,
                                                              MAX_SAFE_INTEGER),
                  st.sampled_from([0, -1, 1, 10**15 - 1, 10**15, MAX_SAFE_INTEGER]))
_scalars = st.one_of(st.none(), st.booleans(), _ints, _ascii, _text)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)), max_leaves=8)
_entries = st.fixed_dictionaries({
    "action": st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,5}(\.[a-z][a-z0-9_]{0,5}){1,2}",
                                      fullmatch=True), _ascii),
    "actor": st.one_of(st.text(alphabet=string.ascii_letters + "_", min_size=1,
                               max_size=12), _ascii, _text),
    "details": st.dictionaries(_keys, _json, max_size=4),
    "prev": st.one_of(st.just("0" * 64), st.text(alphabet=HEX, min_size=64, max_size=64)),
    "seq": st.one_of(st.integers(0, 3), _ints),
    "subject": st.dictionaries(_keys, st.one_of(_ascii, _text), max_size=2),
    "time": st.one_of(st.just("2026-11-29T12:00:00.123456Z"),
                      st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,10})?Z",
                                    fullmatch=True)),
})


def _mutate(line: bytes, data: st.DataObject) -> bytes:
    """A random edit of a line: bytes changed, inserted, deleted or a piece repeated."""
    out = bytearray(line)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(out)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        byte = data.draw(st.sampled_from(
            [*b' "\\,:{}[]0123456789-.eE+tfnaluxz\n\t\x00\x7f', 0xC3, 0xA4, 0xFF]))
        if kind == "insert":
            out[pos:pos] = bytes([byte])
        elif kind == "delete" and pos < len(out):
            del out[pos]
        elif kind == "replace" and pos < len(out):
            out[pos] = byte
        elif kind == "repeat":
            end = data.draw(st.integers(pos, min(len(out), pos + 40)))
            out[pos:pos] = out[pos:end]
    return bytes(out)


def _simple(value: object) -> bool:
    """Whether the scanner should vouch for this value itself (else it defers)."""
    if isinstance(value, dict):
        return all(_simple(k) and _simple(v) for k, v in value.items())
    if isinstance(value, list):
        return all(not isinstance(v, list | dict) and _simple(v) for v in value)
    if isinstance(value, str):
        return value.isascii() and value.isprintable() and not set(value) & {'"', "\\"}
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 10**15
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_entries, data=st.data())
@example(obj={**BASE, "details": {"x": [1, "a"], "y": {"z": None}}},
         data=None)  # type: ignore[arg-type]
def test_scanner_agrees_with_the_exact_validator(obj: dict[str, object],
                                                 data: st.DataObject | None) -> None:
    line = canonical(obj)
    scanner = EntryScanner()
    seen = exact(line)
    if seen is not None:
        entry = Entry.from_canonical(line)
        scanner.learn(entry)
        found = scanner.match(line)
        assert found in (None, seen)
        if _simple(entry.to_json()) and not (entry.seq == 0 and entry.prev != "0" * 64):
            assert found == seen  # the fast path covers the common case
    else:
        assert scanner.match(line) is None
    if data is None:
        return
    mutated = _mutate(line, data)
    found = scanner.match(mutated)
    if found is not None:
        assert found == exact(mutated), mutated
    if b"\n" not in mutated:  # the same verdicts for a block of both lines
        first = scanner.match(line)
        both = None if first is None or found is None else (
            first[0] + found[0], (first[1], found[1]))
        assert scanner.match_lines(line + b"\n" + mutated + b"\n", 2) == both


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_scanner_on_random_bytes(line: bytes) -> None:
    scanner = scanner_for(BASE, {**BASE, "details": {"x": 1}})
    found = scanner.match(line)
    if found is not None:
        assert found == exact(line)
