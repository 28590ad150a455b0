"""Every tamper case of the audit-log issue, each caught with its evidence."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_samples import ORIGIN, T0, edit_entry, fill, write
from evidence_intake.audit.checkpoint import Checkpoint, sign_checkpoint
from evidence_intake.audit.errors import (
    CheckpointMismatchError,
    DeletedEntryError,
    EntryFormatError,
    ForkError,
    InsertedEntryError,
    InvalidSignatureError,
    LogFormatError,
    ModifiedEntryError,
    ReorderedEntryError,
    TruncationError,
    UnknownKeyError,
)
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, NoteVerifier, generate_signer_key
from evidence_intake.audit.verify import CHECKPOINT_PREFIX, checkpoint_line, verify_log

MakeLog = Callable[..., MemoryLog]


def entry_lines(lines: list[bytes]) -> list[int]:
    """Positions (in ``lines``) of the entry lines, in order."""
    return [i for i, line in enumerate(lines) if not line.startswith(CHECKPOINT_PREFIX)]


def test_an_untouched_log_verifies(tmp_path: Path, make_log: MakeLog,
                                   verifier: NoteVerifier) -> None:
    log = make_log(10, (4, 7))
    result = verify_log(write(tmp_path / "log.jsonl", log.lines), verifier)
    assert result.size == 10
    assert result.checkpoints == 3
    assert result.root == log.range.root()
    assert result.checkpoint.size == 10


def test_modified_entry_is_named_with_expected_and_found_hash(
        tmp_path: Path, make_log: MakeLog, verifier: NoteVerifier) -> None:
    log = make_log()
    lines = list(log.lines)
    pos = entry_lines(lines)[3]
    original = hashlib.sha256(lines[pos][:-1]).hexdigest()
    lines[pos] = edit_entry(lines[pos], actor="acct_intruder")
    with pytest.raises(ModifiedEntryError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.seq == 3
    assert caught.value.expected == original
    assert caught.value.found == hashlib.sha256(lines[pos][:-1]).hexdigest()


def test_modified_last_entry_breaks_the_signed_root(
        tmp_path: Path, make_log: MakeLog, verifier: NoteVerifier) -> None:
    log = make_log()
    lines = list(log.lines)
    pos = entry_lines(lines)[-1]
    lines[pos] = edit_entry(lines[pos], details={"size": 1})
    with pytest.raises(CheckpointMismatchError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.expected_root == log.range.root()
    assert caught.value.found_root != log.range.root()


def test_rewritten_chain_without_the_key_breaks_the_signed_root(
        tmp_path: Path, make_log: MakeLog, verifier: NoteVerifier) -> None:
    """An insider rewrites entry 2 and recomputes every later prev: chain intact, root not."""
    log = make_log()
    lines = list(log.lines)
    prev = None
    for n, pos in enumerate(entry_lines(lines)):
        if n == 2:
            lines[pos] = edit_entry(lines[pos], action="statement.withdrawn")
        elif prev is not None and n > 2:
            lines[pos] = edit_entry(lines[pos], prev=prev)
        prev = hashlib.sha256(lines[pos][:-1]).hexdigest()
    with pytest.raises((CheckpointMismatchError, ForkError)):
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)


def test_deleted_entry_is_named(tmp_path: Path, make_log: MakeLog,
                                verifier: NoteVerifier) -> None:
    log = make_log()
    lines = list(log.lines)
    pos = entry_lines(lines)[5]
    deleted_hash = hashlib.sha256(lines[pos][:-1]).hexdigest()
    del lines[pos]
    with pytest.raises(DeletedEntryError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.seq == 5
    assert caught.value.expected == deleted_hash  # entry 6's prev names the deleted entry


def test_deleted_first_entry_is_named(tmp_path: Path, make_log: MakeLog,
                                      verifier: NoteVerifier) -> None:
    lines = list(make_log().lines)
    del lines[entry_lines(lines)[0]]
    with pytest.raises(DeletedEntryError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.seq == 0


def test_truncation_below_the_signed_checkpoint(tmp_path: Path, make_log: MakeLog,
                                                verifier: NoteVerifier) -> None:
    lines = list(make_log().lines)
    for pos in reversed(entry_lines(lines)[-3:]):
        del lines[pos]
    with pytest.raises(TruncationError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.checkpoint.size == 10
    assert caught.value.log_size == 7


def test_inserted_entry_with_a_repeated_number(tmp_path: Path, make_log: MakeLog,
                                               verifier: NoteVerifier) -> None:
    lines = list(make_log().lines)
    pos = entry_lines(lines)[5]
    forged = edit_entry(lines[pos], actor="acct_forger")
    lines.insert(pos, forged)
    with pytest.raises(InsertedEntryError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.seq == 5


def test_entry_appended_after_the_last_checkpoint_is_refused(
        tmp_path: Path, make_log: MakeLog, verifier: NoteVerifier) -> None:
    """A well-chained entry added at the end is covered by no signature: inserted."""
    log = make_log()
    fill(log, 1, start=10, actor="acct_forger")  # appended, never signed
    with pytest.raises(InsertedEntryError) as caught:
        verify_log(write(tmp_path / "log.jsonl", log.lines), verifier)
    assert caught.value.seq == 10


def test_reordered_entries(tmp_path: Path, make_log: MakeLog,
                           verifier: NoteVerifier) -> None:
    lines = list(make_log().lines)
    a, b = entry_lines(lines)[3], entry_lines(lines)[6]
    lines[a], lines[b] = lines[b], lines[a]
    with pytest.raises(ReorderedEntryError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.seq == 3
    assert caught.value.found == "seq 6"


def _replace_last_checkpoint(lines: list[bytes], note: str) -> list[bytes]:
    assert lines[-1].startswith(CHECKPOINT_PREFIX)
    return [*lines[:-1], checkpoint_line(note)]


def test_forged_checkpoint_signature(tmp_path: Path, make_log: MakeLog,
                                     verifier: NoteVerifier) -> None:
    """The signature line is kept, the root is swapped: the signature no longer verifies."""
    log = make_log()
    note = json.loads(log.lines[-1])["checkpoint"]
    _, _, sigs = note.partition("\n\n")
    other_root = Checkpoint(ORIGIN, 10, hashlib.sha256(b"x").digest()).body()
    lines = _replace_last_checkpoint(list(log.lines), other_root + "\n" + sigs)
    with pytest.raises(InvalidSignatureError):
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)


def test_checkpoint_signed_by_another_key_of_the_same_name(
        tmp_path: Path, make_log: MakeLog, verifier: NoteVerifier) -> None:
    log = make_log()
    impostor = NoteSigner(generate_signer_key(ORIGIN)[0])
    note = sign_checkpoint(log.checkpoint(), impostor)
    lines = _replace_last_checkpoint(list(log.lines), note)
    with pytest.raises(UnknownKeyError):
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)


def test_fork_between_two_signed_checkpoints(tmp_path: Path, signer: NoteSigner,
                                             verifier: NoteVerifier) -> None:
    """The key holder signed two histories; one export carries a checkpoint of each."""
    fork = MemoryLog(ORIGIN)
    fill(fork, 2)  # the same first two entries as the honest log ...
    fork.append(actor="acct_7", action="consent.withdrawn", subject={"statement": "st_0002"},
                now=T0)  # ... then a different third one
    fill(fork, 3, start=3)
    fork_note = sign_checkpoint(fork.checkpoint(), signer)
    honest = MemoryLog(ORIGIN)
    fill(honest, 8)
    honest.sign(signer)
    lines = [*honest.lines[:6], checkpoint_line(fork_note), *honest.lines[6:]]
    with pytest.raises(ForkError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.checkpoint.size == 6
    assert caught.value.other is not None and caught.value.other.size == 8
    assert caught.value.proof  # the consistency proof that failed is evidence


def test_no_checkpoint_means_nothing_is_verified(tmp_path: Path, verifier: NoteVerifier) -> None:
    log = MemoryLog(ORIGIN)
    fill(log, 3)
    with pytest.raises(LogFormatError):
        verify_log(write(tmp_path / "log.jsonl", log.lines), verifier)


@pytest.mark.parametrize("mangle", [
    lambda line: line.replace(b'","', b'", "', 1),           # whitespace
    lambda line: line.replace(b'"size":', b'"size":1.0,"x":', 1),  # float
    lambda line: b'{"seq":0,' + line[1:],                     # duplicate key
    lambda line: line.replace(b'"acct_7"', b'"acct_\\u0037"', 1),  # needless escape
    lambda line: re.sub(rb'(?<="prev":")[0-9a-f]{64}', lambda m: m[0].upper(), line),  # A-F
])
def test_non_canonical_entries_are_refused_with_their_line(
        tmp_path: Path, make_log: MakeLog, verifier: NoteVerifier,
        mangle: Callable[[bytes], bytes]) -> None:
    lines = list(make_log().lines)
    pos = entry_lines(lines)[2]
    assert mangle(lines[pos][:-1]) != lines[pos][:-1]
    lines[pos] = mangle(lines[pos][:-1]) + b"\n"
    with pytest.raises(EntryFormatError) as caught:
        verify_log(write(tmp_path / "log.jsonl", lines), verifier)
    assert caught.value.line == pos + 1


def test_entries_with_non_ascii_text_take_the_exact_path(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier) -> None:
    log = MemoryLog(ORIGIN)
    log.append(actor="acct_1", action="recipient.added", details={"label": "IIMM ဂျနီဗာ"},
               now=T0)
    fill(log, 2, start=1)
    log.sign(signer)
    assert verify_log(write(tmp_path / "log.jsonl", log.lines), verifier).size == 3


@pytest.mark.parametrize("tamper", ["none", "modified", "deleted", "no-final-newline"])
def test_worker_processes_reach_the_same_verdicts(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier, tamper: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The parallel path stitches segments: breaks inside and across segments are found."""
    import evidence_intake.audit.verify as verify_module

    # Segments are cut in this process (about 3 entries each); workers get offsets.
    monkeypatch.setattr(verify_module, "SEGMENT", 700)
    log = MemoryLog(ORIGIN)
    fill(log, 40)
    log.sign(signer)
    lines = list(log.lines)
    expected: type[Exception] | None = None
    if tamper == "modified":
        lines[13] = edit_entry(lines[13], actor="acct_x")
        expected = ModifiedEntryError
    elif tamper == "deleted":
        del lines[14]
        expected = DeletedEntryError
    elif tamper == "no-final-newline":
        lines[-1] = lines[-1][:-1]
        expected = LogFormatError
    path = write(tmp_path / "log.jsonl", lines)
    if expected is None:
        assert verify_log(path, verifier, workers=2).size == 40
    else:
        with pytest.raises(expected):
            verify_log(path, verifier, workers=2)
