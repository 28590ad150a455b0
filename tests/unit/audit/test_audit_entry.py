"""The canonical entry encoding (docs/formats/audit-log.md) and its strict parser."""

from __future__ import annotations

import hashlib

import pytest
from evidence_intake.audit.entry import GENESIS_PREV, Entry
from evidence_intake.audit.errors import EntryFormatError
from evidence_intake.audit.merkle import leaf_hash

BASE = {"seq": 1, "time": "2026-11-29T12:00:00.000001Z", "actor": "acct_1",
        "action": "statement.sealed", "subject": {"statement": "st_1"},
        "details": {"size": 5, "ok": True, "none": None, "list": [1, "a"]}, "prev": "ab" * 32}


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    entry = Entry(**{**BASE, "details": {"b": 1, "a": "ü\n\u007f\"\\", "c": [True, None]}})
    assert entry.canonical_bytes() == (
        b'{"action":"statement.sealed","actor":"acct_1","details":{"a":"\xc3\xbc\\n\x7f\\"\\\\",'
        b'"b":1,"c":[true,null]},"prev":"' + b"ab" * 32 + b'","seq":1,'
        b'"subject":{"statement":"st_1"},"time":"2026-11-29T12:00:00.000001Z"}')


def test_control_characters_use_lower_case_u_escapes() -> None:
    entry = Entry(**{**BASE, "details": {"x": "\x01\x1f\t"}})
    assert b'"x":"\\u0001\\u001f\\t"' in entry.canonical_bytes()


def test_hashes_are_over_the_canonical_bytes() -> None:
    entry = Entry(**BASE)
    data = entry.canonical_bytes()
    assert entry.entry_hash() == hashlib.sha256(data).digest()
    assert entry.leaf_hash() == leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()


def test_parse_round_trip() -> None:
    entry = Entry(**BASE)
    assert Entry.from_canonical(entry.canonical_bytes()) == entry


@pytest.mark.parametrize("change", [
    {"details": {"f": 1.5}},
    {"details": {"big": 2**53}},
    {"details": {"ключ": 1}},
    {"details": {"s": "\ud800"}},
    {"seq": -1},
    {"seq": True},
    {"time": "2026-11-29 12:00:00Z"},
    {"time": "2026-11-29T12:00:00+01:00"},
    {"action": "Sealed"},
    {"actor": ""},
    {"subject": {"statement": 5}},
    {"prev": "AB" * 32},
    {"seq": 0},  # entry 0 must have the all-zero prev
])
def test_malformed_entries_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(EntryFormatError):
        Entry(**{**BASE, **change})  # type: ignore[arg-type]


def test_first_entry_has_the_zero_prev() -> None:
    assert Entry(**{**BASE, "seq": 0, "prev": GENESIS_PREV}).prev == "0" * 64


@pytest.mark.parametrize("data", [
    b'{"action":"a.b"}',
    b"[1]",
    b"\xef\xbb\xbf{}",
    b"not json",
])
def test_parser_refuses_what_is_not_an_entry(data: bytes) -> None:
    with pytest.raises(EntryFormatError):
        Entry.from_canonical(data)


def test_parser_refuses_an_extra_key() -> None:
    data = Entry(**BASE).canonical_bytes().replace(b'{"action"', b'{"a":1,"action"')
    with pytest.raises(EntryFormatError):
        Entry.from_canonical(data)


def test_the_json_schema_describes_the_same_fields() -> None:
    import json
    import re
    from pathlib import Path

    from evidence_intake.audit.entry import ENTRY_KEYS

    schema_path = Path(__file__).resolve().parents[3] / "schemas" / "audit_entry.v1.json"
    schema = json.loads(schema_path.read_text("utf-8"))
    assert set(schema["required"]) == set(schema["properties"]) == ENTRY_KEYS
    props = schema["properties"]
    entry = Entry(**BASE).to_json()
    for key in ("time", "action", "prev"):
        assert re.fullmatch(props[key]["pattern"], entry[key])
    assert not re.fullmatch(props["time"]["pattern"], "2026-11-29T12:00:00+01:00")
