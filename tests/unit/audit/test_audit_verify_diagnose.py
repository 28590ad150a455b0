"""The streaming diagnosis names the same broken link as checking entry by entry.

When a log fails, :func:`verify._diagnose` re-reads it a block at a time
with bounded memory. ``reference_verdict`` below is the specification it
must agree with: parse every entry line with the exact validator, then walk
the chain and classify the first break (the verifier's earlier, in-memory
implementation). Random tampering of small logs, read in blocks and
segments of random sizes, must give the same error class, entry, hashes
and line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from audit_samples import ORIGIN, edit_entry, fill, write
from evidence_intake.audit import verify
from evidence_intake.audit.entry import GENESIS_PREV, Entry
from evidence_intake.audit.errors import (
    AuditError,
    DeletedEntryError,
    EntryError,
    EntryFormatError,
    InsertedEntryError,
    ModifiedEntryError,
    ReorderedEntryError,
)
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, NoteVerifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Verdict = tuple[type[AuditError], int | None, str | None, str | None, int | None] | None


def reference_verdict(lines: list[bytes]) -> Verdict:
    """(class, seq, expected, found, line) of the first break, entry by entry; None if none."""
    numbered = [(n, line[:-1]) for n, line in enumerate(lines, 1)
                if not line.startswith(verify.CHECKPOINT_PREFIX)]
    entries = []
    for number, line in numbered:
        try:
            entries.append(Entry.from_canonical(line))
        except EntryFormatError:
            return EntryFormatError, None, None, None, number
    seqs = [e.seq for e in entries]
    all_present = sorted(seqs) == list(range(len(seqs)))
    expected_prev = GENESIS_PREV
    for i, (entry, (number, line)) in enumerate(zip(entries, numbered, strict=True)):
        seq, prev = entry.seq, entry.prev
        if seq != i:
            if all_present:
                return ReorderedEntryError, i, f"seq {i}", f"seq {seq}", number
            if seq > i and i not in seqs[i:]:
                return DeletedEntryError, i, prev, expected_prev, number
            return InsertedEntryError, seq, f"seq {i}", f"seq {seq}", number
        if prev != expected_prev:
            return ModifiedEntryError, i - 1, prev, expected_prev, number
        expected_prev = hashlib.sha256(line).hexdigest()
    return None


def _edit_entry(line: bytes, **changes: object) -> bytes:
    """``edit_entry``, or the line as it is if an earlier op already made it no entry."""
    try:
        return edit_entry(line, **changes)
    except EntryFormatError:  # e.g. its prev was upper-cased: it stays broken as it is
        return line


def _log(signer: NoteSigner, size: int) -> list[bytes]:
    log = MemoryLog(ORIGIN)
    for i in range(size):
        if i in (5, 11):
            log.sign(signer)
        fill(log, 1, start=i)
    log.sign(signer)
    return list(log.lines)


_ops = st.lists(st.tuples(st.sampled_from(["delete", "swap", "copy", "move", "modify",
                                            "renumber", "mangle", "uppercase"]),
                          st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=3)


def _tamper(lines: list[bytes], ops: list[tuple[str, int, int]]) -> list[bytes]:
    out = list(lines)
    for kind, a, b in ops:
        pos = [i for i, line in enumerate(out) if not line.startswith(verify.CHECKPOINT_PREFIX)]
        if not pos:
            break
        i, j = pos[a % len(pos)], pos[b % len(pos)]
        if kind == "delete":
            del out[i]
        elif kind == "swap":
            out[i], out[j] = out[j], out[i]
        elif kind == "copy":
            out.insert(j, out[i])
        elif kind == "move":
            out.insert(j, out.pop(i))
        elif kind == "modify":
            out[i] = _edit_entry(out[i], actor=f"acct_x{b}")
        elif kind == "renumber":
            out[i] = _edit_entry(out[i], seq=b, prev=GENESIS_PREV if b == 0 else "1" * 64)
        elif kind == "uppercase":  # a prev the scanner reads, and then must refuse
            start = out[i].index(b'"prev":"') + 8
            out[i] = out[i][:start] + out[i][start : start + 64].upper() + out[i][start + 64:]
        else:
            out[i] = out[i].replace(b'","', b'", "', 1)
    return out


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, block=st.sampled_from([1, 150, 400, 1 << 20]),
       segment=st.sampled_from([500, 1500, 1 << 24]))
def test_diagnosis_agrees_with_checking_entry_by_entry(
        tmp_path_factory: pytest.TempPathFactory, signer: NoteSigner,
        verifier: NoteVerifier, ops: list[tuple[str, int, int]], block: int,
        segment: int) -> None:
    lines = _tamper(_log(signer, 16), ops)
    expected = reference_verdict(lines)
    path = write(tmp_path_factory.mktemp("diag") / "log.jsonl", lines)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verify, "BLOCK", block)
        patch.setattr(verify, "SEGMENT", segment)
        try:
            verify.verify_log(path, verifier)
            got: Verdict = None
        except EntryFormatError as err:
            got = EntryFormatError, None, None, None, err.line
        except EntryError as err:
            got = type(err), err.seq, err.expected, err.found, err.line
        except AuditError as err:  # a checkpoint failure: the chain itself is intact
            assert not isinstance(err, EntryError | EntryFormatError)
            got = None
    if expected is None:
        # InsertedEntryError for entries no checkpoint covers carries no line.
        assert got is None or got[-1] is None
    else:
        assert got == expected
        if block == 1 << 20:  # the diagnosis alone, as the verifier calls it
            with pytest.raises(expected[0]):
                verify._diagnose(path)


def test_diagnosis_memory_does_not_grow_with_the_log(tmp_path: Path, signer: NoteSigner,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The diagnosis keeps one block and one byte per possible entry, not the lines."""
    import tracemalloc

    monkeypatch.setattr(verify, "BLOCK", 4096)
    log = MemoryLog(ORIGIN)
    fill(log, 2000)
    log.sign(signer)
    lines = list(log.lines)
    lines[1000] = edit_entry(lines[1000], actor="acct_x")
    path = write(tmp_path / "log.jsonl", lines)
    tracemalloc.start()
    try:
        with pytest.raises(ModifiedEntryError):
            verify._diagnose(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < path.stat().st_size / 4
