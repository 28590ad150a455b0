"""Sample audit logs for the audit tests: the origin, times and helpers that write and tamper.

Imported by the tests under a name of its own: a test importing from
``conftest`` got whichever conftest module pytest had loaded first (that of
tests/api when both folders ran in one call).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from evidence_intake.audit.entry import Entry
from evidence_intake.audit.log import MemoryLog

ORIGIN = "intake.test/audit"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def fill(log: MemoryLog, count: int, *, start: int = 0, actor: str = "acct_7") -> None:
    for i in range(start, start + count):
        log.append(actor=actor, action="statement.sealed",
                   subject={"statement": f"st_{i:04d}"},
                   details={"size": 1000 + i, "sha256": f"{i:064x}"},
                   now=T0 + timedelta(seconds=i))


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def edit_entry(line: bytes, **changes: object) -> bytes:
    """The entry line with ``changes`` applied, canonical again (a tampered entry)."""
    obj = json.loads(line)
    obj.update(changes)
    return Entry.from_json(obj).canonical_bytes() + b"\n"
