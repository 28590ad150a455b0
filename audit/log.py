"""An in-memory audit log: the reference model of what the database store does.

It appends entries (assigning ``seq`` and ``prev``), keeps a compact range
for O(log n) roots, signs checkpoints and writes the JSONL export. Tests,
the benchmark and small tools use it; the service's store
(``service/auditlog``) does the same steps inside a database transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from .checkpoint import Checkpoint, sign_checkpoint
from .entry import GENESIS_PREV, Entry, JSONValue
from .merkle import CompactRange, leaf_hash
from .note import NoteSigner
from .verify import checkpoint_line


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: ``2026-01-02T03:04:05.000006Z``."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MemoryLog:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.entries: list[Entry] = []
        self.lines: list[bytes] = []  # canonical bytes, and checkpoint lines, in order
        self.range = CompactRange()
        self.prev = GENESIS_PREV

    def append(self, *, actor: str, action: str, subject: Mapping[str, str] | None = None,
               details: Mapping[str, JSONValue] | None = None,
               now: datetime | None = None) -> Entry:
        entry = Entry(seq=len(self.entries), time=format_time(now or datetime.now(UTC)),
                      actor=actor, action=action, subject=dict(subject or {}),
                      details=dict(details or {}), prev=self.prev)
        data = entry.canonical_bytes()
        self.entries.append(entry)
        self.lines.append(data + b"\n")
        self.range.append(leaf_hash(data))
        self.prev = hashlib.sha256(data).hexdigest()
        return entry

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.origin, self.range.size, self.range.root())

    def sign(self, signer: NoteSigner) -> str:
        """Sign a checkpoint of the current size and record it in the export."""
        note = sign_checkpoint(self.checkpoint(), signer)
        self.lines.append(checkpoint_line(note))
        return note

    def export(self) -> Iterator[bytes]:
        yield from self.lines
