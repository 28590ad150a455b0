"""tlog-proof bundles, and the --state witness that catches a re-signed rewrite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from audit_samples import ORIGIN, T0, fill, write
from evidence_intake.audit import merkle
from evidence_intake.audit.errors import (
    ForkError,
    InvalidProofError,
    ProofFormatError,
    StateError,
    TruncationError,
)
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, NoteVerifier, generate_signer_key
from evidence_intake.audit.proof import TlogProof, parse_proof, verify_proof
from evidence_intake.audit.state import load_state, save_state
from evidence_intake.audit.verify import verify_log

MakeLog = Callable[..., MemoryLog]


def _bundle(log: MemoryLog, signer: NoteSigner, index: int) -> str:
    note = log.sign(signer)
    levels = merkle.build_levels([e.leaf_hash() for e in log.entries])
    proof = merkle.inclusion_proof(levels, index, len(log.entries))
    return TlogProof(index, tuple(proof), note, log.entries[index].canonical_bytes()).encode()


def test_tlog_proof_round_trip(make_log: MakeLog, signer: NoteSigner,
                               verifier: NoteVerifier) -> None:
    log = make_log(13)
    text = _bundle(log, signer, 6)
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert "\nindex 6\n" in text
    checkpoint, index, data = verify_proof(text, verifier)
    assert (checkpoint.size, index, data) == (13, 6, log.entries[6].canonical_bytes())
    assert parse_proof(text).encode() == text


def test_tlog_proof_for_another_entry_fails(make_log: MakeLog, signer: NoteSigner,
                                            verifier: NoteVerifier) -> None:
    log = make_log(13)
    text = _bundle(log, signer, 6)
    with pytest.raises(InvalidProofError):
        verify_proof(text, verifier, log.entries[7].canonical_bytes())


def test_malformed_tlog_proof() -> None:
    with pytest.raises(ProofFormatError):
        parse_proof("c2sp.org/tlog-proof@v1\nindex 01\n\nx\n")


def _verify_with_state(path: Path, state: Path, verifier: NoteVerifier) -> int:
    previous = load_state(state, verifier)
    trusted = [("state", previous)] if previous is not None else []
    result = verify_log(path, verifier, trusted=trusted)
    save_state(state, verifier, result.checkpoint_note)
    return result.size


def test_state_advances_as_the_log_grows(tmp_path: Path, signer: NoteSigner,
                                         verifier: NoteVerifier) -> None:
    log, state = MemoryLog(ORIGIN), tmp_path / "state.json"
    for size in (3, 7, 20):
        fill(log, size - len(log.entries), start=len(log.entries))
        log.sign(signer)
        assert _verify_with_state(write(tmp_path / "log.jsonl", log.lines), state,
                                  verifier) == size
    checkpoint = load_state(state, verifier)
    assert checkpoint is not None and checkpoint.size == 20


def test_state_catches_a_rewritten_and_re_signed_history(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier) -> None:
    """The key holder rewrites entry 2 and signs the new log: alone it verifies."""
    honest, state = MemoryLog(ORIGIN), tmp_path / "state.json"
    fill(honest, 5)
    honest.sign(signer)
    _verify_with_state(write(tmp_path / "a.jsonl", honest.lines), state, verifier)

    rewritten = MemoryLog(ORIGIN)
    fill(rewritten, 2)
    rewritten.append(actor="acct_7", action="statement.sealed", details={"size": 0}, now=T0)
    fill(rewritten, 5, start=3)
    rewritten.sign(signer)
    path = write(tmp_path / "b.jsonl", rewritten.lines)
    assert verify_log(path, verifier).size == 8  # self-consistent and signed
    with pytest.raises(ForkError) as caught:
        _verify_with_state(path, state, verifier)
    assert caught.value.checkpoint.size == 5
    assert caught.value.other is not None and caught.value.other.size == 8
    kept = load_state(state, verifier)
    assert kept is not None and kept.size == 5  # the state did not move


def test_state_catches_a_log_truncated_and_re_signed(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier) -> None:
    log, state = MemoryLog(ORIGIN), tmp_path / "state.json"
    fill(log, 9)
    log.sign(signer)
    _verify_with_state(write(tmp_path / "a.jsonl", log.lines), state, verifier)
    short = MemoryLog(ORIGIN)
    fill(short, 6)
    short.sign(signer)
    with pytest.raises(TruncationError):
        _verify_with_state(write(tmp_path / "b.jsonl", short.lines), state, verifier)


def test_state_of_another_key_or_tampered_is_refused(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier) -> None:
    log, state = MemoryLog(ORIGIN), tmp_path / "state.json"
    fill(log, 2)
    save_state(state, verifier, log.sign(signer))
    other = NoteSigner(generate_signer_key(ORIGIN)[0]).verifier
    with pytest.raises(StateError):
        load_state(state, other)
    state.write_text(state.read_text().replace("\\n2\\n", "\\n3\\n"))
    with pytest.raises(StateError):
        load_state(state, verifier)
    state.write_text("{}")
    with pytest.raises(StateError):
        load_state(state, verifier)
