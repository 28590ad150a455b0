"""Fixtures for the audit tests: a test log key and small signed logs.

The keys here are generated per test session and are test keys only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidence_intake.audit.entry import Entry
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, NoteVerifier, generate_signer_key

ORIGIN = "intake.test/audit"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def log_keys() -> tuple[NoteSigner, NoteVerifier]:
    skey, _ = generate_signer_key(ORIGIN)
    signer = NoteSigner(skey)
    return signer, signer.verifier


@pytest.fixture
def signer(log_keys: tuple[NoteSigner, NoteVerifier]) -> NoteSigner:
    return log_keys[0]


@pytest.fixture
def verifier(log_keys: tuple[NoteSigner, NoteVerifier]) -> NoteVerifier:
    return log_keys[1]


def fill(log: MemoryLog, count: int, *, start: int = 0, actor: str = "acct_7") -> None:
    for i in range(start, start + count):
        log.append(actor=actor, action="statement.sealed",
                   subject={"statement": f"st_{i:04d}"},
                   details={"size": 1000 + i, "sha256": f"{i:064x}"},
                   now=T0 + timedelta(seconds=i))


@pytest.fixture
def make_log(signer: NoteSigner) -> Callable[..., MemoryLog]:
    """A log of ``size`` entries with signed checkpoints at ``checkpoints`` and at the end."""

    def make(size: int = 10, checkpoints: tuple[int, ...] = (4,)) -> MemoryLog:
        log = MemoryLog(ORIGIN)
        for i in range(size):
            if i in checkpoints:
                log.sign(signer)
            fill(log, 1, start=i)
        log.sign(signer)
        return log

    return make


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def edit_entry(line: bytes, **changes: object) -> bytes:
    """The entry line with ``changes`` applied, canonical again (a tampered entry)."""
    obj = json.loads(line)
    obj.update(changes)
    return Entry.from_json(obj).canonical_bytes() + b"\n"
