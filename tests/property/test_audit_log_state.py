"""A hypothesis state machine for the audit log: random appends, checkpoints,
tampering and verification.

The model is the list of export lines. After every step an untouched export
must verify with the right size and root; a tampered copy must be refused
with an error of the class the tamper belongs to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidence_intake.audit import errors
from evidence_intake.audit.entry import Entry
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, generate_signer_key
from evidence_intake.audit.verify import CHECKPOINT_PREFIX, verify_log
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

ORIGIN = "intake.test/audit-state"
SIGNER = NoteSigner(generate_signer_key(ORIGIN)[0])  # a test key, made per run
T0 = datetime(2026, 11, 29, tzinfo=UTC)

ENTRY_ERRORS = (errors.ModifiedEntryError, errors.DeletedEntryError,
                errors.InsertedEntryError, errors.ReorderedEntryError,
                errors.CheckpointMismatchError, errors.TruncationError, errors.ForkError)


class AuditLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log = MemoryLog(ORIGIN)
        self.signed = False
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "log.jsonl"

    def teardown(self) -> None:
        self.dir.cleanup()

    def _entries(self) -> list[int]:
        return [i for i, line in enumerate(self.log.lines)
                if not line.startswith(CHECKPOINT_PREFIX)]

    def _verify(self, lines: list[bytes]) -> None:
        self.path.write_bytes(b"".join(lines))
        verify_log(self.path, SIGNER.verifier)

    def _signed_lines(self) -> list[bytes]:
        """The export with a final checkpoint covering every entry."""
        if self.log.lines and self.log.lines[-1].startswith(CHECKPOINT_PREFIX):
            return list(self.log.lines)
        self.log.sign(SIGNER)
        return list(self.log.lines)

    @rule(count=st.integers(1, 6), actor=st.sampled_from(["acct_1", "acct_2"]),
          label=st.text(max_size=8))
    def append(self, count: int, actor: str, label: str) -> None:
        start = len(self.log.entries)
        for i in range(start, start + count):
            self.log.append(actor=actor, action="statement.sealed",
                            subject={"statement": f"st_{i}"}, details={"label": label, "i": i},
                            now=T0 + timedelta(seconds=i))

    @rule()
    def checkpoint(self) -> None:
        self.log.sign(SIGNER)

    @invariant()
    def the_untouched_export_verifies(self) -> None:
        if not self.log.entries:
            return
        lines = self._signed_lines()
        self.path.write_bytes(b"".join(lines))
        result = verify_log(self.path, SIGNER.verifier)
        assert result.size == len(self.log.entries)
        assert result.root == self.log.range.root()

    @precondition(lambda self: len(self.log.entries) >= 2)
    @rule(data=st.data())
    def modify_an_entry(self, data: st.DataObject) -> None:
        lines = self._signed_lines()
        positions = self._entries()
        pos = positions[data.draw(st.integers(0, len(positions) - 1))]
        obj = json.loads(lines[pos])
        obj["details"] = {**obj["details"], "tampered": True}
        lines[pos] = Entry.from_json(obj).canonical_bytes() + b"\n"
        with pytest.raises(ENTRY_ERRORS):
            self._verify(lines)

    @precondition(lambda self: len(self.log.entries) >= 2)
    @rule(data=st.data())
    def delete_an_entry(self, data: st.DataObject) -> None:
        lines = self._signed_lines()
        positions = self._entries()
        del lines[positions[data.draw(st.integers(0, len(positions) - 1))]]
        with pytest.raises((errors.DeletedEntryError, errors.TruncationError)):
            self._verify(lines)

    @precondition(lambda self: len(self.log.entries) >= 2)
    @rule(data=st.data())
    def duplicate_an_entry(self, data: st.DataObject) -> None:
        lines = self._signed_lines()
        positions = self._entries()
        pos = positions[data.draw(st.integers(0, len(positions) - 1))]
        lines.insert(pos, lines[pos])
        with pytest.raises(errors.InsertedEntryError):
            self._verify(lines)

    @precondition(lambda self: len(self.log.entries) >= 3)
    @rule(data=st.data())
    def swap_two_entries(self, data: st.DataObject) -> None:
        lines = self._signed_lines()
        positions = self._entries()
        a, b = data.draw(st.lists(st.integers(0, len(positions) - 1), min_size=2, max_size=2,
                                  unique=True))
        lines[positions[a]], lines[positions[b]] = lines[positions[b]], lines[positions[a]]
        with pytest.raises(errors.ReorderedEntryError):
            self._verify(lines)

    @precondition(lambda self: len(self.log.entries) >= 1)
    @rule(bit=st.integers(0, 255))
    def flip_a_bit_of_the_signed_root(self, bit: int) -> None:
        lines = self._signed_lines()
        note = json.loads(lines[-1])["checkpoint"]
        root_line = note.split("\n")[2]
        raw = bytearray(base64.b64decode(root_line))
        raw[bit // 8] ^= 1 << (bit % 8)
        forged = note.replace(root_line, base64.b64encode(bytes(raw)).decode(), 1)
        lines[-1] = (json.dumps({"checkpoint": forged}, ensure_ascii=False,
                                separators=(",", ":")).encode() + b"\n")
        with pytest.raises(errors.InvalidSignatureError):
            self._verify(lines)

    @precondition(lambda self: len(self.log.entries) >= 1)
    @rule()
    def append_an_unsigned_entry(self) -> None:
        lines = self._signed_lines()
        last = Entry.from_canonical(lines[self._entries()[-1]][:-1])
        extra = Entry(seq=last.seq + 1, time=last.time, actor="acct_9",
                      action="statement.sealed",
                      prev=hashlib.sha256(last.canonical_bytes()).hexdigest())
        lines.append(extra.canonical_bytes() + b"\n")
        with pytest.raises(errors.InsertedEntryError):
            self._verify(lines)


AuditLogMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestAuditLogMachine = AuditLogMachine.TestCase
