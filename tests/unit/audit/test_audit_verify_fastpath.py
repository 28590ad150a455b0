"""The verifier's chunk fast path never accepts what the exact validator refuses."""

from __future__ import annotations

import json

import pytest
from evidence_intake.audit import verify
from evidence_intake.audit.entry import Entry
from evidence_intake.audit.errors import EntryFormatError

BASE = {"action": "a.b", "actor": "x", "details": {}, "prev": "0" * 64, "seq": 0,
        "subject": {}, "time": "2026-11-29T12:00:00Z"}


@pytest.mark.parametrize("change", [
    {"time": "2026-11-29T12:00:00Z\n2026-11-29T12:00:00Z"},
    {"action": "a.b\nc.d"},
    {"seq": True},
    {"seq": -1},
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
    {"extra": 1},
])
def test_fast_path_refuses_what_the_exact_validator_refuses(change: dict[str, object]) -> None:
    line = json.dumps({**BASE, **change}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
    with pytest.raises(EntryFormatError):
        Entry.from_canonical(line)
    with pytest.raises(verify._FastPathRefusedError):
        verify._fast_chunk_ok([line])


def test_fast_path_accepts_a_canonical_chunk() -> None:
    entry = Entry(**BASE)  # type: ignore[arg-type]
    objs = verify._fast_chunk_ok([entry.canonical_bytes()] * 3)
    assert objs == [entry.to_json()] * 3
