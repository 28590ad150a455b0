"""Fixtures for the audit tests: a test log key and small signed logs.

The keys here are generated per test session and are test keys only. Plain
helpers and constants live in ``audit_samples``, which the tests import.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from audit_samples import ORIGIN, fill
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, NoteVerifier, generate_signer_key


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
